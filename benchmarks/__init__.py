"""Benchmarks: the PRODUCT.md workloads on Counterpoint and its peers (see README.md)."""

import json
import sys
from pathlib import Path


def write_marked(readme: Path, marker: str, body: str) -> None:
    """Replace what README.md holds between ``<!-- marker -->`` and ``<!-- /marker -->``
    (each benchmark's table) with ``body``; the rest of the file stays as it is."""
    text = readme.read_text()
    begin, end = f"<!-- {marker} -->\n", f"<!-- /{marker} -->"
    before, rest = text.split(begin, 1)
    after = rest.split(end, 1)[1]
    readme.write_text(before + begin + body + "\n" + end + after)


def write_json(results: dict, path: str | None) -> None:
    """Write a benchmark's results as JSON to ``path`` (nothing if it is empty)."""
    if not path:
        return
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}", file=sys.stderr)
