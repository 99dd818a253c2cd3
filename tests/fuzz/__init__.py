"""The fuzz harness: random well-formed programs and the properties every one must keep.

``python -m tests.fuzz --n 10000`` runs it from the repository root (see
``docs/fuzzing.md``); ``tests/test_fuzz.py`` runs a few hundred seeds in CI.
"""
