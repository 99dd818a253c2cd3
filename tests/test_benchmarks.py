"""The benchmark harness computes the same results on every runtime (not timed)."""

from __future__ import annotations

import json

import pytest

from benchmarks import run as harness
from benchmarks import workloads


@pytest.mark.parametrize("runtime", list(workloads.RUNTIMES))
def test_every_runtime_computes_the_expected_checksum_on_every_workload(runtime):
    expected = workloads.expected(workloads.QUICK)
    jobs = workloads.RUNTIMES[runtime]()(workloads.QUICK)
    assert {name: job() for name, job in jobs.items()} == expected


def test_the_full_sizes_are_the_product_md_sizes():
    sizes = workloads.FULL
    assert (sizes.spawn_join, sizes.ping_pong, sizes.pipeline) == (50_000, 50_000, 50_000)
    assert (sizes.timer_tasks, sizes.timer_sleeps) == (1_000, 50)
    assert (sizes.pipeline_workers, sizes.pipeline_capacity) == (4, 16)
    assert workloads.delay(3, 5) == (3 * 7919 + 5 * 104729) % 10 + 1


def test_the_harness_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert harness.main(["--quick", "--rounds", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| workload |" in printed and "bytes/record" in printed
    results = json.loads(out.read_text())
    assert set(results["summary"]) == {"spawn_join", "ping_pong", "timers", "pipeline"}
    row = results["summary"]["pipeline"]
    assert row["fastest_peer"] in {"asyncio", "trio", "simpy"}
    assert row["ratio_to_fastest_peer"][row["fastest_peer"]] == 1.0
    assert results["journal_memory"]["bytes_per_record"] > 0


def test_update_readme_replaces_only_the_marked_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- benchmark-table -->\nold table\n<!-- /benchmark-table -->\n\nafter\n"
    )
    memory = {"bytes_per_record": 33.3, "records": 1000}
    harness.update_readme(readme, "| new | table |", memory, rounds=3)
    text = readme.read_text()
    assert text.startswith("intro\n<!-- benchmark-table -->\n")
    assert "old table" not in text and "| new | table |" in text
    assert "33.3 bytes per record (1,000 records" in text and "median of 3 rounds" in text
    assert text.endswith("<!-- /benchmark-table -->\n\nafter\n")
