"""Run the properties over many seeds; group failures; shrink one of each kind; print
reproducers."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .generator import render
from .properties import (
    PROPERTIES,
    PropertyFailure,
    Subject,
    check,
    digest_of,
    finalizers_collected,
    hashseed_digests,
)
from .shrink import shrink, size


def classify(program: dict | None, failure: PropertyFailure) -> str:
    """The failure's class: what groups failures, and what shrinking keeps."""
    return failure.signature


@dataclass
class FailureClass:
    signature: str
    first: PropertyFailure
    seeds: list[int] = field(default_factory=list)
    reproducer: str | None = None
    shrunk_failure: PropertyFailure | None = None


@dataclass
class Report:
    seeds: int = 0
    checks: int = 0
    seconds: float = 0.0
    classes: dict[str, FailureClass] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(self.classes)

    def add(self, seed: int, program: dict | None, failure: PropertyFailure) -> FailureClass:
        key = classify(program, failure)
        found = self.classes.get(key)
        if found is None:
            found = self.classes[key] = FailureClass(key, failure)
        found.seeds.append(seed)
        return found


def still_fails(prop: str, key: str, tries: int = 1) -> Callable[[dict], bool]:
    """A predicate for the shrinker: the program still fails ``prop``, in class ``key``."""

    def fails(program: dict) -> bool:
        subject = Subject(program)
        for _ in range(tries):
            try:
                check(subject, prop)
            except PropertyFailure as failure:
                if classify(program, failure) == key:
                    return True
        return False

    return fails


def reproducer(subject: Subject, failure: PropertyFailure, seed: int | None) -> str:
    """A runnable file: the program, and how to check the property on it."""
    origin = f"seed {seed}" if seed is not None else "a file"
    lines = [
        f"# fuzz failure ({origin}, shrunk): {failure.signature}",
        *(f"#   {line}" for line in failure.message.splitlines()[:12]),
        "# Run it:          python repro.py",
        f"# Check it:        python -m tests.fuzz --file repro.py --properties {failure.prop}",
        "",
    ]
    source = subject.source
    if failure.prop == "explore" and subject.program is not None:
        source = render(subject.program, local_logs=True)  # what the property explores
    return "\n".join(lines) + source


class _Fuzzer:
    def __init__(self, properties, do_shrink, hashseed_every, shrink_seconds, progress):
        self.properties = properties
        self.do_shrink = do_shrink
        self.hashseed_every = hashseed_every
        self.shrink_seconds = shrink_seconds
        self.progress = progress
        self.report = Report()
        self.started = time.monotonic()
        self.batch: dict[int, str] = {}  # seed -> digest here, for the hashseed check
        self.picker = random.Random()

    def say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    def seed(self, seed: int) -> None:
        report = self.report
        report.seeds += 1
        subject = Subject.from_seed(seed)
        for prop in self.properties:
            report.checks += 1
            try:
                check(subject, prop)
            except PropertyFailure as failure:
                found = report.add(seed, subject.program, failure)
                self.say(f"seed {seed}: {found.signature}")
                if found.reproducer is None:
                    self.shrink(found, subject, prop, failure, seed)
        if self.hashseed_every:
            self.batch[seed] = digest_of(seed)
            if len(self.batch) >= self.hashseed_every:
                self.compare_hash_seeds()
        if report.seeds % 100 == 0:
            elapsed = time.monotonic() - self.started
            self.say(
                f"{report.seeds} seeds, {len(report.classes)} failure classes, {elapsed:.0f} s"
            )

    def shrink(self, found, subject, prop, failure, seed) -> None:
        shrunk = subject.program
        if self.do_shrink:
            tries = 3 if prop == "backends" else 1  # (host timing can hide a backend's fault)
            shrunk, _ = shrink(
                subject.program,
                still_fails(prop, found.signature, tries),
                seconds=self.shrink_seconds,
            )
        small = Subject(shrunk)
        final = failure
        try:
            check(small, prop)
        except PropertyFailure as again:
            final = again
        found.shrunk_failure = final
        found.reproducer = reproducer(small, final, seed)

    def compare_hash_seeds(self) -> None:
        """Digests of the batch, again in two fresh processes with other hash seeds."""
        batch = self.batch
        if not batch:
            return
        seeds = sorted(batch)
        hash_seeds = self.picker.sample(range(1, 2**31), 2)
        remote = [hashseed_digests(seeds, h) for h in hash_seeds]
        for seed in seeds:
            theirs = [r.get(seed) for r in remote]
            if theirs[0] != batch[seed] or theirs[1] != batch[seed]:
                failure = PropertyFailure(
                    "hashseed",
                    "digest differs across processes",
                    f"seed {seed}: here {batch[seed]}, PYTHONHASHSEED={hash_seeds[0]}: "
                    f"{theirs[0]}, PYTHONHASHSEED={hash_seeds[1]}: {theirs[1]}",
                )
                found = self.report.add(seed, None, failure)
                if found.reproducer is None:
                    found.reproducer = reproducer(Subject.from_seed(seed), failure, seed)
        batch.clear()


def fuzz(
    seeds: Iterable[int],
    properties: list[str],
    *,
    do_shrink: bool = True,
    hashseed_every: int = 0,
    shrink_seconds: float = 120.0,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Check ``properties`` on the program of every seed; ``hashseed_every`` > 0 also
    compares digests with two fresh processes (other hash seeds) every that many seeds."""
    fuzzer = _Fuzzer(properties, do_shrink, hashseed_every, shrink_seconds, progress)
    with finalizers_collected():
        for seed in seeds:
            fuzzer.seed(seed)
        fuzzer.compare_hash_seeds()
    fuzzer.report.seconds = time.monotonic() - fuzzer.started
    return fuzzer.report


def summary(report: Report) -> str:
    lines = [
        f"{report.seeds} seeds, {report.checks} property checks, {report.seconds:.1f} s: "
        f"{len(report.classes)} failure classes"
    ]
    for found in report.classes.values():
        lines.append("")
        seeds = ", ".join(map(str, found.seeds[:10]))
        more = f" (+{len(found.seeds) - 10} more)" if len(found.seeds) > 10 else ""
        lines.append(f"--- {found.signature}")
        lines.append(f"    {len(found.seeds)} seeds: {seeds}{more}")
        lines.append(f"    {found.first.message.splitlines()[0][:300]}")
        if found.reproducer is not None:
            lines.append("    minimal reproducer:")
            lines.append("")
            lines.append(found.reproducer)
    return "\n".join(lines)


def shrink_seed(seed: int, prop: str) -> tuple[Any, PropertyFailure]:
    """Shrink one seed's failure of ``prop`` (for tests and the CLI)."""
    subject = Subject.from_seed(seed)
    try:
        check(subject, prop)
    except PropertyFailure as failure:
        key = classify(subject.program, failure)
        shrunk, _ = shrink(subject.program, still_fails(prop, key))
        return shrunk, failure
    raise ValueError(f"seed {seed} does not fail {prop}")


__all__ = [
    "PROPERTIES",
    "FailureClass",
    "Report",
    "fuzz",
    "render",
    "shrink_seed",
    "size",
    "summary",
]
