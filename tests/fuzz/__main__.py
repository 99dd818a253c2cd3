"""``python -m tests.fuzz``: run the fuzz harness from the repository root.

    python -m tests.fuzz --n 10000 [--seed START] [--properties twice,files,...]
    python -m tests.fuzz --file repro.py [--properties ...]   # check a reproducer
    python -m tests.fuzz digests SEED ...                     # (used by the hashseed check)

Prints progress, then every distinct failure with a minimal reproducer; exits 1 if
anything failed.  See docs/fuzzing.md.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .properties import PROPERTIES, PropertyFailure, Subject, check, digest_of, serve_backends
from .runner import fuzz, summary


def _digests(argv: list[str]) -> int:
    for seed in map(int, argv):
        print(seed, digest_of(seed), flush=True)
    return 0


def _check_file(path: Path, properties: list[str]) -> int:
    source = path.read_text()
    subject = Subject.from_source(source)
    status = 0
    for prop in properties:
        try:
            check(subject, prop)
            print(f"{prop}: ok")
        except PropertyFailure as failure:
            print(f"{failure.signature}\n{failure.message}")
            status = 1
    return status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    warnings.simplefilter("ignore")  # (UnobservedTaskFailure and friends: outcomes here)
    if argv[:1] == ["digests"]:
        return _digests(argv[1:])
    if argv[:1] == ["serve-backends"]:
        serve_backends()
        return 0
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--n", type=int, default=1000, help="how many seeds (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument(
        "--properties",
        default=",".join(PROPERTIES),
        help=f"comma-separated, from: {', '.join(PROPERTIES)} (default: all)",
    )
    parser.add_argument(
        "--hashseed-every",
        type=int,
        default=500,
        help="compare digests with two fresh processes (other PYTHONHASHSEEDs) in batches "
        "of this many seeds; 0 turns it off (default 500)",
    )
    parser.add_argument("--no-shrink", action="store_true", help="print failures unshrunk")
    parser.add_argument("--file", type=Path, help="check the program in a reproducer file")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    properties = [p.strip() for p in args.properties.split(",") if p.strip()]
    unknown = [p for p in properties if p not in PROPERTIES]
    if unknown:
        parser.error(f"unknown properties {unknown}; choose from {list(PROPERTIES)}")
    if args.file is not None:
        return _check_file(args.file, properties)

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    report = fuzz(
        range(args.seed, args.seed + args.n),
        properties,
        do_shrink=not args.no_shrink,
        hashseed_every=args.hashseed_every,
        progress=progress,
    )
    print(summary(report))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
