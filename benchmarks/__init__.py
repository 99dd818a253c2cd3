"""Benchmarks: the PRODUCT.md workloads on Counterpoint and its peers (see README.md)."""

import json
import sys
from pathlib import Path


def write_json(results: dict, path: str | None) -> None:
    """Write a benchmark's results as JSON to ``path`` (nothing if it is empty)."""
    if not path:
        return
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}", file=sys.stderr)
