"""Benchmarks: the PRODUCT.md workloads on Counterpoint and its peers (see README.md)."""
