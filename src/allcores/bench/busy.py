"""Was the machine busy while the benchmark measured? Facts at the start and the end of
each section, and one rule that turns them into a verdict.

A shared machine makes every parallel figure look worse (and a serial one too, when
another process takes its core): a run started at load average 5.3 on 2 cores measured
0.85-1.40x kernel scaling. A report must say so, and say which sections it concerns.

What is read, at each section's start and end (Linux: ``/proc``; elsewhere the load
average only):

- the load average (``os.getloadavg``);
- the CPU time every process has used (``/proc/<pid>/stat``), so that between a
  section's start and its end each *other* process's CPU use is known: one that used at
  least ``HEAVY_PROCESS_CPUS`` of a CPU on average is named;
- the CPU time all processes together used on the CPUs this process may run on
  (``/proc/stat``), less our own process tree's: what the others took, in CPUs.

The rule (:func:`verdict`): busy when the 1-minute load average before the run's first
section was at least half the usable CPUs, when other processes used at least half the
usable CPUs over a section, or when another heavy process was seen. The load average at
a section's *end* is recorded but not judged: it counts the benchmark's own workers
(a section that kept 2 workers busy ends near load 2), which the CPU figures exclude.
"""

from __future__ import annotations

import dataclasses
import os
import time

# Another process is "heavy" when it used at least this share of one CPU, on average,
# over a section.
HEAVY_PROCESS_CPUS = 0.5
# Busy when others use at least this share of the usable CPUs (load, or CPUs in use).
BUSY_SHARE = 0.5
# How many heavy processes a caveat names (the heaviest).
NAMED_MAX = 5

PROC = "/proc"


@dataclasses.dataclass
class Checkpoint:
    """What was read at one moment: the load average, every process's CPU seconds, our
    own tree's, and the busy CPU seconds of the CPUs we may use (None where unknown)."""

    at: float                                   # time.monotonic()
    load: tuple[float, float, float] | None
    processes: dict[int, tuple[str, float]]     # pid -> (name, CPU seconds used)
    ours: set[int]                              # pids of our process tree
    our_cpu_s: float | None
    all_cpu_s: float | None


@dataclasses.dataclass
class SectionLoad:
    """The facts of one section: the load average at its start and end, what the other
    processes used over it, the heavy ones, and whether it counts as busy (and why)."""

    name: str
    seconds: float
    load_start: tuple[float, float, float] | None
    load_end: tuple[float, float, float] | None
    others_cpus: float | None                    # CPUs other processes used, on average
    heavy: list[dict]                            # {"pid", "name", "cpus"}, heaviest first
    busy: bool = False
    reasons: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def checkpoint(proc: str = PROC) -> Checkpoint:
    """Read the load average and the CPU times now."""
    try:
        load = tuple(os.getloadavg())
    except OSError:
        load = None
    processes, parents, reaped = _processes(proc)
    ours = _tree(os.getpid(), parents)
    # Our tree's own time and that of its children that ended and were waited for
    # (their time moved into the parent's cutime + cstime when they left the table).
    our_cpu = (sum(processes[pid][1] + reaped[pid] for pid in ours if pid in processes)
               if os.getpid() in processes else None)
    return Checkpoint(time.monotonic(), load, processes, ours, our_cpu, _cpu_busy_s(proc))


def between(name: str, start: Checkpoint, end: Checkpoint) -> SectionLoad:
    """The facts of a section from its start and end checkpoints."""
    seconds = max(end.at - start.at, 1e-9)
    heavy = []
    for pid, (process, cpu_s) in end.processes.items():
        if pid in end.ours or pid in start.ours:
            continue
        before = start.processes.get(pid)
        # A process born during the section: all of its CPU time was spent in it.
        used = cpu_s - before[1] if before is not None and before[0] == process else cpu_s
        if used / seconds >= HEAVY_PROCESS_CPUS:
            heavy.append({"pid": pid, "name": process, "cpus": used / seconds})
    heavy.sort(key=lambda entry: -entry["cpus"])
    others = None
    if None not in (start.all_cpu_s, end.all_cpu_s, start.our_cpu_s, end.our_cpu_s):
        ours = max(0.0, end.our_cpu_s - start.our_cpu_s)
        others = max(0.0, end.all_cpu_s - start.all_cpu_s - ours) / seconds
    return SectionLoad(name, seconds, start.load, end.load, others, heavy)


def verdict(section: SectionLoad, usable_cpus: int, *, first: bool = False) -> SectionLoad:
    """Set ``section.busy`` and its reasons by the rule (module docstring); ``first``: the
    section started the run, so its start load average is not ours."""
    threshold = BUSY_SHARE * usable_cpus
    reasons = []
    if first and section.load_start is not None and section.load_start[0] >= threshold:
        reasons.append(f"load average {section.load_start[0]:.2f} at the start "
                       f"(1 min; {usable_cpus} usable CPUs)")
    if section.others_cpus is not None and section.others_cpus >= threshold:
        reasons.append(f"other processes used {section.others_cpus:.1f} of "
                       f"{usable_cpus} usable CPUs")
    if section.heavy:
        named = ", ".join(f"{entry['name']} (pid {entry['pid']}, {entry['cpus']:.1f} CPU)"
                          for entry in section.heavy[:NAMED_MAX])
        more = len(section.heavy) - NAMED_MAX
        reasons.append(f"other heavy processes: {named}"
                       + (f" and {more} more" if more > 0 else ""))
    section.busy = bool(reasons)
    section.reasons = reasons
    return section


class Watch:
    """Checkpoints around each section of a run: ``begin(name)`` before it, ``end()``
    after it returns the section's :class:`SectionLoad`, judged."""

    def __init__(self, usable_cpus: int, proc: str = PROC):
        self.usable_cpus = usable_cpus
        self.proc = proc
        self.sections: list[SectionLoad] = []
        self._start: Checkpoint | None = None
        self._name = ""

    def begin(self, name: str) -> None:
        self._name = name
        self._start = checkpoint(self.proc)

    def end(self) -> SectionLoad:
        if self._start is None:
            raise RuntimeError("Watch.end() without Watch.begin()")
        seen = between(self._name, self._start, checkpoint(self.proc))
        verdict(seen, self.usable_cpus, first=not self.sections)
        self.sections.append(seen)
        self._start = None
        return seen

    def summary(self) -> dict:
        """For results.json: the rule, each section's facts, and the busy sections."""
        return summary(self.sections, self.usable_cpus)


def summary(sections: list[SectionLoad], usable_cpus: int) -> dict:
    return {
        "busy": any(s.busy for s in sections),
        "busy_sections": [s.name for s in sections if s.busy],
        "usable_cpus": usable_cpus,
        "rule": (f"busy: the 1-minute load average before the first section was at "
                 f"least {BUSY_SHARE:.0%} of the usable CPUs, other processes used at "
                 f"least {BUSY_SHARE:.0%} of them over a section, or another process "
                 f"used at least {HEAVY_PROCESS_CPUS} CPU over a section"),
        "sections": {s.name: s.to_json() for s in sections},
    }


# --- reading /proc -------------------------------------------------------------------------


def _clock_ticks() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        return 100


def _processes(proc: str) -> tuple[dict[int, tuple[str, float]], dict[int, int],
                                    dict[int, float]]:
    """Every process's name and CPU seconds (user + system), its parent's pid, and the
    CPU seconds of its children that ended and were waited for."""
    ticks = _clock_ticks()
    processes: dict[int, tuple[str, float]] = {}
    parents: dict[int, int] = {}
    reaped: dict[int, float] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return processes, parents, reaped
    for entry in names:
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "stat")) as stat:
                text = stat.read()
        except OSError:   # it ended while we looked
            continue
        parsed = parse_stat(text, ticks)
        if parsed is not None:
            name, parent, cpu_s, children_s = parsed
            processes[int(entry)] = (name, cpu_s)
            parents[int(entry)] = parent
            reaped[int(entry)] = children_s
    return processes, parents, reaped


def parse_stat(text: str, ticks: int) -> tuple[str, int, float, float] | None:
    """``/proc/<pid>/stat``: (name, parent pid, user + system CPU seconds, the same for
    its children that ended and were waited for). The name is between the first ``(``
    and the last ``)``: it may hold spaces and parentheses."""
    open_at, close_at = text.find("("), text.rfind(")")
    if open_at < 0 or close_at < open_at:
        return None
    fields = text[close_at + 2:].split()
    try:
        # After the name: state ppid ... utime stime cutime cstime (fields 14-17 of
        # proc(5), counted from the pid).
        return (text[open_at + 1:close_at], int(fields[1]),
                (int(fields[11]) + int(fields[12])) / ticks,
                (int(fields[13]) + int(fields[14])) / ticks)
    except (IndexError, ValueError):
        return None


def _tree(root: int, parents: dict[int, int]) -> set[int]:
    """``root`` and every process descended from it."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo += children.get(pid, [])
    return tree


def _cpu_busy_s(proc: str) -> float | None:
    """Busy CPU seconds, summed over the CPUs this process may run on (``/proc/stat``):
    user, nice, system, irq, softirq and steal (time another virtual machine took)."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = None
    try:
        with open(os.path.join(proc, "stat")) as stat:
            lines = stat.read().splitlines()
    except OSError:
        return None
    total = 0
    found = False
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        if allowed is not None and int(name[3:]) not in allowed:
            continue
        values = [int(v) for v in rest.split()]
        # user nice system idle iowait irq softirq steal (guest time is within user)
        total += sum(values[:3]) + sum(values[5:8])
        found = True
    return total / _clock_ticks() if found else None
