"""Bounded in bytes, and nothing computed is withheld or dropped: the dispatcher's
promises about memory and about inputs that stall or fail (issue "Bounded in bytes",
cases 1 to 3; the benchmark's ``memory`` section measures the same at full size).

Every wait is bounded.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap
from concurrent.futures import Future
from pathlib import Path

import _workloads as w
import pytest
from _support import run_in_thread

import allcores
from allcores import dispatch
from allcores._execute import ChunkResult
from allcores.backends.base import Backend

BACKENDS = ["serial", "thread", "process"]
PARALLEL_BACKENDS = ["thread", "process"]
BOUND_S = 30
TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture(scope="module", params=BACKENDS)
def pool(request):
    with allcores.Pool(2, backend=request.param, insights=True) as pool:
        yield pool


# ======================================================================================
# 1. Chunks and the window are bounded in bytes and in items
# ======================================================================================


def test_cheap_items_make_chunks_of_at_most_max_chunk_items(pool):
    pool.insights(reset=True)
    total = sum(1 for _ in pool.imap(w.identity, iter(range(600_000))))
    assert total == 600_000
    sizes = [record.items for record in pool.insights().records]
    assert max(sizes) <= dispatch.MAX_CHUNK_ITEMS


@pytest.mark.parametrize("backend", ["process"])
def test_big_items_make_chunks_of_a_few_megabytes(backend):
    with allcores.Pool(2, backend=backend, insights=True) as pool:
        got = list(pool.imap(len, w.big_items(300, 100_000)))
        sizes = [record.items for record in pool.insights().records]
    assert got == [100_000] * 300
    # 100 kB an item (and a few bytes a result): about CHUNK_BYTES a chunk
    assert max(sizes) <= dispatch.CHUNK_BYTES // 100_000 + 1, sizes


def test_the_sizer_caps_by_bytes_and_items():
    sizer = dispatch.ChunkSizer(2)
    sizer.observe(10, 1e-6, nbytes=10 * 1_000_000)  # cheap items of 1 MB each
    assert sizer.size(10) == dispatch.CHUNK_BYTES // 1_000_000
    cheap = dispatch.ChunkSizer(2, seconds_per_item=1e-9)
    assert cheap.size(0) == dispatch.MAX_CHUNK_ITEMS
    fixed = dispatch.ChunkSizer(2, fixed=1000)
    fixed.observe(1000, 1.0, nbytes=10**9)
    assert fixed.size(0) == 1000  # an explicit chunksize is honoured
    assert fixed.bytes_of(1000) == pytest.approx(10**9)  # and counted by the window


class _InstantBackend(Backend):
    """Runs nothing: every chunk is done the moment it is submitted, its items said to
    have taken ``item_bytes`` each pickled. Records how many chunks were in flight
    (submitted, not yet handed back) at each submit."""

    name = "instant"
    runs_in_caller_process = True
    supports_timeout = False

    def __init__(self, item_bytes: int):
        self.workers = 2
        self.item_bytes = item_bytes
        self.submitted = 0
        self.handed_back = 0
        self.in_flight_at_submit: list[int] = []

    def submit(self, prepared_fn, chunk, star):
        self.in_flight_at_submit.append(self.submitted - self.handed_back)
        self.submitted += 1
        future = Future()
        future.set_result(ChunkResult(list(chunk.items), 1e-4,
                                      sent_bytes=self.item_bytes * len(chunk.items)))
        return future

    def shutdown(self, *, wait):
        pass


@pytest.mark.parametrize("max_bytes,most", [(2_500_000, 3), (10**9, 4)])
def test_the_window_holds_no_more_than_max_bytes(max_bytes, most):
    # Chunks of 10 items of 100 kB: 1 MB each. The window takes 4 chunks (2 x 2
    # workers); within 2.5 MB, 3 once their size is known (the last may cross the bound).
    backend = _InstantBackend(item_bytes=100_000)
    chunks = dispatch.ChunkSource(list(range(200)), dispatch.ChunkSizer(2, fixed=10))
    got = []
    for _, values in dispatch.run_chunks(backend, w.identity, chunks, ordered=True,
                                         max_bytes=max_bytes):
        backend.handed_back += 1
        got.extend(values)
    assert got == list(range(200))
    # the first chunks went before any size was known: from then on, the bound holds
    assert max(backend.in_flight_at_submit[4:]) + 1 == most


def test_max_bytes_is_checked():
    with pytest.raises(TypeError, match="max_bytes"):
        allcores.Pool(2, backend="thread", max_bytes=1.5)
    with pytest.raises(ValueError, match="max_bytes"):
        allcores.Pool(2, backend="thread", max_bytes=0)


def test_allcores_max_bytes_sets_the_default(monkeypatch):
    monkeypatch.setenv("ALLCORES_MAX_BYTES", "12345")
    assert dispatch.default_max_bytes() == 12345
    monkeypatch.setenv("ALLCORES_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="ALLCORES_MAX_BYTES"):
        dispatch.default_max_bytes()


MEMORY_PROBE = textwrap.dedent("""
    import json, sys
    import _workloads as w
    import allcores

    def peak_kib():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])

    if __name__ == "__main__":
        with allcores.Pool(2, backend="process") as pool:
            assert pool.map(w.identity, range(1000)) == list(range(1000))
            before = peak_kib()
            total = sum(pool.imap(len, w.big_items(int(sys.argv[1]), 100_000)))
        print(json.dumps({"total": total, "growth_mib": (peak_kib() - before) / 1024}))
""")


@pytest.mark.slow
def test_big_items_stream_in_bounded_memory():
    count = 4000  # 400 MB of items, made and dropped one by one
    run = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(count)], cwd=TESTS_DIR,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["total"] == count * 100_000
    assert report["growth_mib"] < 300, report


# ======================================================================================
# 2. Finished results are handed back while the input stalls
# ======================================================================================


@pytest.mark.parametrize("backend", PARALLEL_BACKENDS)
@pytest.mark.parametrize("method", ["imap", "imap_unordered"])
@pytest.mark.parametrize("chunksize", [None, 1, 10])
def test_results_reach_the_consumer_while_the_input_stalls(backend, method, chunksize,
                                                           tmp_path):
    gate = tmp_path / "gate"
    with allcores.Pool(2, backend=backend) as pool:
        stream = getattr(pool, method)(w.square, w.stalling_input(100, str(gate)),
                                       chunksize=chunksize)
        try:
            got = run_in_thread(lambda: [next(stream) for _ in range(100)], 10)()
        finally:
            gate.touch()  # let the input end
        assert sorted(got) == [x * x for x in range(100)]
        assert run_in_thread(lambda: list(stream), BOUND_S)() == []


# ======================================================================================
# 3. An input that fails: every earlier result first, then its exception
# ======================================================================================


@pytest.mark.parametrize("chunksize", [None, 1, 7, 1000])
def test_imap_yields_every_result_before_the_inputs_error(pool, chunksize):
    got = []
    with pytest.raises(w.InputBroke, match="after 52 items"):
        run_in_thread(lambda: got.extend(pool.imap(w.square, w.failing_input(52),
                                                   chunksize=chunksize)), BOUND_S)()
    assert got == [x * x for x in range(52)]


@pytest.mark.parametrize("chunksize", [None, 1, 7])
def test_imap_unordered_yields_every_result_before_the_inputs_error(pool, chunksize):
    got = []
    with pytest.raises(w.InputBroke):
        run_in_thread(lambda: got.extend(pool.imap_unordered(
            w.square, w.failing_input(52), chunksize=chunksize)), BOUND_S)()
    assert sorted(got) == [x * x for x in range(52)]


def test_map_raises_the_inputs_error(pool):
    with pytest.raises(w.InputBroke):
        pool.map(w.square, w.failing_input(20))
    assert pool.map(w.square, range(5)) == [0, 1, 4, 9, 16]


def test_an_input_that_fails_at_once(pool):
    with pytest.raises(w.InputBroke, match="after 0 items"):
        list(pool.imap(w.square, w.failing_input(0)))


def test_a_chunk_that_fails_before_the_inputs_error_is_raised_first(pool):
    # items 0..9, fn fails on 4: that error comes first (in order), not the input's
    with pytest.raises(ValueError, match="cannot handle 4"):
        list(pool.imap(functools.partial(w.fail_on, 4), w.failing_input(10), chunksize=2))


def test_module_level_imap_keeps_results_before_the_inputs_error():
    got = []
    with pytest.raises(w.InputBroke):
        for value in allcores.imap(w.square, w.failing_input(30), backend="thread"):
            got.append(value)
    assert got == [x * x for x in range(30)]
