"""The ``allcores`` command follows argparse's conventions everywhere.

A mistake (an unknown option, a bad value, an ``--out`` that cannot be written, a bad
``ALLCORES_*`` variable) prints the subcommand's own usage and ``error: ...`` and exits
with status 2 before any work starts: the tests replace the work with a function that
fails the test if it is reached. More workers than usable CPUs is a warning, not a
refusal. Help texts are plain text and say what each subcommand does and writes. The
output folder holds only the current run's files, and never loses a user's own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

import allcores
from allcores import bench, cli, demo

PROG = "allcores"
SUBPROCESS_TIMEOUT_S = 120


def _never_reached(*args, **kwargs):
    raise AssertionError("the work started although the command line was refused")


@pytest.fixture
def no_work(monkeypatch):
    """Replace what each subcommand would run: a refused command line must not get there."""
    monkeypatch.setattr(bench, "run_benchmark", _never_reached)
    monkeypatch.setattr(demo, "run", _never_reached)


@pytest.fixture
def recorded_work(monkeypatch):
    """Replace the work with a recorder: what the subcommand would have run with."""
    calls = []
    monkeypatch.setattr(bench, "run_benchmark",
                        lambda config, prog: calls.append(("bench", config)) or 0)
    monkeypatch.setattr(demo, "run", lambda args: calls.append(("demo", args)) or 0)
    return calls


def _usage_error(capsys, argv: list[str]) -> str:
    """Run the command, expect argparse's exit status 2; return stderr."""
    with pytest.raises(SystemExit) as exited:
        cli.main(argv, prog=PROG)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {PROG} {argv[0]} "), err   # the subcommand's usage
    assert f"\n{PROG} {argv[0]}: error: " in err, err
    return err


# --- bad options --------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["bench", "demo", "info"])
def test_an_unknown_option_is_the_subcommand_s_error(command, capsys, no_work):
    err = _usage_error(capsys, [command, "--quik"])
    assert "error: unrecognized arguments: --quik" in err


@pytest.mark.parametrize("argv, message", [
    (["bench", "--workers", "0"], "argument --workers: expected an integer >= 1, got: '0'"),
    (["bench", "--workers", "two"], "argument --workers: expected an integer >= 1"),
    (["bench", "--repeat", "0"], "argument --repeat/--repeats: expected an integer >= 1"),
    (["bench", "--only", "kernel"], "argument --only: expected sections from kernels"),
    (["bench", "--scale", "5"], "argument --scale: expected a number in"),
    (["demo", "--workers", "0"], "argument --workers: expected an integer >= 1, got: '0'"),
    (["demo", "--workers", "-3"], "argument --workers: expected an integer >= 1, got: '-3'"),
    (["demo", "--workers", "1.5"], "argument --workers: expected an integer >= 1"),
])
def test_bad_values_are_usage_errors(argv, message, capsys, no_work, tmp_path):
    err = _usage_error(capsys, [*argv, "--out", str(tmp_path / "out")])
    assert message in err


def test_no_command_prints_the_help(capsys):
    assert cli.main([], prog=PROG) == 2
    assert "bench" in capsys.readouterr().err


# --- unusable output folders --------------------------------------------------------------


def _unusable_folders(tmp_path) -> dict[str, str]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    folders = {"a file": str(a_file), "under a file": str(a_file / "sub"),
               "/dev/null": os.devnull}
    if os.path.isdir("/proc/self"):   # Linux: no folder can be made in /proc
        folders["/proc"] = "/proc/nope"
    return folders


@pytest.mark.parametrize("command", ["bench", "demo"])
def test_an_unusable_out_is_a_usage_error_before_any_work(command, capsys, no_work,
                                                          tmp_path):
    for what, folder in _unusable_folders(tmp_path).items():
        err = _usage_error(capsys, [command, "--out", folder])
        assert f"error: argument --out: cannot write into {folder!r}" in err, what


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into any folder")
def test_a_read_only_out_is_a_usage_error(capsys, no_work, tmp_path):
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        err = _usage_error(capsys, ["bench", "--out", str(read_only)])
    finally:
        read_only.chmod(0o700)
    assert "cannot write into" in err


def test_the_benchmark_script_checks_out_too(tmp_path):
    """``benchmarks/run.py`` (bench's own parser, not the ``allcores`` command)."""
    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "run.py")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    proc = subprocess.run([sys.executable, script, "--out", str(a_file), "--quik"],
                          capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert proc.returncode == 2 and "error: unrecognized arguments: --quik" in proc.stderr
    proc = subprocess.run([sys.executable, script, "--out", str(a_file)],
                          capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.startswith("usage: ")
    assert "error: argument --out: cannot write into" in proc.stderr
    assert proc.stdout == ""   # nothing ran


# --- more workers than CPUs -----------------------------------------------------------------


@pytest.mark.parametrize("command", ["bench", "demo"])
def test_more_workers_than_cpus_is_a_warning(command, capsys, recorded_work, tmp_path):
    too_many = allcores.cpu_count() + 1
    assert cli.main([command, "--workers", str(too_many), "--out", str(tmp_path)],
                    prog=PROG) == 0
    assert len(recorded_work) == 1   # it ran
    _, ran_with = recorded_work[0]
    assert ran_with.workers == too_many
    err = capsys.readouterr().err
    assert (f"{PROG} {command}: warning: --workers {too_many} is more than the "
            f"{allcores.cpu_count()} CPU") in err


@pytest.mark.parametrize("command", ["bench", "demo"])
def test_workers_within_the_cpus_say_nothing(command, capsys, recorded_work, tmp_path):
    assert cli.main([command, "--workers", "1", "--out", str(tmp_path)], prog=PROG) == 0
    assert recorded_work and "warning" not in capsys.readouterr().err


def test_the_benchmark_script_warns_too(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "run_benchmark", lambda config, prog: 0)
    too_many = allcores.cpu_count() + 1
    assert bench.main(["--workers", str(too_many), "--out", str(tmp_path)],
                      prog="benchmarks/run.py") == 0
    assert f"benchmarks/run.py: warning: --workers {too_many}" in capsys.readouterr().err


# --- help ------------------------------------------------------------------------------------


def _help(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        cli.main([*argv, "--help"], prog=PROG)
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["bench"], ["demo"], ["info"]])
def test_help_is_plain_text(argv, capsys):
    text = _help(capsys, argv)
    for markup in ("``", ":func:", ":class:", ":meth:", ".. "):
        assert markup not in text, (argv, markup)
    assert max(len(line) for line in text.splitlines()) <= 80, argv


def test_bench_help_lists_the_sections_and_outputs(capsys):
    text = _help(capsys, ["bench"])
    for section in bench.SECTIONS:   # one line each: the name, then what it measures
        first_words = re.escape(" ".join(bench.SECTION_HELP[section].split()[:4]))
        assert re.search(rf"^  {section} +{first_words}", text, re.MULTILINE), section
    for output in ("results.json", "report.md", "kernels_speedup.png", "overhead.png",
                   "timeline_<strategy>.png"):
        assert output in text
    assert "removed first" in text   # what happens to an earlier run's files


def test_demo_and_info_help_say_what_they_do(capsys):
    text = _help(capsys, ["demo"])
    for name in demo.OUTPUT_NAMES:
        assert name in text
    assert "removed first" in text
    text = " ".join(_help(capsys, ["info"]).split())
    assert "usable CPUs" in text and "writes no files" in text


# --- the output folder holds only this run's files ------------------------------------------


def test_bench_names_every_file_it_writes():
    names = bench.output_names()
    assert {"results.json", "report.md", "kernels_speedup.png"} <= set(names)
    assert all(os.sep not in name and not name.startswith(".") for name in names)


@pytest.mark.parametrize("command, ours", [
    ("bench", bench.output_names()),
    ("demo", demo.OUTPUT_NAMES),
])
def test_an_earlier_run_s_files_are_removed_and_others_kept(command, ours, recorded_work,
                                                             tmp_path):
    for name in ours:
        (tmp_path / name).write_text("an earlier run")
    user_files = ["notes.txt", "my_plot.png", "results.json.bak"]
    for name in user_files:
        (tmp_path / name).write_text("the user's")
    (tmp_path / "subfolder").mkdir()
    assert cli.main([command, "--out", str(tmp_path)], prog=PROG) == 0
    assert recorded_work   # it ran, after clearing
    assert sorted(os.listdir(tmp_path)) == sorted([*user_files, "subfolder"])


def test_a_real_run_leaves_only_its_own_files(tmp_path):
    """``--only crash`` after a run that wrote plots and a report: the folder then holds
    this run's results.json and report.md, and the user's file, nothing else."""
    out = tmp_path / "results"
    out.mkdir()
    for stale in ("kernels_speedup.png", "timeline_static.png", "overhead.png"):
        (out / stale).write_bytes(b"stale")
    (out / "report.md").write_text("the earlier run's report")
    (out / "mine.txt").write_text("the user's")
    proc = subprocess.run(
        [sys.executable, "-m", "allcores", "bench", "--only", "crash", "--scale", "0.01",
         "--quick", "--repeat", "1", "--workers", "2", "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=SUBPROCESS_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["mine.txt", "report.md", "results.json"]
    assert "the earlier run" not in (out / "report.md").read_text()
    assert json.loads((out / "results.json").read_text())["config"]["sections"] == ["crash"]


# --- bad ALLCORES_* variables ----------------------------------------------------------------


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=SUBPROCESS_TIMEOUT_S)


def _allcores(*argv: str, cwd=None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "allcores", *argv], capture_output=True,
                          text=True, env={**os.environ, **env}, cwd=cwd,
                          timeout=SUBPROCESS_TIMEOUT_S)


BAD_VARIABLES = [
    # (variable, bad value, what the message must list as allowed)
    ("ALLCORES_WORKERS", "abc", "expected a positive integer"),
    ("ALLCORES_BACKEND", "gpu", "expected one of dask, process, serial, thread or auto"),
    ("ALLCORES_ISA", "bogus", "expected one of scalar, baseline, avx2, avx512 or auto"),
]


@pytest.mark.parametrize("variable, value, allowed", BAD_VARIABLES)
def test_a_bad_variable_never_breaks_import_or_info(variable, value, allowed):
    imported = _python("import allcores, allcores.native, allcores.kernels; print('ok')",
                       **{variable: value})
    assert imported.returncode == 0 and imported.stdout == "ok\n", imported.stderr
    info = _allcores("info", **{variable: value})
    assert info.returncode == 0, info.stderr
    assert f"{variable}={value}  BAD: {variable}: {allowed}" in info.stdout, info.stdout
    as_json = json.loads(_allcores("info", "--json", **{variable: value}).stdout)
    assert allowed in as_json["environment"][variable]["problem"]


@pytest.mark.parametrize("variable, value, allowed", BAD_VARIABLES[:2])
def test_a_bad_variable_is_named_where_it_is_used(variable, value, allowed, tmp_path):
    """ALLCORES_WORKERS and ALLCORES_BACKEND are read at each call: the first call that
    uses one raises a ValueError that names it; bench and demo refuse to start."""
    used = _python("import allcores; allcores.map(abs, range(10))", **{variable: value})
    assert used.returncode == 1
    assert f"ValueError: {variable}: {allowed}, got: {value!r}" in used.stderr
    for command in ("bench", "demo"):
        refused = _allcores(command, "--out", "unused", cwd=tmp_path, **{variable: value})
        assert refused.returncode == 2, refused.stderr
        assert f"error: {variable}: {allowed}, got: {value!r}" in refused.stderr
        assert refused.stdout == "" and not (tmp_path / "unused").exists()   # nothing ran
