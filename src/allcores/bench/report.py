"""What a run leaves behind: ``results.json`` (every figure and the machine's facts) and
``report.md`` (the tables and a reading computed from them, never a number that was not
measured)."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import multiprocessing
import os
import platform
import sys

import allcores
from allcores.bench.kernels import versus_text
from allcores.bench.measure import (
    SUPERLINEAR_MARK,
    SUPERLINEAR_NOTE,
    Section,
    cost_text,
    markdown_table,
    ratio_text,
    superlinear,
)
from allcores.cpu import cpu_budget
from allcores.pool import default_start_method

LIBRARIES = ["allcores", "numpy", "cloudpickle", "joblib", "matplotlib", "numba", "tqdm"]
# Headline columns that compare a parallel row with the same implementation's serial run.
SAME_IMPLEMENTATION = ("native-allcores-thread", "pure-allcores-process", "pure-mp-imap")
# Marks a table, a heading or a headline row measured while the machine was busy.
BUSY_MARK = "[busy]"
BUSY_NOTE = (f"{BUSY_MARK}: measured while the machine was busy (see the caveat at the "
             "top): other processes took CPU time from these rows, so their times may be "
             "longer and their parallel speedups lower than this machine gives when idle.")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform says."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine_facts() -> dict:
    budget = cpu_budget()
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "cpu_model": cpu_model(),
        "cpus_online": os.cpu_count(),
        "usable_cores": allcores.cpu_count(),
        "usable_cores_derivation": budget.explain(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "libraries": library_versions(),
        "start_methods": {"allcores": default_start_method(),
                          "multiprocessing default": multiprocessing.get_start_method()},
        "load_average_at_start": load,
    }


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def write_json(path: str, *, command: str, config: dict, machine: dict, started: str,
               seconds: float, sections: list[Section], plots: list[str]) -> None:
    document = {
        "command": command,
        "date": started,
        "seconds": seconds,
        "config": config,
        "machine": machine,
        "wrong_rows": sum(s.wrong for s in sections),
        "sections": {s.name: s.to_json() for s in sections},
        "plots": plots,
    }
    with open(path, "w") as out:
        json.dump(document, out, indent=2, default=_jsonable)
        out.write("\n")


def _jsonable(value):
    if hasattr(value, "item"):   # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


# --- a busy machine -----------------------------------------------------------------------


def mark_busy(section: Section, seen) -> None:
    """Keep a section's load facts (a ``busy.SectionLoad``) in its results and, where the
    machine was busy while it ran, say so: each table's title gets BUSY_MARK and a note,
    and the reading opens with what was seen."""
    section.extra["machine_load"] = seen.to_json()
    if not seen.busy:
        return
    for table in section.tables:
        if not table.title.endswith(BUSY_MARK):
            table.title += f" {BUSY_MARK}"
            table.notes.append(BUSY_NOTE)
    section.reading.insert(0, f"{BUSY_MARK} measured while the machine was busy: "
                              + "; ".join(seen.reasons) + ".")


def busy_caveat(busy: dict | None) -> list[str]:
    """The caveat for the top of the report and the console summary (lines of plain
    text), from ``busy.Watch.summary()``; no lines where the machine was not busy."""
    if not busy or not busy.get("busy"):
        return []
    lines = [f"CAVEAT: the machine was busy while {_and(busy['busy_sections'])} "
             f"{'was' if len(busy['busy_sections']) == 1 else 'were'} measured "
             f"(marked {BUSY_MARK}); their times may be longer and their parallel speedups "
             "lower than this machine gives when idle. Seen:"]
    for name in busy["busy_sections"]:
        facts = busy["sections"][name]
        lines.append(f"  {name}: " + "; ".join(facts["reasons"]))
    lines.append(f"  ({busy['rule']}.)")
    return lines


def busy_sections(document: dict) -> set[str]:
    """The names of a results.json document's sections measured while busy."""
    return {name for name, section in document.get("sections", {}).items()
            if section.get("machine_load", {}).get("busy")}


def _and(names: list[str]) -> str:
    names = [f"'{name}'" for name in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def load_text(load) -> str:
    return "unknown" if not load else f"{load[0]:.2f} (1 min), {load[1]:.2f} (5 min)"


def markdown(*, command: str, machine: dict, started: str, seconds: float,
             sections: list[Section], plots: list[str], workers: int,
             summary: str = "") -> str:
    libraries = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items())
    load = machine.get("load_average_at_start")
    lines = [
        "# allcores benchmark",
        "",
        f"Run on {started} in {seconds:.0f} s with `{command}`.",
        "",
        f"- CPU: {machine['cpu_model']}; {machine['cpus_online']} CPUs online; "
        f"{workers} workers; usable cores: {machine['usable_cores_derivation']}",
        f"- {machine['python']} on {machine['platform']}",
        f"- {libraries}",
        f"- start methods: allcores {machine['start_methods']['allcores']}, "
        f"multiprocessing default {machine['start_methods']['multiprocessing default']}",
    ]
    end = machine.get("load_average_at_end")
    if load:
        lines.append(f"- load average (other processes share this machine): at start "
                     f"{load_text(load)}"
                     + (f"; at the end {load_text(end)}, this run included" if end else ""))
    busy = machine.get("busy")
    caveat = busy_caveat(busy)
    if caveat:
        # At the top, before any figure: the first thing a reader sees.
        lines[2:2] = ["> **" + caveat[0] + "**", ">",
                      *(f"> - {line.strip()}" for line in caveat[1:-1]),
                      ">", f"> {caveat[-1].strip()}", ""]
    wrong = sum(s.wrong for s in sections)
    if summary:
        lines += ["", "## Headline", "", summary]
    lines += ["", "## Reading", "",
              ("Every row's answer was checked against the reference: all correct."
               if not wrong else
               f"**{wrong} row(s) gave a wrong answer**: they are marked WRONG and not "
               "counted as results."), ""]
    for section in sections:
        for sentence in section.reading:
            lines.append(f"- {section.name}: {sentence}")
    for section in sections:
        seen = section.extra.get("machine_load")   # set by mark_busy
        mark = f" {BUSY_MARK}" if seen and seen.get("busy") else ""
        lines += ["", f"## {section.name}{mark}", "", f"*{section.question}*", ""]
        if seen:
            lines += [f"Load average at the start {load_text(seen['load_start'])}, at the "
                      f"end {load_text(seen['load_end'])} (this section's own workers "
                      "included)"
                      + ("" if seen.get("others_cpus") is None else
                         f"; other processes used {seen['others_cpus']:.2f} CPUs on "
                         "average while it ran")
                      + (f"; {BUSY_MARK}: " + "; ".join(seen["reasons"]) if mark else "")
                      + ".", ""]
        for table in section.tables:
            lines += [f"**{table.title}**", "", markdown_table(table), ""]
            lines += [f"{note}  " for note in table.notes]
            if table.notes:
                lines.append("")
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{os.path.splitext(p)[0]}]({p})" for p in plots]
        lines.append("")
    lines += ["", f"Reproduce: `{command}`", ""]
    return "\n".join(lines)


def headline(document: dict) -> str:
    """Compact tables of the main figures of a ``results.json`` document (for the README
    and the top of report.md): every number is one that the run measured."""
    sections = document["sections"]
    workers = document["config"]["workers"]
    busy = busy_sections(document)
    out = []
    notes = []

    def marked(text: str, section: str) -> str:
        return f"{text} {BUSY_MARK}" if section in busy else text

    kernels = sections.get("kernels")
    if kernels and kernels["rows"] and "kernel" in kernels["rows"][0]:
        by = {(r["kernel"], r["method"]): r for r in kernels["rows"]}
        names = list(dict.fromkeys(r["kernel"] for r in kernels["rows"]))
        versus = kernels.get("vs_best_other_tool", {}).get("parallel", {})
        out += [f"| kernel | native vs pure, 1 core | {workers} vs 1 worker: native, allcores "
                "threads | pure, allcores processes | pure, the tutorial's Pool.imap | "
                "numba parallel vs native serial | vs the best other tool |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        for name in names:
            def cell(method, key):
                row = by.get((name, method), {})
                if row.get("correct") is None and row.get("status"):
                    return row["status"]
                if row.get("correct") is False:
                    return "WRONG"
                # More than N times faster on N workers than the same implementation on
                # one: the mark of its efficiency (numba's is over native serial: no mark).
                over = method in SAME_IMPLEMENTATION and superlinear(row.get("efficiency"))
                if over and SUPERLINEAR_NOTE not in notes:
                    notes.append(SUPERLINEAR_NOTE)
                return ratio_text(row.get(key)) + (SUPERLINEAR_MARK if over else "")
            out.append(f"| {marked(name, 'kernels')} | "
                       f"{cell('native-serial', 'speedup_vs_pure')} | "
                       f"{cell('native-allcores-thread', 'speedup_vs_native')} | "
                       f"{cell('pure-allcores-process', 'speedup_vs_pure')} | "
                       f"{cell('pure-mp-imap', 'speedup_vs_pure')} | "
                       f"{cell('numba', 'speedup_vs_native')} | "
                       f"{versus_text(versus.get(name))} |")
        out += ["", f"vs the best other tool: on {workers} workers, the fastest other tool's "
                "median time (numba parallel, or primesieve on as many threads for "
                "count_primes) over allcores' best native time (threads or processes); "
                "above 1: allcores is faster, 0.50x: it takes twice as long; -: no other "
                "tool ran. ProcessPoolExecutor and joblib run allcores' kernel and the "
                "plain-C reference is the baseline: they do not count.", ""]
    overhead = sections.get("overhead")
    if overhead and "crossover_s" in overhead:
        labels = overhead.get("labels", {})
        # The crossover rows (the issue #15 rows carry a "part").
        crossover_rows = [r for r in overhead["rows"] if "part" not in r]
        costs = sorted({r["cost_s"] for r in crossover_rows})
        low, high = costs[0], costs[-1]
        out += [f"| tool ({workers} workers) | beats serial from | speedup at "
                f"{cost_text(low)} per item | at {cost_text(high)} per item |",
                "| --- | --- | --- | --- |"]
        speed = {(r["tool"], r["cost_s"]): r.get("speedup") for r in crossover_rows}
        for tool, cross in overhead["crossover_s"].items():
            beats = f"never (up to {cost_text(high)})" if cross is None else cost_text(cross)
            out.append(f"| {marked(labels.get(tool, tool), 'overhead')} | {beats} | "
                       f"{ratio_text(speed.get((tool, low)))} | "
                       f"{ratio_text(speed.get((tool, high)))} |")
        out.append("")
    memory = sections.get("memory")
    crash = sections.get("crash")
    if memory or crash:
        out += ["| streaming and worker death | result |", "| --- | --- |"]
        for row in (memory or {}).get("rows", []):
            if "growth_mib" in row:
                out.append(f"| {marked(row['label'], 'memory')}, {row['items']:,} "
                           f"{row['workload_label']} | caller peak RSS "
                           f"+{row['growth_mib']:.1f} MiB |")
        for row in (crash or {}).get("rows", []):
            if "label" in row:
                after = (f", {row['after_kill_s']:.2f} s after the kill"
                         if row.get("after_kill_s") is not None else "")
                out.append(f"| {marked(row['label'], 'crash')}, one worker `kill -9`ed | "
                           f"{row['outcome']}"
                           f"{after} |")
        out.append("")
    if busy & {"kernels", "overhead", "memory", "crash"}:
        notes.append(BUSY_NOTE)
    for note in notes:
        out += [note, ""]
    return "\n".join(out)
