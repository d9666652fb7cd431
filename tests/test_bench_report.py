"""The benchmark's report and pictures say what they show: a busy machine is named (from
load figures and process samples given here, never the real machine's), small ratios
are never printed as 0.00x, efficiencies above 100% carry their note, and every plot's
legends, titles and lanes are checked from the figure's contents, not its pixels."""

from __future__ import annotations

import json
import os

import pytest

from allcores import _palette
from allcores._timeline_plot import chunk_sizes_text, lane_order, subtitle, timeline_figure
from allcores.bench import busy, plots, report
from allcores.bench.measure import (
    SUPERLINEAR_NOTE,
    Section,
    Table,
    efficiency_text,
    ratio_text,
)
from allcores.timeline import ChunkRecord, Insights

# --- figures that mean something -----------------------------------------------------------


@pytest.mark.parametrize("value, text", [
    (None, "-"), (250.2, "250x"), (12.34, "12.3x"), (1.0, "1.00x"), (0.57, "0.57x"),
    (0.1, "0.10x"), (0.045, "1/22x"), (0.004, "1/250x"), (0.0065, "1/154x"),
])
def test_ratio_text(value, text):
    assert ratio_text(value) == text


def test_no_positive_ratio_prints_as_zero():
    for exponent in range(-60, 1):
        value = 10 ** (exponent / 10)
        assert "0.00" not in ratio_text(value), value


@pytest.mark.parametrize("efficiency, text", [
    (None, "-"), (0.87, "87%"), (1.0, "100%"), (1.004, "100%"), (1.12, "112%^"),
])
def test_efficiency_above_100_percent_is_marked(efficiency, text):
    assert efficiency_text(efficiency) == text


# --- was the machine busy? -----------------------------------------------------------------


def _load(name="kernels", *, start=(0.2, 0.2, 0.2), others=0.1, heavy=()):
    return busy.SectionLoad(name=name, seconds=30.0, load_start=start,
                            load_end=(2.0, 1.0, 0.5), others_cpus=others,
                            heavy=list(heavy))


def test_an_idle_machine_is_not_busy():
    seen = busy.verdict(_load(), 2, first=True)
    assert not seen.busy and seen.reasons == []


def test_a_high_load_at_the_start_of_the_run_is_busy():
    seen = busy.verdict(_load(start=(5.3, 3.0, 1.0)), 2, first=True)
    assert seen.busy
    assert seen.reasons == ["load average 5.30 at the start (1 min; 2 usable CPUs)"]
    # Later sections start at a load the benchmark's own workers made: not judged.
    assert not busy.verdict(_load(start=(5.3, 3.0, 1.0)), 2).busy
    # Half the usable CPUs is the bound.
    assert busy.verdict(_load(start=(1.0, 0.0, 0.0)), 2, first=True).busy
    assert not busy.verdict(_load(start=(0.99, 0.0, 0.0)), 2, first=True).busy


def test_other_processes_cpu_use_is_busy():
    assert busy.verdict(_load(others=1.0), 2).reasons == [
        "other processes used 1.0 of 2 usable CPUs"]
    assert not busy.verdict(_load(others=0.9), 2).busy
    assert not busy.verdict(_load(others=None), 2).busy   # unknown: not judged


def test_a_heavy_process_is_named():
    heavy = [{"pid": 10 + i, "name": f"cc{i}", "cpus": 0.9 - i / 100} for i in range(7)]
    seen = busy.verdict(_load(heavy=heavy), 8)
    assert seen.busy
    assert seen.reasons == ["other heavy processes: cc0 (pid 10, 0.9 CPU), cc1 (pid 11, "
                            "0.9 CPU), cc2 (pid 12, 0.9 CPU), cc3 (pid 13, 0.9 CPU), cc4 "
                            "(pid 14, 0.9 CPU) and 2 more"]


def _checkpoint(at, processes, ours, our_cpu, all_cpu, load=(0.5, 0.5, 0.5)):
    return busy.Checkpoint(at=at, load=load, processes=processes, ours=set(ours),
                           our_cpu_s=our_cpu, all_cpu_s=all_cpu)


def test_between_takes_what_others_used():
    start = _checkpoint(100.0, {1: ("me", 5.0), 2: ("hog", 50.0), 3: ("idle", 1.0),
                                4: ("gone", 9.0)}, ours={1}, our_cpu=5.0, all_cpu=1000.0)
    end = _checkpoint(110.0, {1: ("me", 25.0), 2: ("hog", 59.0), 3: ("idle", 1.5),
                              5: ("newborn", 6.0), 6: ("my child", 30.0)},
                      ours={1, 6}, our_cpu=55.0, all_cpu=1065.0)
    seen = busy.between("pool", start, end)
    assert seen.seconds == pytest.approx(10.0)
    # 65 CPU seconds in all, 50 of them ours: others used 1.5 CPUs on average.
    assert seen.others_cpus == pytest.approx(1.5)
    # The hog used 0.9 CPU; the newborn 0.6 (all of its time); ours and the idle one
    # are not heavy; the one that ended is not seen.
    assert [(h["name"], round(h["cpus"], 2)) for h in seen.heavy] == [("hog", 0.9),
                                                                      ("newborn", 0.6)]
    assert seen.load_start == (0.5, 0.5, 0.5)


def test_between_without_proc_knows_the_load_only():
    start = _checkpoint(0.0, {}, ours=set(), our_cpu=None, all_cpu=None)
    end = _checkpoint(5.0, {}, ours=set(), our_cpu=None, all_cpu=None)
    seen = busy.between("pool", start, end)
    assert seen.others_cpus is None and seen.heavy == []


def test_parse_stat_takes_a_name_with_spaces_and_parentheses():
    text = ("4242 (my (odd) name) R 17 4242 4242 0 -1 4194304 100 0 0 0 250 50 7 3 20 0 1 "
            "0 1000 1000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0")
    assert busy.parse_stat(text, 100) == ("my (odd) name", 17, 3.0, 0.1)
    assert busy.parse_stat("garbage", 100) is None


def test_watch_reads_a_proc_folder(tmp_path, monkeypatch):
    """A fake /proc: our process, a child of ours and another process that uses a CPU."""
    me = os.getpid()
    monkeypatch.setattr(busy.os, "getloadavg", lambda: (0.25, 0.25, 0.25))
    monkeypatch.setattr(busy.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(busy, "_clock_ticks", lambda: 100)

    def write(processes, cpu_ticks):
        for pid, (name, parent, ticks) in processes.items():
            folder = tmp_path / str(pid)
            folder.mkdir(exist_ok=True)
            (folder / "stat").write_text(
                f"{pid} ({name}) S {parent} 0 0 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0")
        (tmp_path / "stat").write_text(
            f"cpu  {2 * cpu_ticks} 0 0 0 0 0 0 0 0 0\n"
            f"cpu0 {cpu_ticks} 0 0 900 0 0 0 0 0 0\n"
            f"cpu1 {cpu_ticks} 0 0 900 0 0 0 0 0 0\n")

    clock = iter([100.0, 110.0])
    monkeypatch.setattr(busy.time, "monotonic", lambda: next(clock))
    write({me: ("python", 1, 0), 999_001: ("worker", me, 0), 999_002: ("make", 1, 0)}, 0)
    watch = busy.Watch(2, proc=str(tmp_path))
    watch.begin("kernels")
    # 10 s later: we used 6 CPU seconds (4 + our child's 2), make used 10.
    write({me: ("python", 1, 400), 999_001: ("worker", me, 200),
           999_002: ("make", 1, 1000)}, 800)
    seen = watch.end()
    assert seen.heavy == [{"pid": 999_002, "name": "make", "cpus": pytest.approx(1.0)}]
    assert seen.others_cpus == pytest.approx(1.0)
    assert seen.busy and not seen.reasons[0].startswith("load")
    document = watch.summary()
    assert document["busy"] and document["busy_sections"] == ["kernels"]
    assert json.loads(json.dumps(document))["sections"]["kernels"]["heavy"][0]["name"] == \
        "make"


# --- the report says so --------------------------------------------------------------------


def _section(name="pool"):
    table = Table(f"{name}: a table", ["row", "time"], [["a", "1 s"]], ["a note"])
    return Section(name=name, question="What?", rows=[{"correct": True}], tables=[table],
                   reading=["it went well"])


def _busy_load(name="pool"):
    return busy.verdict(_load(name, start=(5.3, 3.0, 1.0)), 2, first=True)


def test_mark_busy_marks_the_tables_and_the_reading():
    section = _section()
    report.mark_busy(section, _busy_load())
    assert section.tables[0].title == "pool: a table [busy]"
    assert section.tables[0].notes == ["a note", report.BUSY_NOTE]
    assert section.reading[0] == ("[busy] measured while the machine was busy: load "
                                  "average 5.30 at the start (1 min; 2 usable CPUs).")
    assert section.extra["machine_load"]["busy"]
    calm = _section()
    report.mark_busy(calm, busy.verdict(_load("pool"), 2, first=True))
    assert calm.tables[0].title == "pool: a table" and calm.reading == ["it went well"]
    assert calm.extra["machine_load"]["busy"] is False


def _machine(busy_summary):
    return {"cpu_model": "a CPU", "cpus_online": 2, "usable_cores_derivation": "2 CPUs",
            "python": "CPython 3.11", "platform": "Linux", "libraries": {"allcores": "1"},
            "start_methods": {"allcores": "forkserver", "multiprocessing default": "fork"},
            "load_average_at_start": [5.3, 3.0, 1.0], "busy": busy_summary}


def test_the_report_opens_with_the_caveat():
    seen = [_busy_load("pool"), busy.verdict(_load("memory"), 2)]
    summary = busy.summary(seen, 2)
    assert report.busy_caveat(summary)[0].startswith(
        "CAVEAT: the machine was busy while 'pool' was measured (marked [busy])")
    sections = [_section("pool"), _section("memory")]
    for section, load in zip(sections, seen):
        report.mark_busy(section, load)
    text = report.markdown(command="allcores bench", machine=_machine(summary),
                           started="2026-12-03 16:00 UTC", seconds=10, sections=sections,
                           plots=[], workers=2, summary="a headline")
    caveat_at = text.index("CAVEAT: the machine was busy")
    assert caveat_at < text.index("- CPU:") < text.index("## Headline")
    assert "> - pool: load average 5.30 at the start" in text
    assert "## pool [busy]" in text and "## memory\n" in text
    assert "**pool: a table [busy]**" in text


def test_an_idle_run_has_no_caveat():
    summary = busy.summary([busy.verdict(_load("pool"), 2, first=True)], 2)
    assert report.busy_caveat(summary) == [] and report.busy_caveat(None) == []
    section = _section()
    report.mark_busy(section, busy.verdict(_load("pool"), 2, first=True))
    text = report.markdown(command="allcores bench", machine=_machine(summary),
                           started="2026-12-03 16:00 UTC", seconds=10, sections=[section],
                           plots=[], workers=2)
    assert "CAVEAT" not in text and "[busy]" not in text


def _kernels_rows():
    """Two kernels; numba and primesieve did not run; mandelbrot's threads scaled 2.4x."""
    rows = []
    for kernel, thread_speedup in (("mandelbrot", 2.4), ("is_prime", 1.6)):
        rows += [
            {"kernel": kernel, "method": "pure-serial", "label": "pure Python, serial",
             "impl": "python", "workers": 1, "correct": True, "median_s": 100.0,
             "speedup_vs_pure": 1.0, "speedup_vs_native": 0.004},
            {"kernel": kernel, "method": "pure-mp-imap", "impl": "python", "workers": 2,
             "label": "pure, multiprocessing.Pool.imap (tutorial)", "correct": True,
             "median_s": 60.0, "speedup_vs_pure": 1.67, "efficiency": 0.83},
            {"kernel": kernel, "method": "native-serial", "label": "native, serial",
             "impl": "native", "workers": 1, "correct": True, "median_s": 0.4,
             "speedup_vs_pure": 250.0, "speedup_vs_native": 1.0},
            {"kernel": kernel, "method": "native-allcores-thread", "impl": "native",
             "label": "native, allcores threads", "workers": 2, "correct": True,
             "median_s": 0.4 / thread_speedup, "speedup_vs_pure": 250.0 * thread_speedup,
             "speedup_vs_native": thread_speedup, "efficiency": thread_speedup / 2},
            {"kernel": kernel, "method": "numba", "label": "numba @njit(parallel=True)",
             "impl": "numba", "workers": 2, "correct": None, "status": "not installed"},
        ]
    return rows


def test_headline_marks_busy_rows_and_superlinear_speedups():
    document = {"config": {"workers": 2}, "sections": {
        "kernels": {"rows": _kernels_rows(), "machine_load": {"busy": True}}}}
    text = report.headline(document)
    assert "| mandelbrot [busy] | 250x | 2.40x^ |" in text
    assert "| is_prime [busy] | 250x | 1.60x |" in text
    assert SUPERLINEAR_NOTE in text and report.BUSY_NOTE in text
    document["sections"]["kernels"]["machine_load"]["busy"] = False
    calm = report.headline(document)
    assert "[busy]" not in calm and report.BUSY_NOTE not in calm


# --- the pictures ----------------------------------------------------------------------------


@pytest.fixture()
def pyplot():
    pytest.importorskip("matplotlib")
    plt = plots._pyplot()
    yield plt
    plt.close("all")


def _legend_labels(axes) -> list[str]:
    legend = axes.get_legend()
    assert legend is not None, f"no legend on {axes.get_title()!r}"
    return [text.get_text() for text in legend.get_texts()]


def test_kernels_plot_lists_only_series_with_data(pyplot):
    section = Section(name="kernels", question="?", rows=_kernels_rows(), tables=[],
                      extra={"workers": 2})
    figure = plots.kernels_figure(section)
    top, bottom = figure.axes
    assert _legend_labels(top) == [
        "1x: as fast as pure Python, serial", "pure Python, serial",
        "pure, multiprocessing.Pool.imap (tutorial)", "native, serial",
        "native, allcores threads"]
    assert _legend_labels(bottom) == [
        "ideal: 2x on 2 workers", "1x: no faster than serial",
        "pure, multiprocessing.Pool.imap (tutorial)", "native, allcores threads"]
    assert not any("numba" in label for axes in (top, bottom)
                   for label in _legend_labels(axes))
    # One bar per row with data, in its tool's colour (the pure rows a paler, hatched
    # shade of theirs).
    bars = [patch for patch in bottom.patches if patch.get_height() > 0]
    assert len(bars) == 4
    assert sorted((_hex(p.get_facecolor()), p.get_hatch()) for p in bars) == sorted(
        2 * [(_palette.TOOL_COLOURS["allcores-thread"], None),
             (_palette.tint(_palette.TOOL_COLOURS["mp-imap"]), "///")])


def _hex(rgba) -> str:
    return "#" + "".join(f"{round(c * 255):02X}" for c in rgba[:3])


def _overhead_section(workers=2):
    rows = []
    for tool, label in (("serial", "serial (builtin map)"),
                        ("joblib", "joblib Parallel"),
                        ("allcores-process", "allcores.map, process"),
                        ("mp-imap", "multiprocessing.Pool.imap, chunksize 1 (tutorial)")):
        for cost, speedup in ((1e-6, 0.05), (1e-4, 1.2), (1e-2, 1.9)):
            row = {"tool": tool, "label": label, "cost_s": cost}
            if tool == "mp-imap":   # did not run: no line, no legend entry
                row.update(correct=None, status="not installed")
            else:
                row.update(correct=True, per_item_s=cost * (1 if tool == "serial"
                                                            else 1 / speedup))
                if tool != "serial":
                    row["speedup"] = speedup
                if tool == "joblib" and cost == 1e-6:
                    row["capped"] = True
            rows.append(row)
    return Section(name="overhead", question="?", rows=rows, tables=[], extra={
        "workers": workers, "labels": {r["tool"]: r["label"] for r in rows},
        "crossover_s": {"joblib": 1e-4, "allcores-process": None, "mp-imap": None}})


def test_overhead_plot_legends_reference_lines_and_reduced_points(pyplot):
    figure = plots.overhead_figure(_overhead_section())
    left, right = figure.axes
    ring = "ring: from here on the tool beats serial"
    hollow = "hollow: timed on fewer items (far slower than serial)"
    assert _legend_labels(left) == ["serial (builtin map)", "joblib Parallel",
                                    "allcores.map, process", ring, hollow]
    assert _legend_labels(right) == ["joblib Parallel", "allcores.map, process",
                                     "1x: serial's speed", "ideal: 2x on 2 workers", ring,
                                     hollow]
    # joblib and allcores processes: their own colours, distinct.
    colours = {line.get_label(): line.get_color() for line in left.get_lines()}
    assert colours["joblib Parallel"] == _palette.TOOL_COLOURS["joblib"]
    assert colours["allcores.map, process"] == _palette.TOOL_COLOURS["allcores-process"]
    assert colours["joblib Parallel"] != colours["allcores.map, process"]
    # The reduced-count point is drawn hollow, where joblib's line starts.
    hollow_points = [line for line in left.get_lines()
                     if line.get_markerfacecolor() == "white"]
    assert [list(line.get_xdata()) for line in hollow_points] == [[1.0]]


def test_overhead_plot_without_marks_has_no_mark_entries(pyplot):
    section = _overhead_section()
    section.extra["crossover_s"] = {}
    for row in section.rows:
        row.pop("capped", None)
    left, right = plots.overhead_figure(section).axes
    assert not any(label.startswith(("ring", "hollow")) for axes in (left, right)
                   for label in _legend_labels(axes))


def test_a_busy_section_says_so_on_its_plot(pyplot):
    section = _overhead_section()
    section.extra["machine_load"] = {"busy": True, "reasons": ["load average 5.30"]}
    figure = plots.overhead_figure(section)
    assert "busy: load average 5.30" in figure._suptitle.get_text()


def test_colours_are_one_palette():
    # Every tool has its own colour, and every colour is the palette's (or black/grey).
    colours = list(_palette.TOOL_COLOURS.values())
    assert len(set(colours)) == len(colours)
    allowed = {*_palette.TOL_MUTED.values(), _palette.BLACK, _palette.GREY}
    assert set(colours) <= allowed
    assert {tool for tool, _ in plots.KERNEL_METHOD_STYLE.values()} <= set(
        _palette.TOOL_COLOURS)
    assert set(plots.TOOL_MARKERS) <= set(_palette.TOOL_COLOURS)


# --- timelines -------------------------------------------------------------------------------


def _record(first, items, worker, start, end):
    return ChunkRecord(0, first, items, worker, start, start, start, end, end + 0.001)


def test_lane_order_is_natural_with_the_caller_first():
    lanes = ["allcores-thread_10", "process 999", "allcores-thread_2", "caller",
             "process 1000", "allcores-thread_1"]
    assert lane_order(lanes) == ["caller", "allcores-thread_1", "allcores-thread_2",
                                 "allcores-thread_10", "process 999", "process 1000"]
    assert lane_order(reversed(lanes)) == lane_order(lanes)


@pytest.mark.parametrize("sizes, text", [
    ((300, 300, 300), "300 items per chunk"),
    ((1, 1, 1), "1 item per chunk"),
    ((1, 12, 40), "1 to 40 items per chunk (median 12)"),
    ((1000, 1500, 2000), "1,000 to 2,000 items per chunk (median 1,500)"),
])
def test_chunk_sizes_in_plain_words(sizes, text):
    assert chunk_sizes_text(*sizes) == text


def test_subtitle_singular_and_plural():
    one = Insights([_record(0, 300, "allcores-thread_0", 0.0, 0.3)], workers=1,
                   backend="serial")
    assert subtitle(one).startswith("1 chunk, 300 items per chunk, on 1 serial worker; ")
    two = Insights([_record(0, 1, "process 7", 0.0, 0.1),
                    _record(1, 1, "process 7", 0.1, 0.2)], workers=3, backend="process")
    assert subtitle(two).startswith("2 chunks, 1 item per chunk, on 3 process workers "
                                    "(2 workers ran no chunk); ")


def test_timeline_lanes_legend_and_title(pyplot):
    # Started in an order that the old rule (first start) would have drawn 10, 2, 1.
    records = [_record(0, 5, "allcores-thread_10", 0.00, 0.10),
               _record(5, 5, "allcores-thread_2", 0.01, 0.12),
               _record(10, 5, "allcores-thread_1", 0.02, 0.15),
               _record(15, 2, "caller", 0.03, 0.05)]
    insights = Insights(records, workers=3, backend="thread")
    figure = timeline_figure(insights, title="four chunks")
    axes = figure.axes[0]
    ticks = sorted(zip(axes.get_yticks(), (t.get_text() for t in axes.get_yticklabels())),
                   reverse=True)
    assert [label for _, label in ticks] == [
        "caller: results received", "caller (ran chunks itself)", "allcores-thread_1",
        "allcores-thread_2", "allcores-thread_10"]
    assert axes.get_title() == ("four chunks\n4 chunks, 2 to 5 items per chunk (median 5), "
                                f"on 3 thread workers; wall {insights.wall_s:.3g} s, "
                                f"utilisation {insights.utilisation:.0%}")
    legend_texts = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend_texts == ["a chunk, from its start to its end on that worker",
                            "its results received by the caller (same colour)"]
    # The colour bar explains the chunks' colours.
    assert "order" in figure.axes[1].get_ylabel()
