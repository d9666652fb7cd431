"""The benchmark (``allcores bench``, ``benchmarks/run.py``): it runs end to end, writes
what it promises, checks every answer, and reads its numbers honestly.

The end-to-end test runs ``--quick`` at the smallest ``--scale`` in a fresh interpreter
(as a user runs it) with a timeout, so a hang fails the test instead of blocking CI.
The crossover and reading tests run on synthetic numbers: fast and exact.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from allcores import bench
from allcores.bench import crash, kernels, memory, overhead, plots, report, serial_tax, timeline
from allcores.bench.measure import (
    Config,
    Progress,
    Section,
    Timing,
    same,
    seconds_text,
    timed,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
END_TO_END_TIMEOUT_S = 100


# --- end to end ---------------------------------------------------------------------------


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, "-m", "allcores", "bench", "--quick", "--scale", "0.01",
               "--repeat", "1", "--workers", "2", "--out", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path,
                          timeout=END_TO_END_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "reproduce: " in proc.stdout
    assert "[1/" in proc.stderr  # the progress line

    results = json.loads((out / "results.json").read_text())
    assert set(results["sections"]) == set(bench.SECTIONS)
    assert results["wrong_rows"] == 0
    machine = results["machine"]
    assert machine["usable_cores"] >= 1
    assert machine["usable_cores_derivation"].startswith(f"{machine['usable_cores']} CPU")
    for library in ("numpy", "cloudpickle", "joblib", "matplotlib", "numba"):
        assert library in machine["libraries"]
    ran = 0
    for name, section in results["sections"].items():
        assert section["rows"], name
        for row in section["rows"]:
            # Every row is correct, or did not run and says why (a peer not installed).
            assert row["correct"] is True or (row["correct"] is None and row["status"]), \
                (name, row)
            ran += row["correct"] is True
    assert ran >= 40

    kernel_rows = results["sections"]["kernels"]["rows"]
    assert {row["kernel"] for row in kernel_rows} == {
        "mandelbrot", "count_primes", "is_prime", "fannkuch", "monte_carlo_pi"}
    scaled = [row for row in kernel_rows if row["scaled"]]
    assert scaled and all(row["work_fraction"] < 1 and row["scale_factor"] > 1
                          for row in scaled)
    numba_rows = [row for row in kernel_rows if row["method"] == "numba"]
    assert all(row["correct"] is True or row["status"] == "not installed"
               for row in numba_rows)
    assert set(results["sections"]["overhead"]["crossover_s"]) == {
        tool for tool, _ in overhead.TOOLS[1:]}
    check_memory_section(results["sections"]["memory"])

    report = (out / "report.md").read_text()
    for name in bench.SECTIONS:
        assert f"## {name}" in report
    # A busy machine (other processes: the test cannot choose) marks what it touched.
    busy = machine["busy"]
    assert set(busy["sections"]) == set(bench.SECTIONS)
    assert busy["busy"] == bool(busy["busy_sections"]) == ("CAVEAT" in report) == (
        "CAVEAT: the machine was busy" in proc.stdout)
    mark = " [busy]" if "memory" in busy["busy_sections"] else ""
    assert f"**memory: caller and worker peak RSS, imap over a generator{mark}**" in report
    assert "Byte budget: allcores bounds the pickled bytes in flight to" in report
    assert "## Reading" in report and "Reproduce:" in report
    assert sorted(results["plots"]) == sorted(
        ["kernels_speedup.png", "mandelbrot.png", "overhead.png",
         *(f"timeline_{strategy}.png" for strategy, _ in timeline.STRATEGIES)])
    for plot in results["plots"]:
        data = (out / plot).read_bytes()
        assert len(data) > 1000 and data.startswith(PNG_SIGNATURE), plot
        assert f"]({plot})" in report


def check_memory_section(section: dict) -> None:
    """Every workload x tool row ran in its own interpreter, answered right, and has its
    figures; the allcores rows carry the issue's goals, never claimed at a smaller size."""
    rows = section["rows"]
    assert [(r["workload"], r["tool"]) for r in rows] == [
        (w, t) for w, _ in memory.WORKLOADS for t, _ in memory.TOOLS]
    assert section["max_bytes"] >= 1
    for row in rows:
        assert row["correct"] is True, row
        assert row["results"] == row["items"] and row["results_wrong"] == 0
        for figure in ("growth_mib", "seconds", "workers_peak_mib", "worker_peak_max_mib"):
            assert isinstance(row[figure], (int, float)), (figure, row)
        assert row["seconds"] > 0 and row["workers_peak_mib"] > 0
        assert row["workers_found"] == 2   # --workers 2
        assert row["within_budget"] == (row["growth_mib"] * 2**20 <= section["max_bytes"])
    goals = {r["workload"]: r["goal"] for r in rows if "goal" in r}
    assert set(goals) == {"fast", "big"}
    assert all(r["tool"] == "allcores" for r in rows if "goal" in r)
    assert all(goal["met"] is None and goal["under_limit"] in (True, False)
               for goal in goals.values())   # tiny sizes: the goals are not tested


def test_options_are_checked():
    def parse(*argv):
        import argparse

        parser = argparse.ArgumentParser()
        bench.add_arguments(parser)
        return bench.config_from_args(parser.parse_args(list(argv)), parser)

    config = parse("--only", "crash,kernels", "--repeats", "2", "--workers", "3")
    assert config.sections == ("kernels", "crash")   # canonical order
    assert (config.repeat, config.workers, config.quick) == (2, 3, False)
    assert bench.reproduce_command("allcores bench", config) == (
        "allcores bench --only kernels,crash --workers 3 --repeat 2 --out bench-results")
    for bad in (["--only", "kernel"], ["--workers", "0"], ["--repeat", "0"],
                ["--scale", "5"]):
        with pytest.raises(SystemExit):
            parse(*bad)


def test_cli_without_a_command_prints_help(capsys):
    from allcores import cli

    assert cli.main([]) == 2
    assert "bench" in capsys.readouterr().err


# --- measuring ----------------------------------------------------------------------------


def test_timed_flags_runs_that_disagree():
    answers = iter([1, 1, 2, 1])
    _, result = timed(lambda: next(answers), repeat=3, warmup=1)
    assert not same(result, 1)
    timing, result = timed(lambda: 7, repeat=3)
    assert result == 7 and len(timing.times) == 3
    assert Timing([1.0, 3.0, 2.0]).scaled(10).median == 20.0


# --- crossover and reading, on synthetic numbers -------------------------------------------

COSTS = [1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]


@pytest.mark.parametrize("speedups, expected", [
    ([0.1, 0.2, 0.5, 0.9, 1.2, 1.5, 1.8, 1.9, 1.95], 1e-4),
    ([1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 1.9, 1.9], 1e-6),      # beats serial everywhere
    ([0.5, 1.2, 0.9, 1.1, 1.3, 1.5, 1.8, 1.9, 1.9], 3e-5),      # a dip: from after it
    ([0.1, 0.2, 0.5, 0.9, 1.2, 1.5, 1.8, 1.9, 1.0], None),      # loses at the largest cost
    ([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 1.0, 1.04, 1.05], 1e-2),    # the 5% margin
    ([0.1, 0.2, 0.5, 0.9, 1.2, None, 1.8, 1.9, 1.9], 1e-3),     # a failed row never beats
])
def test_crossover(speedups, expected):
    assert overhead.crossover(COSTS, speedups) == expected
    # The order of the input does not matter.
    assert overhead.crossover(COSTS[::-1], speedups[::-1]) == expected


def _overhead_section(speedups_by_tool: dict[str, list[float]]) -> Section:
    rows = []
    for tool, speedups in speedups_by_tool.items():
        for cost, speedup in zip(COSTS, speedups):
            rows.append({"tool": tool, "label": overhead.LABELS[tool], "cost_s": cost,
                         "correct": True, "speedup": speedup,
                         "per_item_s": cost / speedup})
    crossovers = {tool: overhead.crossover(COSTS, s)
                  for tool, s in speedups_by_tool.items() if tool != "serial"}
    return Section("overhead", "?", rows, [],
                   extra={"crossover_s": crossovers, "workers": 2})


def test_overhead_reading_states_measured_crossovers():
    section = _overhead_section({
        "serial": [1.0] * 9,
        "allcores-auto": [0.98, 0.99, 1.3, 1.5, 1.7, 1.8, 1.9, 1.9, 1.95],
        "mp-map": [0.4, 0.6, 0.8, 1.1, 1.5, 1.7, 1.8, 1.9, 1.9],
        "mp-imap": [0.02, 0.05, 0.1, 0.3, 0.6, 0.8, 0.95, 1.0, 1.02],
    })
    text = " ".join(overhead.reading(section))
    assert "allcores.map, auto at 10 us" in text
    assert "multiprocessing.Pool.map, default chunks at 30 us" in text
    assert "multiprocessing.Pool.imap, chunksize 1 (tutorial) never (up to 10 ms)" in text
    assert "takes 50 us per item: 50x as long as serial" in text
    assert "best speedup is 1.95x (allcores.map, auto)" in text
    assert "auto was never more than 10% slower than serial (worst: 0.98x at 1 us" in text
    section = _overhead_section({"serial": [1.0] * 9, "allcores-auto": [1.2] * 9})
    assert "auto was never slower than serial (its smallest speedup: 1.20x, at 1 us" in \
        " ".join(overhead.reading(section))


def test_overhead_reading_flags_auto_slower_than_serial():
    section = _overhead_section({
        "serial": [1.0] * 9,
        "allcores-auto": [1.0, 1.0, 0.7, 1.5, 1.7, 1.8, 1.9, 1.9, 1.95],
    })
    text = " ".join(overhead.reading(section))
    assert "allcores auto measured slower than serial at 10 us per item (0.70x)" in text
    assert "allcores.map, auto at 30 us" in text


# --- overhead: the evidence for issue #15 ("Auto without a serial tax") -----------------------


def test_goal_check_verdicts():
    assert serial_tax.goal_check(1.04, 1.15)["text"] == "<= 1.15x: met (1.04x)"
    missed = serial_tax.goal_check(1.38, 1.15)
    assert (missed["met"], missed["within"]) == (False, False)
    assert missed["text"] == "<= 1.15x: MISSED by 20% (1.38x)"
    assert serial_tax.goal_check(77.5e-6, 50e-6, text=seconds_text)["text"] == \
        "<= 50 us: MISSED by 55% (77.5 us)"
    # A noise margin widens the bound, never the limit that is stated.
    assert serial_tax.goal_check(1.04, 1.0, margin=1.05)["text"] == \
        "<= 1.00x (+5% for noise): met (1.04x)"
    assert serial_tax.goal_check(1.06, 1.0, margin=1.05)["text"] == \
        "<= 1.00x (+5% for noise): MISSED by 6% (1.06x)"
    assert serial_tax.goal_check(1.2, 1.5, at_most=False)["text"] == \
        ">= 1.50x: MISSED by 25% (1.20x)"
    # A goal stated for another size is compared, never claimed.
    untested = serial_tax.goal_check(1.8, 1.5, at_most=False, tested=False,
                                   stated_for="400 blobs on 2 workers")
    assert (untested["met"], untested["within"]) == (None, True)
    assert untested["text"] == (">= 1.50x, stated for 400 blobs on 2 workers: not tested "
                                "at this size (1.80x, within it)")
    for value in (None, 0.0):
        nothing = serial_tax.goal_check(value, 1.5, at_most=False)
        assert nothing["met"] is None and nothing["text"] == ">= 1.50x: not measured"
    assert serial_tax.stability_goal(["process"] * 8)["met"] is True
    assert serial_tax.stability_goal(["process"] * 7 + ["serial"])["text"] == \
        "all the same backend: MISSED (2 different backends)"


def _serial_tax_section(*, even_vs_ideal, item_s, latency_s, pool_vs_mp, spawn_ratio,
                        hash_speedup, blobs, decisions, backends):
    ideal = 1.0
    even = [{"part": "even", "run": "serial", "label": "serial loop", "items": 4,
             "item_s": item_s, "correct": True, "median_s": 2 * ideal}]
    for key, label in serial_tax.EVEN_RUNS[2:]:
        even.append({"part": "even", "run": key, "label": label, "items": 4,
                     "item_s": item_s, "correct": True, "median_s": even_vs_ideal * ideal,
                     "vs_ideal": even_vs_ideal, "goal": serial_tax.goal_check(
                         even_vs_ideal, serial_tax.EVEN_GOAL,
                         tested=item_s == serial_tax.EVEN_ITEM_S, stated_for="items of 500 ms")})
    latency = [
        {"part": "latency", "run": "allcores-auto", "label": "allcores.map", "items": 10,
         "correct": True, "per_call_s": latency_s,
         "goal": serial_tax.goal_check(latency_s, serial_tax.LATENCY_GOAL_S, text=seconds_text)},
        {"part": "latency", "run": "allcores-pool", "label": "allcores.Pool.map",
         "items": 10, "correct": True, "vs_mp_map": pool_vs_mp,
         "goal": serial_tax.goal_check(pool_vs_mp, serial_tax.POOL_VS_MP_GOAL,
                                     margin=overhead.BEATS_MARGIN)}]
    spawn = [{"part": "spawn", "run": "allcores", "function": function, "label": "allcores",
              "correct": True, "median_s": 0.1 * spawn_ratio,
              "goal": serial_tax.goal_check(spawn_ratio, serial_tax.SPAWN_GOAL)}
             for function, _ in serial_tax.SPAWN_FUNCTIONS]
    hashing = [{"part": "hashlib", "run": key, "label": label, "blobs": blobs,
                "correct": True, "speedup": hash_speedup, "chose": ["thread"] * 3,
                "goal": serial_tax.goal_check(hash_speedup, serial_tax.HASH_GOAL, at_most=False,
                                            tested=blobs == serial_tax.HASH_BLOBS,
                                            stated_for="400 blobs on 2 workers")}
               for key, label in serial_tax.HASH_RUNS[1:]]
    plan = {"part": "hashlib-plan", "correct": True, "plans": {
        "fresh": {"backend": "thread"}, "remembered": {"backend": "thread"}}}
    decided = [{"part": "decision", "cost_s": cost, "backend": backend, "correct": True,
                "measured_process_speedup": measured, "agrees": agrees}
               for cost, backend, measured, agrees in decisions]
    stability = {"part": "stability", "run": "remembered", "items": 20_000,
                 "cost_s": 15e-6, "backends": backends, "correct": True,
                 "goal": serial_tax.stability_goal(backends)}
    return Section("overhead", "?", even + latency + spawn + hashing + [plan] + decided
                   + [stability], [], extra={"workers": 2,
                                             "crossover_s": {"allcores-process": 1e-4}})


def test_serial_tax_reading_states_each_goal():
    section = _serial_tax_section(
        even_vs_ideal=1.3, item_s=0.5, latency_s=40e-6, pool_vs_mp=1.2, spawn_ratio=1.2,
        hash_speedup=1.8, blobs=400,
        decisions=[(1e-6, "serial", 0.9, True), (1e-4, "process", 1.5, True),
                   (1e-2, "process", 0.8, False)],
        backends=["process"] * 8)
    text = serial_tax.reading(section)
    assert text[0] == (
        "4 equal items of 500 ms on 2 workers, allcores.map auto: a function never "
        "planned: 1.3 s, 1.30x the ideal (goal <= 1.15x: MISSED by 13% (1.30x)); the "
        "function planned before: 1.3 s, 1.30x the ideal (goal <= 1.15x: MISSED by 13% "
        "(1.30x)). "
        "Serial 2 s.")
    assert text[1] == (
        "Call latency, 10 cheap items: allcores.map 40 us a call (goal <= 50 us: met "
        "(40 us)); allcores.Pool.map 1.20x multiprocessing.Pool.map's time (goal <= 1.00x "
        "(+5% for noise): MISSED by 20% (1.20x)).")
    assert text[2].count("goal <= 1.50x: met (1.20x)") == 2
    assert text[3].startswith("sha256 of 400 blobs of 1 MB (unmarked function): first "
                              "call (planner memory cleared) 1.80x serial's speed, ran "
                              "thread (goal >= 1.50x: met (1.80x))")
    assert text[3].endswith("the plan with fresh memory: thread, remembered: thread.")
    assert text[4] == (
        'backend="auto" decides serial x1, process x2 over the 3 costs of the crossover '
        "table (the measured crossover of allcores.map, process: 100 us); the measured "
        "speedups bear the decision out at 2 of 3; not at 10 ms (process; process "
        "measured 0.80x).")
    assert text[5] == ("8 consecutive plans of 20,000 items of 15 us: process; goal all "
                       "the same backend: met.")
    assert len(text) == 6

    # --quick sizes: the figures are compared with the goals, never claimed as met.
    section = _serial_tax_section(
        even_vs_ideal=1.1, item_s=0.1, latency_s=60e-6, pool_vs_mp=1.0, spawn_ratio=1.6,
        hash_speedup=1.2, blobs=100, decisions=[], backends=["process", "serial"] * 4)
    text = " ".join(serial_tax.reading(section))
    assert "<= 1.15x, stated for items of 500 ms: not tested at this size (1.10x, " \
        "within it)" in text
    assert ">= 1.50x, stated for 400 blobs on 2 workers: not tested at this size " \
        "(1.20x, outside it)" in text
    assert "goal <= 50 us: MISSED by 20% (60 us)" in text
    assert "goal <= 1.00x (+5% for noise): met (1.00x)" in text
    assert "goal <= 1.50x: MISSED by 7% (1.60x)" in text
    assert "goal all the same backend: MISSED (2 different backends)" in text
    # The crossover reading is not disturbed by the issue #15 rows.
    assert overhead.reading(Section("overhead", "?", [], [])) == []


SERIAL_TAX_TITLES = ("equal items of", "call latency, 10 cheap items",
                     "spawn start-up to first result", "sha256 of",
                     'what backend="auto" decides at each cost', "plans of one call")


@pytest.mark.slow
def test_overhead_section_in_process(tmp_path):
    """The overhead section at the smallest size, issue #15's parts included: every row
    right (or not run, saying why), its progress steps counted exactly, a table per
    part, a verdict on each goal's row (never claimed at a size the goal does not state),
    the reading's goal sentences, and a plot and headline of the crossover rows only."""
    import io

    config = Config(quick=True, scale=0.01, repeat=1, workers=2)
    progress = Progress(overhead.steps(config), stream=io.StringIO())
    section = overhead.run(config, progress)
    assert progress.done == overhead.steps(config)
    assert section.wrong == 0
    for row in section.rows:
        assert row["correct"] is True or (row["correct"] is None and row["status"]), row
    titles = [table.title for table in section.tables]
    assert len(titles) == 2 + len(SERIAL_TAX_TITLES)
    for fragment, title in zip(SERIAL_TAX_TITLES, titles[2:]):
        assert fragment in title, (fragment, title)

    parts: dict = {}
    for row in section.rows:
        parts.setdefault(row.get("part"), []).append(row)
    assert len(parts[None]) == len(overhead.COSTS_S) * len(overhead.TOOLS)
    assert [r["run"] for r in parts["even"]] == [key for key, _ in serial_tax.EVEN_RUNS]
    assert [r["run"] for r in parts["latency"]] == [key for key, _ in serial_tax.LATENCY_TOOLS]
    assert all(r["calls"] >= serial_tax.LATENCY_MIN_CALLS for r in parts["latency"]
               if r["correct"])
    assert {(r["run"], r["function"]) for r in parts["spawn"]} == {
        (tool, function) for tool, _ in serial_tax.SPAWN_TOOLS
        for function, _ in serial_tax.SPAWN_FUNCTIONS}
    assert all(r["first_result"]["median_s"] > 0 for r in parts["spawn"])
    assert [r["run"] for r in parts["hashlib"]] == [key for key, _ in serial_tax.HASH_RUNS]
    plans = parts["hashlib-plan"][0]["plans"]
    assert set(plans) == {"fresh", "remembered"} and all(p["reason"] for p in plans.values())
    assert [r["cost_s"] for r in parts["decision"]] == overhead.COSTS_S
    assert {r["backend"] for r in parts["decision"]} <= {"serial", "thread", "process"}
    assert [len(r["backends"]) for r in parts["stability"]] == [serial_tax.STABILITY_PLANS] * 2

    goals = {(r["part"], r.get("run"), r.get("function")): r["goal"]
             for r in section.rows if "goal" in r}
    assert set(goals) == {
        ("even", "allcores-fresh", None), ("even", "allcores-known", None),
        ("latency", "allcores-auto", None), ("latency", "allcores-pool", None),
        ("spawn", "allcores", "module"), ("spawn", "allcores", "script"),
        ("hashlib", "allcores-first", None), ("hashlib", "allcores-repeat", None),
        ("stability", "remembered", None)}
    for (part, _, _), goal in goals.items():
        if part in ("even", "hashlib"):   # stated for full sizes: compared, not claimed
            assert goal["met"] is None and goal["within"] in (True, False), goal
            assert "not tested at this size" in goal["text"]
        else:
            assert goal["met"] in (True, False), goal
            assert ("met" if goal["met"] else "MISSED") in goal["text"]

    reading = " ".join(section.reading)
    for fragment in ("equal items of", "Call latency, 10 cheap items",
                     "Spawn start-up to the first result", "sha256 of",
                     'backend="auto" decides', "consecutive plans of 20,000 items"):
        assert fragment in reading, fragment
    for goal in goals.values():
        assert goal["text"] in reading, goal["text"]

    document = json.loads(json.dumps(section.to_json()))   # plain JSON, as written
    assert plots.overhead(section, str(tmp_path)) == "overhead.png"
    assert (tmp_path / "overhead.png").read_bytes().startswith(PNG_SIGNATURE)
    headline = report.headline({"sections": {"overhead": document},
                                "config": {"workers": 2}})
    assert "beats serial from" in headline


def _kernel_row(kernel, method, seconds, **extra):
    label = next(label for m, label, _, _ in kernels.METHODS if m == method)
    impl = next(impl for m, _, impl, _ in kernels.METHODS if m == method)
    return {"kernel": kernel, "method": method, "label": label, "impl": impl,
            "correct": True, "median_s": seconds, "scaled": method.startswith("pure"),
            "workers": 1 if method.endswith("serial") else 2, **extra}


def test_kernel_reading_on_synthetic_numbers():
    rows = []
    for kernel, pure, native, threads in (("mandelbrot", 40.0, 1.0, 0.5),
                                          ("fannkuch", 30.0, 1.0, 0.6)):
        rows += [_kernel_row(kernel, "pure-serial", pure),
                 _kernel_row(kernel, "native-serial", native),
                 _kernel_row(kernel, "native-allcores-thread", threads)]
    rows.append({**_kernel_row("fannkuch", "numba", None), "correct": None,
                 "status": "not installed"})
    section = Section("kernels", "?", rows, [], extra={"workers": 2,
                                                       "numba": "not installed"})
    kernels._add_speedups([r for r in rows if r["kernel"] == "mandelbrot"], 2)
    kernels._add_speedups([r for r in rows if r["kernel"] == "fannkuch"], 2)
    text = " ".join(kernels.reading(section))
    assert "native is 30x (fannkuch) to 40x (mandelbrot) faster than pure Python" in text
    assert "allcores threads: mandelbrot 2.00x, fannkuch 1.67x" in text
    assert "mandelbrot: native, allcores threads" in text
    assert "numba rows did not run: not installed" in text


# --- kernels: primesieve and "vs the best other tool" -----------------------------------------

FAKE_PRIMESIEVE = '''#!{python} -S
"""A stand-in for the primesieve command: primesieve START STOP -c -t N -q."""
import math, os, sys
args = sys.argv[1:]
if args == ["--version"]:
    print("primesieve 99.0, <https://example.invalid>")
    sys.exit(0)
with open(os.environ["FAKE_PRIMESIEVE_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if os.environ.get("FAKE_PRIMESIEVE_SAYS"):
    print(os.environ["FAKE_PRIMESIEVE_SAYS"])
    sys.exit(int(os.environ.get("FAKE_PRIMESIEVE_EXIT", "0")))
if "-q" not in args:   # as primesieve says, before its count
    print("Threads = " + args[args.index("-t") + 1])
start, stop = int(args[0]), int(args[1])   # STOP is inclusive, as primesieve's
n = stop + 1
sieve = bytearray([1]) * max(n, 2)
sieve[0] = sieve[1] = 0
for i in range(2, math.isqrt(max(n - 1, 1)) + 1):
    if sieve[i]:
        sieve[i * i::i] = bytes(len(range(i * i, n, i)))
print(sum(sieve[start:n]) + int(os.environ.get("FAKE_PRIMESIEVE_OFF_BY", "0")))
'''


@pytest.fixture
def fake_primesieve(tmp_path, monkeypatch):
    """A ``primesieve`` script first on PATH that counts primes (or says what
    FAKE_PRIMESIEVE_SAYS says); returns the file where it logs its arguments."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "primesieve"
    script.write_text(FAKE_PRIMESIEVE.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / "primesieve.log"
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_PRIMESIEVE_LOG", str(log))
    return log


def _without_primesieve(monkeypatch):
    import shutil

    which = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda name, *a, **k: None if name == "primesieve" else which(
                            name, *a, **k))


def _without_numba(monkeypatch):
    """The section as on a machine without numba: its rows say "not installed", so only
    primesieve can be the best other tool for count_primes."""
    optional = kernels._optional
    monkeypatch.setattr(kernels, "_optional",
                        lambda module: None if module == "numba" else optional(module))


def test_primesieve_count_asks_for_an_inclusive_stop(fake_primesieve, monkeypatch):
    command = kernels.primesieve_command()
    assert command is not None and command.startswith(str(fake_primesieve.parent))
    assert kernels.primesieve_count(command, 0, 10**6, 1) == 78498
    assert kernels.primesieve_count(command, 500_000, 10**6, 2) == 78498 - 41538
    assert kernels.primesieve_count(command, 0, 2, 1) == 0
    assert kernels.primesieve_count(command, 7, 7, 1) == 0   # empty: nothing run
    assert fake_primesieve.read_text().splitlines() == [
        "0 999999 -c -t 1 -q", "500000 999999 -c -t 2 -q", "0 1 -c -t 1 -q"]
    assert kernels.primesieve_version(command) == "primesieve 99.0"
    assert kernels.primesieve_threads(command, 0, 10**6, 3) == 3
    start = kernels.primesieve_start(command)
    assert len(start.times) == kernels.PRIMESIEVE_START_RUNS
    monkeypatch.setenv("FAKE_PRIMESIEVE_SAYS", "Primes: 78498")
    with pytest.raises(RuntimeError, match="expected exit status 0 and one count, got: "
                                           "exit status 0, 'Primes: 78498'"):
        kernels.primesieve_count(command, 0, 10**6, 1)
    monkeypatch.setenv("FAKE_PRIMESIEVE_SAYS", "12")
    monkeypatch.setenv("FAKE_PRIMESIEVE_EXIT", "3")
    with pytest.raises(RuntimeError, match="exit status 3"):
        kernels.primesieve_count(command, 0, 10**6, 1)
    assert kernels.primesieve_start(command).startswith("RuntimeError: ")


def test_primesieve_rows_for_count_primes_only(fake_primesieve, monkeypatch):
    config = Config(repeat=2)

    def ids(kernel, found):
        return [m for m, _, _, _ in kernels.methods(config, kernel, found)]

    assert ids("count_primes", True)[-2:] == ["primesieve-serial", "primesieve-threads"]
    assert ids("count_primes", False)[-1] == "primesieve"
    assert not [m for m in ids("count_primes", False) if m.startswith("primesieve-")]
    for kernel in ("mandelbrot", "is_prime", "fannkuch", "monte_carlo_pi"):
        assert not [m for m in ids(kernel, True) if m.startswith("primesieve")]
    common = len(ids("mandelbrot", True)) * 5 + 2 * 5
    assert kernels.steps(config) == common + 2 + 1   # two rows and the start-up measure
    _without_primesieve(monkeypatch)
    assert kernels.steps(config) == common + 1
    assert "apt-get install primesieve" in kernels.primesieve_note("", None, 2)
    assert "; -t caps its threads: for -t 4 it said it used 1." in kernels.primesieve_note(
        "primesieve 11.0 (/usr/bin/primesieve)", Timing([0.001]), 4, 1)


@pytest.mark.skipif(shutil.which("primesieve") is None, reason="primesieve not installed")
def test_the_real_primesieve_command():
    """Where primesieve is installed: the command line the benchmark uses is the one it
    understands (its STOP inclusive, -q printing the count alone)."""
    command = kernels.primesieve_command()
    assert kernels.primesieve_count(command, 0, 10**6, 1) == 78498
    assert kernels.primesieve_count(command, 2, 3, 2) == 1
    assert kernels.primesieve_threads(command, 0, 10**6, 1) == 1
    assert kernels.primesieve_version(command).startswith("primesieve ")


@pytest.mark.slow
@pytest.mark.parametrize("primesieve", ["found", "wrong", "missing"])
def test_kernels_section_primesieve_rows(primesieve, fake_primesieve, monkeypatch):
    """The section at the smallest size with a fake primesieve that counts right, one
    that is off by one (its rows are WRONG and never compared), or none on PATH."""
    import io

    _without_numba(monkeypatch)
    if primesieve == "wrong":
        monkeypatch.setenv("FAKE_PRIMESIEVE_OFF_BY", "1")
    if primesieve == "missing":
        _without_primesieve(monkeypatch)
    config = Config(quick=True, scale=0.01, repeat=1, workers=2)
    progress = Progress(kernels.steps(config), stream=io.StringIO())
    section = kernels.run(config, progress)
    assert progress.done == kernels.steps(config)
    rows = {r["method"]: r for r in section.rows if r["impl"] == "primesieve"}
    assert {r["kernel"] for r in rows.values()} == {"count_primes"}
    versus = section.extra["vs_best_other_tool"]
    table = section.tables[0]
    reading = " ".join(section.reading)
    document = json.loads(json.dumps({"sections": {"kernels": section.to_json()},
                                      "config": {"workers": 2}}, default=str))
    count_primes_line = next(line for line in report.headline(document).splitlines()
                             if line.startswith("| count_primes |"))
    if primesieve == "missing":
        assert list(rows) == ["primesieve"]
        assert rows["primesieve"]["correct"] is None
        assert rows["primesieve"]["status"] == "not installed"
        assert ["", "primesieve", "not installed", "", "", "", "", ""] in table.rows
        assert "primesieve: not installed (apt-get install primesieve" in table.notes[-1]
        assert "primesieve did not run: not installed" in reading
        assert section.extra["primesieve"] == "not installed"
        assert versus["parallel"]["count_primes"] is None   # numba hidden above
        assert section.wrong == 0
        return
    assert list(rows) == ["primesieve-serial", "primesieve-threads"]
    assert [r["label"] for r in rows.values()] == ["primesieve, 1 thread",
                                                   "primesieve, 2 threads"]
    assert [r["workers"] for r in rows.values()] == [1, 2]
    assert section.extra["primesieve"].startswith("primesieve 99.0 (")
    assert section.extra["primesieve_threads_used"] == 2
    assert "for -t 2 it said it used 2." in table.notes[-1]
    log = fake_primesieve.read_text().splitlines()
    limit = int(section.extra["cases"][1]["workload"].split()[-1].replace(",", ""))
    assert f"0 {limit - 1} -c -t 1 -q" in log and f"0 {limit - 1} -c -t 2 -q" in log
    if primesieve == "wrong":
        assert all(r["correct"] is False and r["status"] == "WRONG" for r in rows.values())
        assert section.wrong == 2
        assert versus["parallel"]["count_primes"] is None
        assert versus["serial"]["count_primes"] is None
        assert count_primes_line.endswith("| - |")
        assert section.extra["primesieve_start"] == "expected 0 primes below 2, got: 1"
        assert "its start cost could not be measured (expected 0" in table.notes[-1]
        return
    assert section.extra["primesieve_start"]["median_s"] > 0
    assert "included in its times" in table.notes[-1]
    assert all(r["correct"] is True and r["status"] == "ok" for r in rows.values())
    assert section.wrong == 0
    parallel = versus["parallel"]["count_primes"]
    assert parallel["tool"] == "primesieve, 2 threads"
    assert parallel["allcores"] in ("native, allcores threads", "native, allcores processes")
    assert parallel["ratio"] == rows["primesieve-threads"]["median_s"] / parallel["allcores_s"]
    serial = versus["serial"]["count_primes"]
    assert (serial["tool"], serial["allcores"]) == ("primesieve, 1 thread", "native, serial")
    assert count_primes_line.endswith(f"| {kernels.versus_text(parallel)} |")
    assert "(primesieve, 2 threads) |" in count_primes_line
    assert "vs the best other tool, on 2 workers" in reading
    assert "primesieve's process start" in reading


def test_versus_best_other_tool_on_synthetic_numbers():
    """Only numba and primesieve count as other tools, on as many threads as allcores'
    rows (or one against native serial); a wrong row never counts."""
    rows = [
        _kernel_row("mandelbrot", "native-serial", 2.0),
        _kernel_row("mandelbrot", "native-allcores-thread", 1.0),
        _kernel_row("mandelbrot", "native-allcores-process", 0.8),
        _kernel_row("mandelbrot", "numba", 2.0),
        _kernel_row("count_primes", "native-serial", 1.0),
        _kernel_row("count_primes", "native-allcores-thread", 0.5),
        _kernel_row("count_primes", "numba", 0.4),
        _kernel_row("count_primes", "primesieve-serial", 0.15),
        _kernel_row("count_primes", "primesieve-threads", 0.1,
                    label="primesieve, 2 threads"),
        _kernel_row("is_prime", "native-allcores-thread", 0.5),
        {**_kernel_row("is_prime", "numba", 0.1), "correct": False, "status": "WRONG"},
        # Our kernel through other pools, and the C baseline: not other tools.
        _kernel_row("fannkuch", "native-serial", 1.0),
        _kernel_row("fannkuch", "native-allcores-thread", 0.5),
        _kernel_row("fannkuch", "native-futures", 0.01),
        _kernel_row("fannkuch", "native-joblib", 0.01),
        _kernel_row("fannkuch", "c-serial", 0.01),
        {**_kernel_row("monte_carlo_pi", "numba", None), "correct": None,
         "status": "not installed"},
    ]
    parallel = kernels.versus_other_tools(rows, parallel=True)
    serial = kernels.versus_other_tools(rows, parallel=False)
    assert parallel["mandelbrot"] == {
        "ratio": 2.5, "allcores": "native, allcores processes", "allcores_s": 0.8,
        "tool": "numba @njit(parallel=True)", "tool_s": 2.0}
    assert parallel["count_primes"]["tool"] == "primesieve, 2 threads"
    assert parallel["count_primes"]["ratio"] == pytest.approx(0.2)
    assert serial["count_primes"]["ratio"] == pytest.approx(0.15)
    assert serial["count_primes"]["allcores"] == "native, serial"
    assert serial["mandelbrot"] is None   # numba has no serial row
    for kernel in ("is_prime", "fannkuch", "monte_carlo_pi"):
        assert parallel[kernel] is None and serial[kernel] is None
    assert kernels.versus_text(parallel["mandelbrot"]) == "2.50x (numba @njit(parallel=True))"
    assert kernels.versus_text(None) == "-"

    for row in rows:   # the other reading lines need them; not what is tested here
        row.setdefault("speedup_vs_pure", 1.0)
        row.setdefault("speedup_vs_native", 1.0)
    section = Section("kernels", "?", rows, [], extra={
        "workers": 2, "vs_best_other_tool": {"parallel": parallel, "serial": serial},
        "primesieve": "primesieve 11.0 (/usr/bin/primesieve)",
        "primesieve_start": {"median_s": 0.002}})
    text = " ".join(kernels.reading(section))
    assert ("vs the best other tool, on 2 workers, allcores' best (threads or processes) "
            "vs the fastest of numba parallel and primesieve -t 2 (tool time / allcores "
            "time, above 1: allcores is faster): mandelbrot 2.50x (numba @njit(parallel="
            "True): 2 s vs native, allcores processes: 800 ms); count_primes 0.20x "
            "(primesieve, 2 threads: 100 ms vs native, allcores threads: 500 ms).") in text
    assert ("on one core, native serial vs primesieve -t 1 (tool time / allcores time, "
            "above 1: allcores is faster): count_primes 0.15x (primesieve, 1 thread: "
            "150 ms vs native, serial: 1 s).") in text
    assert ("primesieve's process start (2 ms) is 2% of its fastest row's time; it does "
            "not matter at this size.") in text

    headline = report.headline({"sections": {"kernels": section.to_json()},
                                "config": {"workers": 2}})
    lines = headline.splitlines()
    assert lines[0].endswith("| numba parallel vs native serial | vs the best other tool |")
    assert lines[1] == "| --- | --- | --- | --- | --- | --- | --- |"
    cells = {line.split(" | ")[0][2:]: line.split(" | ")[-1][:-2] for line in lines[2:7]}
    assert cells == {"mandelbrot": "2.50x (numba @njit(parallel=True))",
                     "count_primes": "0.20x (primesieve, 2 threads)",
                     "is_prime": "-", "fannkuch": "-", "monte_carlo_pi": "-"}
    assert any(line.startswith("vs the best other tool: on 2 workers, the fastest other "
                               "tool's median time") for line in lines)
    # A results.json written before the column existed: every cell is "-".
    del section.extra["vs_best_other_tool"]
    old = report.headline({"sections": {"kernels": section.to_json()},
                           "config": {"workers": 2}})
    assert old.splitlines()[3].endswith("| - |")


def _memory_row(workload, tool, items, growth_mib, seconds, **extra):
    return {"workload": workload, "workload_label": memory.WORKLOAD_LABELS[workload],
            "tool": tool, "label": memory.LABELS[tool], "items": items, "correct": True,
            "growth_mib": growth_mib, "seconds": seconds,
            "within_budget": growth_mib <= 64, **extra}


def test_memory_and_crash_readings():
    fast = memory.goal_check("fast", 10**7, 30.0)
    big = memory.goal_check("big", 20_000, 320.0)
    section = Section("memory", "?", [
        _memory_row("fast", "multiprocessing", 10**7, 200.0, 3.0),
        _memory_row("fast", "joblib", 10**7, 100.0, 30.0),
        _memory_row("fast", "allcores", 10**7, 30.0, 2.5, goal=fast),
        _memory_row("big", "allcores", 20_000, 320.0, 9.0, goal=big)], [],
        extra={"max_bytes": 64 << 20})
    assert memory.reading(section) == [
        "10,000,000 small ints, fast consumer: the caller grew by 30.0 MiB in 2.5 s with "
        "allcores.Pool.imap, 200 MiB in 3.0 s with multiprocessing.Pool.imap, 100 MiB in "
        '30.0 s with joblib Parallel(return_as="generator"). Goal < 50 MB: met (31.5 MB).',
        "20,000 items of 100 kB, fn=len: the caller grew by 320 MiB in 9.0 s with "
        "allcores.Pool.imap. Goal < 300 MB: MISSED by 35.5 MB.",
        "allcores' byte budget: 64.0 MiB in flight. allcores rows OUTSIDE it: items of "
        "100 kB, fn=len (320 MiB, 400.0% over). Other tools' rows past it: "
        "multiprocessing.Pool.imap, small ints, fast consumer (200 MiB); "
        'joblib Parallel(return_as="generator"), small ints, fast consumer (100 MiB).']
    # A goal is met or missed only at its own size; a smaller run says how it compares.
    assert memory.goal_text({"goal": fast}) == "< 50 MB: met (31.5 MB)"
    assert memory.goal_text({"goal": big}) == "< 300 MB: MISSED by 35.5 MB"
    small = memory.goal_check("fast", 10**6, 60.0)
    assert small["met"] is None and small["under_limit"] is False
    assert memory.goal_text({"goal": small}) == \
        "< 50 MB at 10,000,000: over by 12.9 MB at this size"
    assert memory.goal_text({}) == "-"
    section = Section("crash", "?", [
        {"label": "allcores", "outcome": "completed", "after_kill_s": 0.25, "correct": True,
         "results": "all correct"},
        {"label": "mp", "outcome": "hangs (no result 10 s after the kill)", "correct": True},
    ], [])
    assert crash.reading(section) == [
        "allcores: completed 0.25 s after the kill; results: all correct.",
        "mp: hangs (no result 10 s after the kill)."]


# --- timeline ----------------------------------------------------------------------------


def test_timeline_chunk_sizes_follow_each_strategy():
    sizes = {strategy: timeline.chunksize_for(strategy, 600, 2)
             for strategy, _ in timeline.STRATEGIES}
    assert sizes == {"chunksize-1": 1, "mp-default": 75, "static": 300, "adaptive": None}
    # multiprocessing.Pool.map's own rule: divmod(n, 4 * workers), one more if any left.
    for n, workers in ((601, 2), (7, 4), (1, 8), (1000, 3)):
        chunksize, extra = divmod(n, 4 * workers)
        assert timeline.chunksize_for("mp-default", n, workers) == chunksize + bool(extra)
    with pytest.raises(ValueError, match="strategy"):
        timeline.chunksize_for("guided", 600, 2)


def test_timeline_rounds_alternate_and_drop_a_failing_runner():
    order = []

    def runner(key):
        def run():
            order.append(key)
            if key == "b" and len(order) > 3:
                raise RuntimeError("boom")
            return key
        return run

    rounds = []
    measured = timeline.alternating_rounds(
        {key: runner(key) for key in "abc"}, lambda key, result: result == key, 3,
        rounds.append, lambda key: None)
    assert rounds == [0, 1, 2]
    # Forwards, backwards (b fails there and is not run again), forwards.
    assert order == ["a", "b", "c", "c", "b", "a", "a", "c"]
    assert measured["b"] == (None, False, "failed: RuntimeError: boom")
    assert len(measured["a"][0].times) == 3 and measured["a"][1] is True
    assert len(measured["c"][0].times) == 3


def _strategy_row(strategy, median_s, **figures):
    return {"kind": "strategy", "strategy": strategy, "label": timeline.LABELS[strategy],
            "workers": 2, "correct": True, "status": "ok",
            "time": {"median_s": median_s, "times_s": [median_s]},
            "speedup": 0.6 / median_s, **figures}


def _recording_row(backend, workload, ratios, per_chunk_s=1e-6):
    return {"kind": "recording", "backend": backend, "workload": workload,
            "label": workload, "correct": True, "status": "ok", "chunks": 600,
            "on": {"times_s": [1.0] * len(ratios)},
            "ratio_median": sorted(ratios)[len(ratios) // 2], "ratio_min": min(ratios),
            "ratio_max": max(ratios), "per_chunk_s": per_chunk_s}


def test_timeline_reading_on_synthetic_numbers():
    slowest = {"seconds": 0.58, "first_item": 0, "last_item": 299, "items": 300,
               "worker": "allcores-thread_0"}
    rows = [
        {"kind": "serial", "strategy": "serial", "label": "serial loop", "correct": True,
         "status": "ok", "time": {"median_s": 0.6, "times_s": [0.6]}},
        _strategy_row("chunksize-1", 0.4, utilisation=0.9, chunks=600,
                      chunk_sizes=[1, 1, 1]),
        _strategy_row("mp-default", 0.32, utilisation=0.93, chunks=8,
                      chunk_sizes=[75, 75, 75]),
        _strategy_row("static", 0.6, utilisation=0.5, chunks=2, chunk_sizes=[300, 300, 300],
                      tail_idle_max_s=0.45, wall_recorded_s=0.6, slowest_chunk=slowest),
        _strategy_row("adaptive", 0.3, utilisation=0.99, chunks=60, chunk_sizes=[1, 9, 32]),
        _recording_row("process", "identity", [0.98, 1.01, 1.03]),
        _recording_row("thread", "mandelbrot", [0.99, 1.0, 1.02], per_chunk_s=-2e-6),
    ]
    text = timeline.reading(Section("timeline", "?", rows, []))
    assert text[0] == (
        "On 2 threads, allcores' adaptive chunks finished first: 300 ms, 2.00x the serial "
        "loop's speed, utilisation 99%; as long as that took: Pool.map's default chunks "
        "1.07x, chunksize=1 1.33x, the static split 2.00x.")
    assert text[1] == (
        "The static split's straggler: the chunk of rows 0-299 ran 580 ms while a worker "
        "sat idle for 450 ms at the tail (75% of the map's wall time); utilisation 50%; "
        "the map took 2.00x as long as with allcores' adaptive chunks.")
    assert text[2] == (
        "chunksize=1 handed over 600 chunks and took 1.33x as long as the adaptive chunks "
        "(60 chunks of 1 to 32 rows); utilisation 90% vs 99%.")
    assert text[3] == (
        "Recording the timeline (insights=True vs False), median on/off ratio over 3 "
        "rounds: process identity 1.010x (+1 us per chunk), thread mandelbrot 1.000x "
        "(-2 us per chunk); every pair had rounds on both sides of 1.00x (within the "
        "noise; rounds from 0.98x to 1.03x).")
    assert len(text) == 4

    # A cost that every round shows is stated as such; a wrong strategy is named.
    rows[1] = {**rows[1], "correct": False, "status": "WRONG"}
    rows[-1] = _recording_row("thread", "mandelbrot", [1.04, 1.05, 1.06])
    text = " ".join(timeline.reading(Section("timeline", "?", rows, [])))
    assert "chunksize=1 (the tutorial's Pool.imap): WRONG." in text
    assert "chunksize=1 handed over" not in text
    assert "thread mandelbrot slower in every round (+5.0%); 1 pair within the noise" in text


def test_timeline_section_in_process(tmp_path):
    """The section at the smallest size: every row right, its progress steps counted
    exactly, and each strategy's median run drawn as a PNG timeline."""
    import io

    config = Config(quick=True, scale=0.01, repeat=1, workers=2)
    progress = Progress(timeline.steps(config), stream=io.StringIO())
    section = timeline.run(config, progress)
    assert progress.done == timeline.steps(config)
    assert section.wrong == 0 and all(row["correct"] is True for row in section.rows)
    by = {row["strategy"]: row for row in section.rows if row["kind"] == "strategy"}
    height = section.extra["image"]["height"]
    assert by["chunksize-1"]["chunks"] == height
    assert by["static"]["chunks"] == 2 and by["mp-default"]["chunks"] == 8
    assert sum(by["static"]["chunk_sizes"][::2]) == height
    recording = [row for row in section.rows if row["kind"] == "recording"]
    assert {(r["backend"], r["workload"]) for r in recording} == {
        (b, w) for b in timeline.RECORDING_BACKENDS for w in timeline.RECORDING_WORKLOADS}
    assert all(len(r["on"]["times_s"]) == timeline.recording_rounds(config)
               for r in recording)
    assert len(section.tables) == 2 and len(section.reading) == 4
    written = plots.timelines(section, str(tmp_path))
    assert written == [f"timeline_{strategy}.png" for strategy, _ in timeline.STRATEGIES]
    for name in written:
        assert (tmp_path / name).read_bytes().startswith(PNG_SIGNATURE)


def test_benchmarks_script_is_a_thin_wrapper():
    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "run.py")
    proc = subprocess.run([sys.executable, script, "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for option in ("--quick", "--only", "--workers", "--repeat", "--out"):
        assert option in proc.stdout


@pytest.mark.slow
def test_checkout_script_adds_plain_c_rows(tmp_path):
    """``benchmarks/run.py`` (a source checkout) also times the plain-C reference kernels,
    where a C compiler exists; without one, the rows say why they did not run."""
    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "run.py")
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, script, "--only", "kernels", "--scale", "0.01",
                           "--repeat", "1", "--workers", "2", "--no-plots", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path,
                          timeout=END_TO_END_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    rows = [row for row in results["sections"]["kernels"]["rows"]
            if row["method"] == "c-serial"]
    assert len(rows) == 5
    assert all(row["correct"] is True for row in rows) or all(
        row["correct"] is None and "C" in row["status"] for row in rows)
    assert results["plots"] == [] and not list(out.glob("*.png"))


@pytest.mark.slow
def test_a_hung_multiprocessing_terminate_is_bounded():
    """multiprocessing.Pool.terminate() hangs when a worker died holding the task queue's
    read lock; the crash section then kills the workers itself and carries on."""
    import multiprocessing
    import multiprocessing.connection
    import signal
    import time

    pool = multiprocessing.get_context("fork").Pool(2)
    try:
        pool.map(abs, range(4))
        # Both workers idle: one of them waits for a task holding the queue's read lock.
        deadline = time.monotonic() + 10
        while pool._inqueue._rlock.acquire(block=False):
            pool._inqueue._rlock.release()
            assert time.monotonic() < deadline, "no idle worker took the read lock"
            time.sleep(0.005)
        # Kill both. The pool's worker handler reaps and replaces them behind our back (a
        # join here would race its waitpid), so wait for their sentinels to close instead.
        workers = list(pool._pool)
        for process in workers:
            os.kill(process.pid, signal.SIGKILL)
        sentinels = [process.sentinel for process in workers]
        deadline = time.monotonic() + 10
        while sentinels and time.monotonic() < deadline:
            for ended in multiprocessing.connection.wait(sentinels, timeout=1):
                sentinels.remove(ended)
        assert not sentinels, "a SIGKILLed worker did not end"
        start = time.perf_counter()
        crash._terminate(pool, timeout=2.0)
        assert time.perf_counter() - start < 10
        # Whether or not terminate() hung (it depends on timing), no worker is left.
        assert all(p.exitcode is not None for p in pool._pool)
    finally:
        # Whatever failed above: no worker left behind, and no pool finalizer left to hang
        # in terminate() at exit (a second call returns at once).
        crash._terminate(pool, timeout=2.0)
