"""allcores.cpu: the usable CPU count from affinity, cgroup quota and ALLCORES_WORKERS.

Every test but the last few builds a fake /proc/self/{cgroup,mountinfo} and fake
cgroup mounts under ``tmp_path`` and fixes the affinity mask and ``os.cpu_count()``,
so the results do not depend on the machine running them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from allcores import cpu
from allcores.cpu import CpuBudget, cpu_budget, cpu_count

AFFINITY = 8  # CPUs in the fake affinity mask
ONLINE = 16  # CPUs the fake machine has


class FakeSystem:
    """A fake /proc and cgroup mounts under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc = root / "proc"
        (self.proc / "self").mkdir(parents=True)
        self.cgroup_lines: list[str] = []
        self.mount_lines: list[str] = []

    def _mount(self, directory: str, root: str, tail: str) -> Path:
        mount_point = self.root / directory
        mount_point.mkdir(parents=True)
        n = len(self.mount_lines) + 30
        escaped = str(mount_point).replace("\\", "\\134").replace(" ", "\\040")
        # "shared:N" is an optional field: the parser must find the "-" after it.
        self.mount_lines.append(f"{n} 23 0:{n} {root} {escaped} rw,nosuid shared:{n} - {tail}")
        self._flush()
        return mount_point

    def mount_v2(self, root: str = "/", directory: str = "unified") -> Path:
        return self._mount(directory, root, "cgroup2 cgroup2 rw,nsdelegate")

    def mount_v1(self, controllers: str = "cpu,cpuacct", root: str = "/") -> Path:
        return self._mount(controllers, root, f"cgroup cgroup rw,{controllers}")

    def member(self, line: str) -> None:
        self.cgroup_lines.append(line)
        self._flush()

    def _flush(self) -> None:
        (self.proc / "self" / "cgroup").write_text("".join(f"{x}\n" for x in self.cgroup_lines))
        (self.proc / "self" / "mountinfo").write_text("".join(f"{x}\n" for x in self.mount_lines))

    @staticmethod
    def write(directory: Path, name: str, content: str | bytes) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content + "\n")
        return path

    def budget(self, environ: dict[str, str] | None = None) -> CpuBudget:
        return cpu_budget(proc_root=str(self.proc), environ=environ or {})


@pytest.fixture
def fixed_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    # raising=False: platforms without sched_getaffinity get one for the test.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(AFFINITY)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: ONLINE)


@pytest.fixture
def fake(tmp_path: Path, fixed_cpus: None, monkeypatch: pytest.MonkeyPatch) -> FakeSystem:
    # The default v2 mount is used only when mountinfo names none; keep it in tmp_path.
    monkeypatch.setattr(cpu, "CGROUP2_DEFAULT_MOUNT", str(tmp_path / "default-cgroup2"))
    return FakeSystem(tmp_path)


def v2_with(fake: FakeSystem, path: str, cpu_max: dict[str, str]) -> FakeSystem:
    """A v2 system with the process in ``path`` and ``cpu.max`` files at ``cpu_max``."""
    mount = fake.mount_v2()
    fake.member(f"0::{path}")
    for relative, content in cpu_max.items():
        fake.write(mount / relative.strip("/"), "cpu.max", content)
    return fake


def v1_with(fake: FakeSystem, quota: str, period: str = "100000", path: str = "/") -> Path:
    """A v1 system with the process in ``path`` and that cgroup's quota; returns the quota file."""
    mount = fake.mount_v1()
    fake.mount_v1("cpuacct")  # a decoy: "cpuacct" must not match "cpu"
    fake.member("5:cpuacct:/")
    fake.member(f"4:cpu,cpuacct:{path}")
    directory = mount / path.strip("/")
    fake.write(directory, "cpu.cfs_period_us", period)
    return fake.write(directory, "cpu.cfs_quota_us", quota)


# --- cgroup v2 ---


def test_v2_unlimited_leaves_the_affinity_mask(fake):
    budget = v2_with(fake, "/app", {"/app": "max 100000", "/": "max 100000"}).budget()
    assert budget.count == AFFINITY
    assert budget.cgroup_quota is None and budget.cgroup_file is None
    assert budget.limited_by == "affinity"


def test_v2_fractional_quota_rounds_up(fake):
    v2_with(fake, "/app", {"/app": "150000 100000"})
    budget = fake.budget()
    assert budget.count == 2
    assert budget.cgroup_quota == 1.5
    assert budget.cgroup_file == str(fake.root / "unified" / "app" / "cpu.max")
    assert budget.limited_by == "cgroup"


def test_v2_quota_below_one_cpu_still_gives_one(fake):
    budget = v2_with(fake, "/app", {"/app": "50000 100000"}).budget()
    assert budget.count == 1
    assert budget.cgroup_quota == 0.5


def test_v2_whole_quota_is_not_rounded_up(fake):
    assert v2_with(fake, "/app", {"/app": "300000 100000"}).budget().count == 3


def test_v2_stricter_parent_binds_the_child(fake):
    v2_with(fake, "/parent/child", {"/parent/child": "400000 100000", "/parent": "100000 100000"})
    budget = fake.budget()
    assert budget.count == 1
    assert budget.cgroup_file == str(fake.root / "unified" / "parent" / "cpu.max")


def test_v2_stricter_child_binds_under_a_looser_parent(fake):
    v2_with(fake, "/parent/child", {"/parent/child": "200000 100000", "/parent": "600000 100000"})
    budget = fake.budget()
    assert budget.count == 2
    assert budget.cgroup_file.endswith(os.path.join("parent", "child", "cpu.max"))


def test_v2_own_cgroup_without_cpu_max_inherits_the_ancestor_limit(fake):
    v2_with(fake, "/slice/app", {"/slice": "250000 100000"})
    (fake.root / "unified" / "slice" / "app").mkdir()
    assert fake.budget().count == 3


def test_v2_limit_at_the_mount_root_counts(fake):
    assert v2_with(fake, "/a/b", {"/": "200000 100000"}).budget().count == 2


def test_v2_mount_point_with_a_space(fake):
    mount = fake.mount_v2(directory="cgroup two")
    fake.member("0::/app")
    fake.write(mount / "app", "cpu.max", "100000 100000")
    assert fake.budget().count == 1


def test_v2_container_mounting_its_own_cgroup_as_root(fake):
    mount = fake.mount_v2(root="/kubepods/pod1")
    fake.member("0::/kubepods/pod1/app")
    fake.write(mount / "app", "cpu.max", "200000 100000")
    assert fake.budget().count == 2


def test_v2_mountinfo_without_cgroup2_uses_the_default_mount(fake):
    fake.member("0::/app")
    fake.write(Path(cpu.CGROUP2_DEFAULT_MOUNT) / "app", "cpu.max", "100000 100000")
    (fake.proc / "self" / "mountinfo").unlink()
    assert fake.budget().count == 1


def test_v2_path_outside_the_cgroup_namespace_gives_no_limit(fake):
    v2_with(fake, "/../sibling", {"/": "100000 100000", "/sibling": "100000 100000"})
    # The "/" limit is not an ancestor of a cgroup we cannot see.
    assert fake.budget().count == AFFINITY


# --- cgroup v1 ---


def test_v1_quota(fake):
    quota_file = v1_with(fake, "250000")
    budget = fake.budget()
    assert (budget.count, budget.cgroup_quota, budget.limited_by) == (3, 2.5, "cgroup")
    assert budget.cgroup_file == str(quota_file)


def test_v1_minus_one_quota_is_unlimited(fake):
    v1_with(fake, "-1")
    budget = fake.budget()
    assert budget.count == AFFINITY
    assert budget.cgroup_quota is None


def test_v1_nested_cgroup_reads_its_own_directory(fake):
    v1_with(fake, "100000", path="/docker/abc")
    assert fake.budget().count == 1


def test_v1_container_mounting_its_own_cgroup_as_root(fake):
    # Inside a container without a cgroup namespace: /proc/self/cgroup shows the
    # host path, and mountinfo shows that path as the root of the mount.
    mount = fake.mount_v1(root="/docker/abc")
    fake.member("4:cpu,cpuacct:/docker/abc")
    fake.write(mount, "cpu.cfs_quota_us", "150000")
    fake.write(mount, "cpu.cfs_period_us", "100000")
    budget = fake.budget()
    assert budget.count == 2
    assert budget.cgroup_file == str(mount / "cpu.cfs_quota_us")


def test_v1_container_root_with_a_sub_cgroup(fake):
    mount = fake.mount_v1(root="/docker/abc")
    fake.member("4:cpu,cpuacct:/docker/abc/worker")
    fake.write(mount / "worker", "cpu.cfs_quota_us", "-1")
    fake.write(mount / "worker", "cpu.cfs_period_us", "100000")
    fake.write(mount, "cpu.cfs_quota_us", "100000")
    fake.write(mount, "cpu.cfs_period_us", "100000")
    assert fake.budget().count == 1


@pytest.mark.parametrize("mount_root", ["/docker/other", "/docker/ab"])
def test_v1_mount_of_another_cgroup_is_ignored(fake, mount_root):
    mount = fake.mount_v1(root=mount_root)
    fake.member("4:cpu,cpuacct:/docker/abc")
    fake.write(mount, "cpu.cfs_quota_us", "100000")
    fake.write(mount, "cpu.cfs_period_us", "100000")
    assert fake.budget().count == AFFINITY


def test_hybrid_takes_the_v1_quota_when_v2_has_none(fake):
    fake.mount_v2()
    fake.member("0::/")
    v1_with(fake, "200000")
    assert fake.budget().count == 2


def test_hybrid_takes_the_stricter_of_v1_and_v2(fake):
    v2_with(fake, "/app", {"/app": "100000 100000"})
    v1_with(fake, "300000")
    budget = fake.budget()
    assert budget.count == 1
    assert budget.cgroup_file.endswith("cpu.max")


# --- missing and garbled files: no limit, no crash ---


def test_missing_proc_self_cgroup(fake):
    assert fake.budget().count == AFFINITY


def test_missing_proc_root(fake):
    budget = cpu_budget(proc_root=str(fake.root / "no-such-dir"), environ={})
    assert budget.count == AFFINITY


@pytest.mark.parametrize(
    "content",
    [
        "",
        "garbage",
        "150000",
        "abc 100000",
        "150000 abc",
        "150000 0",
        "0 100000",
        "-5 100000",
        "150000 100000 7",
        "1.5 1",
        b"\xff\xfe 100000",
    ],
)
def test_garbled_cpu_max_means_no_limit(fake, content):
    v2_with(fake, "/app", {"/app": content})
    budget = fake.budget()
    assert budget.count == AFFINITY
    assert budget.cgroup_quota is None


def test_unreadable_cpu_max_means_no_limit(fake):
    mount = fake.mount_v2()
    fake.member("0::/app")
    (mount / "app" / "cpu.max").mkdir(parents=True)  # open() fails with an OSError
    assert fake.budget().count == AFFINITY


@pytest.mark.parametrize(
    ("quota", "period"),
    [("abc", "100000"), ("100000", "abc"), ("100000", "0"), ("", ""), ("0", "100000")],
)
def test_garbled_cfs_files_mean_no_limit(fake, quota, period):
    v1_with(fake, quota, period)
    assert fake.budget().count == AFFINITY


def test_v1_period_file_missing_means_no_limit(fake):
    quota_file = v1_with(fake, "100000")
    (quota_file.parent / "cpu.cfs_period_us").unlink()
    assert fake.budget().count == AFFINITY


@pytest.mark.parametrize(
    "cgroup_text",
    ["nonsense\n", "0:/app\n", "4:cpu:relative/path\n", "::::\n", "\n\n", b"\xff\xfe\n"],
)
def test_garbled_proc_self_cgroup_means_no_limit(fake, cgroup_text):
    fake.mount_v2()
    fake.write(fake.root / "unified", "cpu.max", "100000 100000")
    path = fake.proc / "self" / "cgroup"
    if isinstance(cgroup_text, bytes):
        path.write_bytes(cgroup_text)
    else:
        path.write_text(cgroup_text)
    assert fake.budget().count == AFFINITY


def test_garbled_mountinfo_lines_are_skipped(fake):
    v2_with(fake, "/app", {"/app": "100000 100000"})
    mountinfo = fake.proc / "self" / "mountinfo"
    mountinfo.write_text("garbage\n1 2 3\n1 2 3 4 5 6 7 -\n" + mountinfo.read_text())
    assert fake.budget().count == 1


# --- affinity mask and machine size ---


def test_affinity_mask_smaller_than_the_quota_wins(fake, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 5, 7}, raising=False)
    v2_with(fake, "/app", {"/app": "400000 100000"})
    budget = fake.budget()
    assert (budget.count, budget.affinity, budget.limited_by) == (3, 3, "affinity")


def test_quota_smaller_than_the_affinity_mask_wins(fake, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 5, 7}, raising=False)
    v2_with(fake, "/app", {"/app": "200000 100000"})
    budget = fake.budget()
    assert (budget.count, budget.affinity, budget.limited_by) == (2, 3, "cgroup")


def test_without_affinity_support_the_machine_size_is_the_ceiling(fake, monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    budget = fake.budget()
    assert (budget.count, budget.affinity, budget.online, budget.limited_by) == (
        ONLINE,
        None,
        ONLINE,
        "online",
    )


def test_failing_affinity_call_falls_back_to_the_machine_size(fake, monkeypatch):
    def fail(pid):
        raise OSError("not permitted")

    monkeypatch.setattr(os, "sched_getaffinity", fail, raising=False)
    assert fake.budget().count == ONLINE


def test_nothing_known_gives_one(fake, monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    budget = fake.budget()
    assert (budget.count, budget.online, budget.limited_by) == (1, None, "online")


# --- ALLCORES_WORKERS ---


def test_override_lowers_the_count(fake):
    budget = fake.budget({"ALLCORES_WORKERS": "1"})
    assert (budget.count, budget.override, budget.limited_by) == (1, 1, "override")


def test_override_cannot_raise_the_count_above_the_cpus(fake):
    budget = fake.budget({"ALLCORES_WORKERS": "100"})
    assert (budget.count, budget.override, budget.limited_by) == (AFFINITY, 100, "affinity")


def test_override_equal_to_the_quota_is_named_as_the_limit(fake):
    v2_with(fake, "/app", {"/app": "200000 100000"})
    budget = fake.budget({"ALLCORES_WORKERS": "2"})
    assert (budget.count, budget.limited_by) == (2, "override")


def test_empty_override_is_unset(fake):
    assert fake.budget({"ALLCORES_WORKERS": ""}).override is None


@pytest.mark.parametrize("value", ["0", "-2", "abc", "1.5", "+3", "3_000", "\u0663", "1e3", "2 3"])
def test_bad_override_raises(fake, value):
    with pytest.raises(ValueError, match="ALLCORES_WORKERS") as error:
        fake.budget({"ALLCORES_WORKERS": value})
    assert str(error.value) == f"ALLCORES_WORKERS: expected a positive integer, got: {value!r}"


def test_cpu_count_reads_the_process_environment(fixed_cpus, monkeypatch):
    monkeypatch.setenv("ALLCORES_WORKERS", "1")
    assert cpu_count() == 1
    monkeypatch.setenv("ALLCORES_WORKERS", "abc")
    with pytest.raises(ValueError, match="'abc'"):
        cpu_count()


# --- the budget object ---


def test_explain_names_the_limiting_source(fake):
    v2_with(fake, "/app", {"/app": "150000 100000"})
    cpu_max = str(fake.root / "unified" / "app" / "cpu.max")
    assert fake.budget().explain() == (
        f"2 CPUs: machine has {ONLINE}, affinity mask allows {AFFINITY}, cgroup quota allows 1.5 "
        f"(rounded up to 2, from {cpu_max}), ALLCORES_WORKERS not set; limited by the cgroup quota."
    )
    assert fake.budget({"ALLCORES_WORKERS": "1"}).explain().endswith(
        "ALLCORES_WORKERS=1; limited by ALLCORES_WORKERS."
    )


def test_explain_without_cgroup_limit(fake):
    text = fake.budget().explain()
    assert text.startswith(f"{AFFINITY} CPUs:")
    assert "no cgroup CPU quota" in text
    assert text.endswith("limited by the affinity mask.")


def test_explain_claims_no_limit_when_none_binds(fake, monkeypatch):
    """A mask that allows every CPU of the machine limits nothing: "limited by the
    affinity mask" would send a user looking for a taskset that is not there."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(ONLINE)), raising=False)
    everything = fake.budget().explain()
    assert everything.startswith(
        f"{ONLINE} CPUs: machine has {ONLINE}, affinity mask allows {ONLINE}")
    assert everything.endswith("; nothing limits it below the machine's CPUs.")
    assert "limited by" not in everything
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)   # no mask at all
    assert fake.budget().explain().endswith("; nothing limits it below the machine's CPUs.")


def test_budget_is_frozen(fake):
    with pytest.raises(dataclasses.FrozenInstanceError):
        fake.budget().count = 99


def test_nothing_is_cached(fake):
    v2_with(fake, "/app", {"/app": "100000 100000"})
    assert fake.budget().count == 1
    fake.write(fake.root / "unified" / "app", "cpu.max", "max 100000")
    assert fake.budget().count == AFFINITY


# --- this machine ---


def test_real_cpu_count_is_within_the_machine(monkeypatch):
    monkeypatch.delenv("ALLCORES_WORKERS", raising=False)
    count = cpu_count()
    assert isinstance(count, int)
    assert 1 <= count <= (os.cpu_count() or 1)


def test_real_budget_is_consistent(monkeypatch):
    monkeypatch.delenv("ALLCORES_WORKERS", raising=False)
    budget = cpu_budget()
    limits = [budget.affinity if budget.affinity is not None else budget.online or 1]
    if budget.cgroup_quota is not None:
        limits.append(-(-budget.cgroup_quota // 1))
    assert budget.count == max(1, min(limits))
    assert budget.override is None
    assert budget.limited_by in {"affinity", "cgroup", "online"}
    assert budget.explain().startswith(f"{budget.count} CPU")


# --- the cached quota of the real /proc ---


@pytest.fixture
def counted_quota_reads(monkeypatch):
    """Counts the reads of the real cgroup files; each read returns the next quota."""
    reads: list[str] = []
    quotas = iter([None, cpu._Quota(cpu.Fraction(1), "first"), None])

    def read(proc_root):
        reads.append(proc_root)
        return next(quotas)

    monkeypatch.setattr(cpu, "_cgroup_quota", read)
    monkeypatch.setattr(cpu, "_limits_read", (0, 0.0, (None, None)))
    monkeypatch.setattr(cpu, "_last_budget", (0, None, None, 0.0, None))
    monkeypatch.delenv("ALLCORES_WORKERS", raising=False)
    return reads


def test_the_quota_is_read_once_per_ttl(counted_quota_reads, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(cpu.time, "monotonic", lambda: now[0])
    first = cpu_budget()
    assert cpu_budget() == first and len(counted_quota_reads) == 1
    now[0] += cpu.QUOTA_TTL_S  # expired: a quota set meanwhile is seen
    assert cpu_budget().cgroup_file == "first" and cpu_count() == 1
    assert len(counted_quota_reads) == 2


def test_the_affinity_mask_and_the_override_are_read_at_every_call(counted_quota_reads,
                                                                   monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert cpu_budget().affinity == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5}, raising=False)
    assert cpu_count() == 1  # re-pinned: seen at once, not after the quota's TTL
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setenv("ALLCORES_WORKERS", "2")
    assert cpu_count() == 2
    monkeypatch.setenv("ALLCORES_WORKERS", "abc")
    with pytest.raises(ValueError):
        cpu_count()
    assert len(counted_quota_reads) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_reads_its_own_quota(counted_quota_reads):
    cpu_budget()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report how many reads it made, then leave at once
        try:
            cpu_budget()
            os.write(write, str(len(counted_quota_reads)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as child:
        reported = child.read()
    os.waitpid(pid, 0)
    assert reported == "2" and len(counted_quota_reads) == 1
