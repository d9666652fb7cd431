"""``allcores demo``: it runs end to end as a user runs it, prints the arrival orders
and a summary per strategy, writes the three timelines, and still runs (without
drawing) when matplotlib is missing.

The end-to-end run is a fresh interpreter with a timeout, so a hang fails the test.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys

from allcores import demo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMELINES = [name for name, _ in demo.TIMELINES]
DEMO_TIMEOUT_S = 120


def _orders(text: str) -> tuple[list[int], list[int]]:
    ordered = re.search(r"imap +\(input order\): +([\d ]+)", text)
    unordered = re.search(r"imap_unordered \(completion order\): +([\d ?]+)", text)
    assert ordered and unordered, text
    return ([int(i) for i in ordered.group(1).split()],
            [int(i) for i in unordered.group(1).split()])


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "timelines"
    proc = subprocess.run(
        [sys.executable, "-m", "allcores", "demo", "--quick", "--workers", "2",
         "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=DEMO_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ordered, unordered = _orders(proc.stdout)
    items = list(range(len(demo.PRIME_BOUNDS)))
    assert ordered == items
    assert sorted(unordered) == items  # every item arrived once, in whatever order
    assert proc.stdout.count("utilisation") == len(TIMELINES)
    for name in TIMELINES:
        png = out / f"{name}.png"
        assert str(png) in proc.stdout
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, name
    assert sorted(p.name for p in out.iterdir()) == sorted(demo.OUTPUT_NAMES)
    assert "WRONG" not in proc.stdout


def test_demo_summarises_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    printed = io.StringIO()
    args = argparse.Namespace(out=str(tmp_path / "timelines"), workers=2, quick=True)
    assert demo.run(args, out=printed) == 0
    text = printed.getvalue()
    assert "matplotlib is missing" in text and 'pip install ".[plot]"' in text
    assert text.count("utilisation") == len(TIMELINES)
    assert not (tmp_path / "timelines").exists()


def test_demo_refuses_zero_workers_as_argparse_does(tmp_path):
    """The same form as bench's errors (usage, error, status 2), before anything runs
    (tests/test_cli.py checks every bad option of every subcommand)."""
    proc = subprocess.run(
        [sys.executable, "-m", "allcores", "demo", "--workers", "0", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=DEMO_TIMEOUT_S)
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: ")
    assert "demo: error: argument --workers: expected an integer >= 1, got: '0'" in proc.stderr
    assert proc.stdout == ""
