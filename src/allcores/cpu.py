"""How many CPUs this process may really use.

``os.cpu_count()`` counts the CPUs the machine has, not the ones this process gets.
A pool sized by it oversubscribes whenever the process is confined, and the
confinement is the norm on shared machines and in containers:

- the **affinity mask** (``taskset``, ``numactl``, Slurm, ``docker --cpuset-cpus``)
  limits which CPUs the scheduler may run the process on;
- the **cgroup CPU quota** (``docker --cpus``, Kubernetes ``limits.cpu``, systemd
  ``CPUQuota=``) limits how much CPU time it may use per period: with 1.5 CPUs of
  quota on a 64-CPU host, 64 busy workers are throttled to 1.5 CPUs' worth of time
  and spend the rest waiting;
- the user may ask for fewer with ``ALLCORES_WORKERS``.

``cpu_count()`` is the smallest of these, never below 1; ``cpu_budget()`` also says
where each number came from, for ``allcores info``. The affinity mask and the
environment are read at every call (a microsecond: a process may be re-pinned with
``os.sched_setaffinity`` while it runs). The cgroup quota costs ~150 us to read (two
/proc files parsed, then the cgroup files) and the online count a /sys file, so both
are kept for ``QUOTA_TTL_S`` in the process that read them: a process moved to another
cgroup, a quota changed in place or a CPU taken offline is seen within that time, and
a forked child reads its own. A call that finds the same mask and override within that
time gets the same budget back (a map of ten items asks for it).

Where the cgroup quota lives::

    /proc/self/cgroup        0::/app/worker            (v2: one unified hierarchy)
                             4:cpu,cpuacct:/docker/abc (v1: one hierarchy per line)
    /proc/self/mountinfo     ... <root> <mount point> ... - cgroup2 ...
                             ... <root> <mount point> ... - cgroup ... rw,cpu,cpuacct
    v2 limit                 <mount point>/app/worker/cpu.max  "150000 100000" | "max 100000"
    v1 limit                 <mount point>/cpu.cfs_quota_us    "150000" | "-1"
                             <mount point>/cpu.cfs_period_us   "100000"

A quota set on an ancestor cgroup binds its descendants too, so every level from
the process's cgroup up to the mount's root is read and the smallest quota wins.
Any file that is missing, unreadable or garbled means "no limit from this source":
this module never raises because of the system it runs on, only because of a bad
``ALLCORES_WORKERS``.

Examples
--------
>>> import os
>>> from allcores.cpu import cpu_count
>>> 1 <= cpu_count() <= (os.cpu_count() or 1)
True
"""

from __future__ import annotations

import dataclasses
import math
import os
import posixpath
import re
import time
from collections.abc import Iterable, Mapping
from fractions import Fraction

__all__ = ["CpuBudget", "cpu_budget", "cpu_count"]

WORKERS_ENV = "ALLCORES_WORKERS"

# How long a quota read from the real /proc is trusted: calls in microseconds (a map of
# ten items) would otherwise spend most of their time here; a quota changes rarely.
QUOTA_TTL_S = 1.0

# Where systemd and container runtimes mount the unified hierarchy; used when
# /proc/self/mountinfo does not name a cgroup2 mount (unreadable, or a sandbox).
CGROUP2_DEFAULT_MOUNT = "/sys/fs/cgroup"

_POSITIVE_DECIMAL = re.compile(r"[0-9]+")
# mountinfo writes space, tab, newline and backslash in paths as octal escapes.
_MOUNTINFO_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclasses.dataclass(frozen=True)
class CpuBudget:
    """How many CPUs this process may use, and which limit decided it.

    Attributes
    ----------
    count : int
        The answer: the smallest of the limits below, at least 1.
    online : int or None
        CPUs in the machine (``os.cpu_count()``); None when unknown.
    affinity : int or None
        CPUs in the process's affinity mask; None where the platform has no mask.
    cgroup_quota : float or None
        The binding cgroup CPU quota in CPUs (quota / period, e.g. 1.5); None when
        unlimited or unknown.
    cgroup_file : str or None
        The file the binding quota was read from.
    override : int or None
        The value of ``ALLCORES_WORKERS``; None when it is not set.
    limited_by : str
        Which limit gave ``count``: ``"override"``, ``"cgroup"``, ``"affinity"`` or
        ``"online"``. When several give the same number, the earlier in this list
        is named: it is the more deliberate choice.

    See Also
    --------
    cpu_budget : this process's budget.
    cpu_count : its ``count``.

    Examples
    --------
    >>> from allcores.cpu import CpuBudget
    >>> budget = CpuBudget(count=2, online=8, affinity=8, cgroup_quota=1.5,
    ...                    cgroup_file="/sys/fs/cgroup/cpu.max", override=None,
    ...                    limited_by="cgroup")
    >>> budget.count
    2
    """

    count: int
    online: int | None
    affinity: int | None
    cgroup_quota: float | None
    cgroup_file: str | None
    override: int | None
    limited_by: str

    def explain(self) -> str:
        """One sentence saying what each limit allows and which one decided.

        Returns
        -------
        str
            For example ``"2 CPUs: machine has 8, affinity mask allows 4, cgroup
            quota allows 1.5 (rounded up to 2, from /sys/fs/cgroup/cpu.max),
            ALLCORES_WORKERS not set; limited by the cgroup quota."``. When no limit
            is below the machine's CPUs it ends ``"nothing limits it below the
            machine's CPUs."`` instead.

        Examples
        --------
        >>> from allcores.cpu import CpuBudget
        >>> budget = CpuBudget(count=2, online=8, affinity=8, cgroup_quota=1.5,
        ...                    cgroup_file="/sys/fs/cgroup/cpu.max", override=None,
        ...                    limited_by="cgroup")
        >>> print(budget.explain())
        2 CPUs: machine has 8, ... cgroup quota allows 1.5 ...; limited by the cgroup quota.
        """
        cpus = "CPU" if self.count == 1 else "CPUs"
        parts = [
            f"machine has {_or_unknown(self.online)}",
            f"affinity mask allows {_or_unknown(self.affinity)}",
            self._cgroup_part(),
            f"{WORKERS_ENV}={self.override}"
            if self.override is not None
            else f"{WORKERS_ENV} not set",
        ]
        return f"{self.count} {cpus}: {', '.join(parts)}; {self._verdict()}."

    def _verdict(self) -> str:
        # The mask (or the machine size) is always the ceiling; it only *limits* when it
        # allows fewer CPUs than the machine has.
        unlimited = (self.limited_by == "online"
                     or (self.limited_by == "affinity" and self.online is not None
                         and self.affinity is not None and self.affinity >= self.online))
        if unlimited:
            return "nothing limits it below the machine's CPUs"
        return f"limited by {_SOURCE_NAMES[self.limited_by]}"

    def _cgroup_part(self) -> str:
        if self.cgroup_quota is None:
            return "no cgroup CPU quota"
        return (
            f"cgroup quota allows {self.cgroup_quota:g} "
            f"(rounded up to {math.ceil(self.cgroup_quota)}, from {self.cgroup_file})"
        )


_SOURCE_NAMES = {
    "override": WORKERS_ENV,
    "cgroup": "the cgroup quota",
    "affinity": "the affinity mask",
    "online": "the CPUs online",
}


def _or_unknown(value: int | None) -> str:
    return "unknown" if value is None else str(value)


def cpu_count() -> int:
    """The number of CPUs this process may really use, at least 1.

    The smallest of the affinity mask, the cgroup CPU quota (rounded up) and
    ``ALLCORES_WORKERS``. Unlike ``os.cpu_count()``, it is the right size for a
    pool of CPU-bound workers inside a container or a ``taskset``.

    Returns
    -------
    int
        ``cpu_budget().count``.

    Raises
    ------
    ValueError
        If ``ALLCORES_WORKERS`` is set to anything but a positive integer.

    See Also
    --------
    cpu_budget : every limit, and which one decided.

    Notes
    -----
    The affinity mask and ``ALLCORES_WORKERS`` are read at every call; the cgroup
    quota and the online count are kept for a second. ``allcores info`` prints the
    budget with its reasons.

    Examples
    --------
    >>> import os, allcores
    >>> 1 <= allcores.cpu_count() <= (os.cpu_count() or 1)
    True
    """
    return cpu_budget().count


def cpu_budget(*, proc_root: str = "/proc", environ: Mapping[str, str] | None = None) -> CpuBudget:
    """Every limit on the CPUs this process may use, and the resulting count.

    Parameters
    ----------
    proc_root : str, optional
        Where ``self/cgroup`` and ``self/mountinfo`` are read from; tests point it
        at a fake tree. The cgroup files are read under the mount points that
        ``mountinfo`` names.
    environ : Mapping[str, str], optional
        Where ``ALLCORES_WORKERS`` is looked up; default ``os.environ``.

    Returns
    -------
    CpuBudget
        The count and the numbers it was derived from.

    Raises
    ------
    ValueError
        If ``ALLCORES_WORKERS`` is set to anything but a positive integer.

    Examples
    --------
    >>> from allcores.cpu import cpu_budget
    >>> budget = cpu_budget(environ={"ALLCORES_WORKERS": "1"})
    >>> budget.count, budget.override, budget.limited_by
    (1, 1, 'override')
    >>> cpu_budget(environ={"ALLCORES_WORKERS": "many"})
    Traceback (most recent call last):
    ...
    ValueError: ALLCORES_WORKERS: expected a positive integer, got: 'many'
    """
    if proc_root == "/proc" and environ is None:
        return _this_process_budget()
    return _budget(_workers_override(os.environ if environ is None else environ),
                   *_machine_limits(proc_root), _affinity_count())


# (pid, ALLCORES_WORKERS text, affinity count, time.monotonic() until which the machine
# limits hold, the budget): a call that finds the same process, override and mask
# within QUOTA_TTL_S returns the same budget (a map of ten items calls this each time).
_last_budget: tuple = (0, None, None, 0.0, None)


def _this_process_budget() -> CpuBudget:
    global _last_budget
    text, affinity = os.environ.get(WORKERS_ENV), _affinity_count()
    pid, last_text, last_affinity, until, budget = _last_budget
    if (pid == os.getpid() and text == last_text and affinity == last_affinity
            and time.monotonic() < until):
        return budget
    budget = _budget(_workers_override(os.environ), *_machine_limits("/proc"), affinity)
    _last_budget = (os.getpid(), text, affinity, _limits_read[1], budget)
    return budget


def _budget(override: int | None, online: int | None, quota: _Quota | None,
            affinity: int | None) -> CpuBudget:

    # Without an affinity mask the machine's CPUs are the ceiling.
    base_source, base = ("affinity", affinity) if affinity is not None else ("online", online or 1)
    limits = {
        "override": override,
        "cgroup": quota.ceiling if quota is not None else None,
        base_source: base,
    }
    count = max(1, min(n for n in limits.values() if n is not None))
    limited_by = next(name for name, n in limits.items() if n is not None and n <= count)
    return CpuBudget(
        count=count,
        online=online,
        affinity=affinity,
        cgroup_quota=float(quota.cpus) if quota is not None else None,
        cgroup_file=quota.file if quota is not None else None,
        override=override,
        limited_by=limited_by,
    )


# --- ALLCORES_WORKERS and the affinity mask ---


def _workers_override(environ: Mapping[str, str]) -> int | None:
    text = environ.get(WORKERS_ENV)
    # Like Python's own PYTHON* variables, an empty value means unset, so that
    # `ALLCORES_WORKERS= cmd` clears an exported value.
    if text is None or not text.strip():
        return None
    # Not int(): it accepts "+3", "3_000" and non-ASCII digits, none of which a
    # user typing a worker count means.
    if not _POSITIVE_DECIMAL.fullmatch(text.strip()) or int(text) < 1:
        raise ValueError(f"{WORKERS_ENV}: expected a positive integer, got: {text!r}")
    return int(text)


def _affinity_count() -> int | None:
    # os.process_cpu_count() (Python >= 3.13) is this same call where the platform
    # has it and os.cpu_count() elsewhere, so calling it directly serves every version.
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is None:
        return None
    try:
        return len(getaffinity(0)) or None
    except OSError:
        return None


# --- cgroup quota ---


@dataclasses.dataclass(frozen=True)
class _Quota:
    """A CPU quota read from one cgroup file: ``cpus`` CPUs' worth of time."""

    cpus: Fraction
    file: str

    @property
    def ceiling(self) -> int:
        # A quota of 0.5 CPU still runs one worker; Fraction keeps 3/1 exactly 3.
        return max(1, math.ceil(self.cpus))


@dataclasses.dataclass(frozen=True)
class _Mount:
    """One line of /proc/self/mountinfo, the fields this module needs."""

    root: str  # the path inside the hierarchy that is mounted, e.g. "/" or "/docker/abc"
    mount_point: str
    fstype: str
    super_options: frozenset[str]


@dataclasses.dataclass(frozen=True)
class _Membership:
    """One line of /proc/self/cgroup: the process's cgroup in one hierarchy."""

    controllers: frozenset[str]  # empty for the v2 unified hierarchy
    path: str


# (pid that read them, time.monotonic() until which they hold, (online CPUs, quota)):
# see QUOTA_TTL_S. os.cpu_count() reads a /sys file too.
_limits_read: tuple[int, float, tuple[int | None, _Quota | None]] = (0, 0.0, (None, None))


def _machine_limits(proc_root: str) -> tuple[int | None, _Quota | None]:
    """The online CPUs and the cgroup quota: from the real /proc at most once per
    QUOTA_TTL_S, from any other tree (tests) at every call."""
    global _limits_read
    if proc_root != "/proc":
        return os.cpu_count(), _cgroup_quota(proc_root)
    pid, until, limits = _limits_read
    now = time.monotonic()
    if pid != os.getpid() or now >= until:
        limits = (os.cpu_count(), _cgroup_quota("/proc"))
        _limits_read = (os.getpid(), now + QUOTA_TTL_S, limits)
    return limits


def _cgroup_quota(proc_root: str) -> _Quota | None:
    """The strictest quota over the v2 and v1 hierarchies the process is in."""
    memberships = _parse_proc_cgroup(_read_text(posixpath.join(proc_root, "self", "cgroup")))
    if not memberships:
        return None
    mounts = _parse_mountinfo(_read_text(posixpath.join(proc_root, "self", "mountinfo")))
    # On hybrid systems a process is in both; the cpu controller is attached to at
    # most one of them, and the other simply has no quota files.
    return _strictest([_v2_quota(memberships, mounts), _v1_quota(memberships, mounts)])


def _v2_quota(memberships: list[_Membership], mounts: list[_Mount]) -> _Quota | None:
    unified = next((m for m in memberships if not m.controllers), None)
    if unified is None:
        return None
    candidates = [m for m in mounts if m.fstype == "cgroup2"]
    if not candidates:
        candidates = [_Mount("/", CGROUP2_DEFAULT_MOUNT, "cgroup2", frozenset())]
    mount = _mount_holding(candidates, unified.path)
    if mount is None:
        return None
    directories = _cgroup_dirs(mount, unified.path)
    return _strictest(_read_cpu_max(posixpath.join(d, "cpu.max")) for d in directories)


def _v1_quota(memberships: list[_Membership], mounts: list[_Mount]) -> _Quota | None:
    member = next((m for m in memberships if "cpu" in m.controllers), None)
    if member is None:
        return None
    candidates = [m for m in mounts if m.fstype == "cgroup" and "cpu" in m.super_options]
    mount = _mount_holding(candidates, member.path)
    if mount is None:
        return None
    return _strictest(_read_cfs_quota(d) for d in _cgroup_dirs(mount, member.path))


def _strictest(quotas: Iterable[_Quota | None]) -> _Quota | None:
    # min() keeps the first of equals: given leaf first, a tie names the own cgroup.
    found = [q for q in quotas if q is not None]
    return min(found, key=lambda q: q.cpus, default=None)


def _mount_holding(mounts: list[_Mount], path: str) -> _Mount | None:
    """The mount whose root is the deepest ancestor of ``path``, if any."""
    holding = [m for m in mounts if _is_within(path, m.root)]
    return max(holding, key=lambda m: len(m.root), default=None)


def _is_within(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root.rstrip("/") + "/")


def _cgroup_dirs(mount: _Mount, path: str) -> list[str]:
    """The directories of ``path``'s cgroup and its ancestors in ``mount``, leaf first.

    A container that mounts its own cgroup as the hierarchy's root sees
    ``root=/docker/abc`` in mountinfo and ``/docker/abc`` in /proc/self/cgroup: its
    cgroup is the mount point itself, and ancestors above the root are not visible.
    """
    if not _is_within(path, mount.root):
        return []
    relative = path[len(mount.root.rstrip("/")):] if mount.root != "/" else path
    parts = [p for p in relative.split("/") if p]
    # A path outside the cgroup namespace reads "/../.."; it has no directory here.
    if ".." in parts or "." in parts:
        return []
    depths = range(len(parts), -1, -1)
    return [posixpath.join(mount.mount_point, *parts[:depth]) for depth in depths]


def _read_cpu_max(path: str) -> _Quota | None:
    """A v2 ``cpu.max``: ``"<quota> <period>"``, quota ``max`` meaning unlimited."""
    fields = (_read_text(path) or "").split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _quota(fields[0], fields[1], path)


def _read_cfs_quota(directory: str) -> _Quota | None:
    """A v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` pair; quota -1 is unlimited."""
    quota_file = posixpath.join(directory, "cpu.cfs_quota_us")
    quota = _read_text(quota_file)
    period = _read_text(posixpath.join(directory, "cpu.cfs_period_us"))
    if quota is None or period is None:
        return None
    return _quota(quota.strip(), period.strip(), quota_file)


def _quota(quota_text: str, period_text: str, file: str) -> _Quota | None:
    try:
        quota, period = int(quota_text), int(period_text)
    except ValueError:
        return None
    # -1 (v1's "unlimited") and garbage such as a zero period give no limit.
    if quota <= 0 or period <= 0:
        return None
    return _Quota(Fraction(quota, period), file)


# --- /proc parsing ---


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, ValueError):  # ValueError: undecodable bytes
        return None


def _parse_proc_cgroup(text: str | None) -> list[_Membership]:
    """``hierarchy-id:controller,list:/path`` lines; v2's line is ``0::/path``."""
    memberships = []
    for line in (text or "").splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3 or not fields[2].startswith("/"):
            continue
        controllers = frozenset(c for c in fields[1].split(",") if c)
        if not controllers and fields[0] != "0":
            continue  # a v1 named hierarchy with no controllers listed: not ours
        memberships.append(_Membership(controllers, fields[2]))
    return memberships


def _parse_mountinfo(text: str | None) -> list[_Mount]:
    """Mounts from mountinfo lines (proc(5)).

    ``id parent major:minor root mount-point options [optional...] - fstype source
    super-options``: the optional fields vary in number, hence the ``-`` search.
    """
    mounts = []
    for line in (text or "").splitlines():
        fields = line.split()
        try:
            separator = fields.index("-", 6)
        except ValueError:
            continue
        after = fields[separator + 1 :]
        if not after:
            continue
        super_options = after[2] if len(after) > 2 else ""
        mounts.append(
            _Mount(
                root=_unescape(fields[3]),
                mount_point=_unescape(fields[4]),
                fstype=after[0],
                super_options=frozenset(super_options.split(",")),
            )
        )
    return mounts


def _unescape(field: str) -> str:
    return _MOUNTINFO_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)
