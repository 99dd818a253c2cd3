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


def test_the_worker_benchmark_jobs_complete_on_every_backend():
    from benchmarks import workers as bench

    assert bench.burn(1000) == bench.burn(1000)  # the job is a pure function
    assert bench.run_parallel("inline", 2, 1000) > 0
    assert bench.run_parallel("thread", 2, 1000) > 0
    assert bench.round_trip("inline", 5) > 0


def test_the_worker_benchmark_rewrites_only_its_readme_table(tmp_path):
    from benchmarks import workers as bench

    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- workers-table -->\nold\n<!-- /workers-table -->\nb\n")
    results = {
        "processes": 2,
        "speedup": {
            2: {
                "sequential_s": 1.0,
                "parallel_s": 0.5,
                "speedup": 2.0,
                "stdlib_s": 0.52,
                "stdlib_speedup": 1.92,
            }
        },
        "overhead_s": {"inline": 1e-5},
    }
    bench.update_readme(readme, bench.table(results), results, rounds=3)
    text = readme.read_text()
    assert "old" not in text and "| 2 | 1.00 s | 0.50 s | **2.00x** | 0.52 s (1.92x) |" in text
    assert "| inline | 10 µs |" in text and text.endswith("<!-- /workers-table -->\nb\n")


def test_the_journal_benchmark_measures_and_tabulates(tmp_path):
    from benchmarks import journal as bench

    results = {
        "streaming": bench.streaming(1),
        "million": {
            "records": 1_000_024,
            "file_mb": 89.0,
            "save_s": 4.4,
            "load_s": 1.2,
            "state_at_first_s": 0.9,
            "state_at_median_ms": 1.3,
            "state_at_worst_ms": 2.8,
            "timetravel_open_s": 0.3,
            "timetravel_warm_s": 0.6,
            "timetravel_warm_requests": 31,
            "timetravel_event_median_ms": 1.4,
            "timetravel_event_worst_ms": 2.5,
            "timetravel_jump_ms": 0.3,
            "timetravel_picture_end_s": 0.7,
        },
        "exploration": bench.exploration(20),
    }
    assert results["streaming"]["ratio"] > 0
    philosophers = results["exploration"]["philosophers / dfs"]
    assert philosophers["exhaustive"] and philosophers["outcomes"] == ["Deadlock", "fed"]
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- journal-table -->\nold\n<!-- /journal-table -->\nb\n")
    bench.update_readme(readme, bench.table(results))
    text = readme.read_text()
    assert "old" not in text and "**1.2 s**" in text and "philosophers / pct" in text


def test_the_exploration_benchmark_finds_each_programs_known_bug_and_tabulates(tmp_path, capsys):
    from benchmarks import explore as bench
    from benchmarks.explore_programs import PROGRAMS

    out = tmp_path / "explore.json"
    assert bench.main(["--quick", "--no-frontrun", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    assert list(results["counterpoint"]) == list(PROGRAMS)
    for name, row in results["counterpoint"].items():
        case = PROGRAMS[name]
        assert row["bug_found"] == (case.bug is not None), name
        assert (row["first_bug"] is not None) == (case.bug is not None), name
        assert f"| {name} | {case.bug or 'none (correct)'} | " in printed
    # the small programs are proved; the 4-task lost update (2,520 schedules) hits the cap
    assert results["counterpoint"]["lost update, 2 tasks"]["schedules"] == 6
    assert results["counterpoint"]["lost update, 2 tasks"]["exhaustive"]
    assert not results["counterpoint"]["lost update, 4 tasks"]["exhaustive"]
    assert "200 (not exhaustive)" in printed
    assert results["throughput"]["schedules_per_search"] == 90
    assert "dfs on the lost update, 3 tasks (90 schedules per search)" in printed
    assert "frontrun not run (--no-frontrun)" in printed
    # with cp.shared and shared_only=True: the same bugs, and one execution per trace
    shared = results["shared_only"]
    assert list(shared) == list(PROGRAMS)
    for name, row in shared.items():
        assert row["bug_found"] == (PROGRAMS[name].bug is not None), name
    proved = {name: row["schedules"] for name, row in shared.items() if row["exhaustive"]}
    assert proved["lost update, 3 tasks"] == 36  # one per trace; 90 interleavings without
    assert proved["independent tasks, 4 x 4"] == 1
    assert "| shared_only: first bug | shared_only: schedules |" in printed


def test_the_exploration_benchmark_says_when_frontrun_is_missing(tmp_path):
    from benchmarks import explore as bench

    row = {
        "bug": None,
        "bug_found": False,
        "first_bug": None,
        "schedules": 8,
        "exhaustive": True,
        "seconds": 0.01,
        "schedules_per_second": 800.0,
    }
    results = {
        "counterpoint": {"bank transfer, locked": row},
        "throughput": {
            "program": "lost update, 3 tasks",
            "schedules_per_search": 90,
            "schedules_per_second": 9000.0,
            "schedules_per_cpu_second": 9500.0,
            "bar": 10_000,
            "meets_bar": False,
        },
        "frontrun": {"missing": "frontrun not installed"},
    }
    markdown = bench.table(results)
    assert "| bank transfer, locked | none (correct) | none | 8 | 0.010 s, 800/s | " in markdown
    assert "frontrun not installed" in markdown and "not met" in markdown
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- explore-table -->\nold\n<!-- /explore-table -->\nb\n")
    bench.update_readme(readme, markdown, rounds=3, max_schedules=5000)
    text = readme.read_text()
    assert "old" not in text and "medians of 3 rounds" in text and markdown in text
    assert text.endswith("<!-- /explore-table -->\nb\n")


def test_the_frontrun_side_prints_frontrun_not_installed_when_it_cannot_import(monkeypatch, capsys):
    import sys

    from benchmarks import explore_frontrun

    monkeypatch.setitem(sys.modules, "frontrun", None)  # import frontrun raises ImportError
    assert explore_frontrun.main(["--rounds", "1"]) == 0
    assert json.loads(capsys.readouterr().out) == {"missing": "frontrun not installed"}


def test_the_exploration_programs_module_examples_run():
    import doctest

    from benchmarks import explore_programs

    assert doctest.testmod(explore_programs).failed == 0


def test_the_exploration_table_sets_frontruns_asyncio_mode_beside_dfs():
    from benchmarks import explore as bench

    def row(schedules, exhaustive, first_bug):
        return {
            "bug": "AssertionError",
            "bug_found": True,
            "first_bug": first_bug,
            "schedules": schedules,
            "exhaustive": exhaustive,
            "seconds": 0.5,
            "schedules_per_second": schedules / 0.5,
        }

    results = {
        "counterpoint": {"lost update, 3 tasks": row(90, True, 2)},
        "frontrun": {"lost update, 3 tasks": row(90, True, 2)},
        "frontrun_asyncio": {"lost update, 3 tasks": row(81, True, 2)},
        "throughput": {
            "program": "lost update, 3 tasks",
            "schedules_per_search": 90,
            "schedules_per_second": 9000.0,
            "schedules_per_cpu_second": 9500.0,
            "bar": 10_000,
            "meets_bar": False,
        },
    }
    markdown = bench.table(results)
    assert "| lost update, 3 tasks | 90 | #2 | 81 | 0.500 s, 162/s |" in markdown
