"""``allcores.blocks``: a user's function over blocks of an index range, on every backend.

- Split invariance: any block split, any backend, any number of workers, the same result
  (``fine_blocks`` makes even tiny jobs split into many blocks).
- Placement: ``fill`` blocks write in place on threads and serially, through shared
  memory on processes (no segment survives the call), by value where shared memory is
  out of reach; ``sliced`` inputs reach each block as its rows.
- Failures: a block that raises (its bounds in the note), a worker that dies in a block
  (run again: the result stays exact), Ctrl-C while blocks run.
- Arguments are checked before any work starts.

The block functions are defined here, at module level: worker processes import this
module by name (pytest puts ``tests/`` on ``sys.path`` before any pool starts).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

import allcores
from allcores import _block_task, blocks, shortcuts

import _workloads as w
from _support import ctrl_c_once_started

BACKENDS = ["serial", "thread", "process"]
WAIT_LIMIT_S = 30.0
SHM_DIR = "/dev/shm"


# --- block functions ----------------------------------------------------------------------


def count_multiples(a, b, k):
    return sum(1 for i in range(a, b) if i % k == 0)


def sum_and_max_of_squares(a, b):
    squares = [i * i for i in range(a, b)]
    return sum(squares), max(squares)


def table_rows(a, b, rows, width):
    rows[:] = np.arange(a, b)[:, None] * width + np.arange(width)


def doubled_rows(a, b, rows, values):
    assert len(values) == b - a  # only its own rows of the sliced input
    rows[:] = values * 2


def spin_block(seconds_per_index, a, b):
    """Spin the CPU (holding the GIL) for ``seconds_per_index`` per index; the count."""
    w.cpu_spin(seconds_per_index * (b - a))
    return b - a


def raise_in_block(bad, a, b):
    if a <= bad < b:
        raise ValueError(f"cannot handle index {bad}")
    return b - a


def die_once_in_block(marker, bad, a, b, rows):
    if a <= bad < b:
        w.die_once_on(marker, "exit", bad, bad)
    rows[:, 0] = np.arange(a, b)


def wait_in_block(started, a, b):
    """Say it started (the file ``started``), then wait for ``<started>.gate``, which the
    test opens once it has pressed Ctrl-C."""
    open(started, "w").close()
    w.wait_for_path(started + ".gate")
    return b - a


def expected_table(height, width):
    return np.arange(height * width).reshape(height, width)


@pytest.fixture
def fine_blocks(monkeypatch):
    """Blocks as small as allowed, so that tiny jobs are really split: about
    workers * BLOCKS_PER_WORKER of them, after a probe of a few indexes."""
    monkeypatch.setattr(blocks, "MIN_BLOCK_S", dict.fromkeys(blocks.MIN_BLOCK_S, 1e-12))
    monkeypatch.setattr(blocks, "SERIAL_BELOW_S", dict.fromkeys(blocks.SERIAL_BELOW_S, 0.0))
    monkeypatch.setattr(blocks, "PROBE_S", 0.0)


@pytest.fixture(autouse=True)
def no_backend_from_environment(monkeypatch):
    monkeypatch.delenv("ALLCORES_BACKEND", raising=False)


@pytest.fixture
def map_calls(monkeypatch):
    """Every ``shortcuts.map`` call the block API makes: its blocks and options."""
    calls = []
    real_map = shortcuts.map

    def spy(fn, iterable, **options):
        calls.append({"fn": fn, "blocks": list(iterable), **options})
        return real_map(fn, calls[-1]["blocks"], **options)

    monkeypatch.setattr(shortcuts, "map", spy)
    return calls


# --- the same result for every split --------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("backend", BACKENDS)
def test_reduce_is_split_invariant(fine_blocks, backend, workers):
    got = blocks.reduce(count_multiples, 3, 5_000, args=(7,), workers=workers,
                        backend=backend)
    assert got == len([i for i in range(3, 5_000) if i % 7 == 0])


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("backend", BACKENDS)
def test_fill_is_split_invariant(fine_blocks, backend, workers):
    got = blocks.fill(table_rows, (301, 4), np.int64, args=(4,), workers=workers,
                      backend=backend)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected_table(301, 4))


@pytest.mark.parametrize("backend", BACKENDS)
def test_sliced_inputs_reach_each_block_as_its_rows(fine_blocks, backend):
    values = np.arange(1_000, dtype=np.float64) ** 0.5
    got = blocks.fill(doubled_rows, 1_000, args=(blocks.sliced(values),), workers=2,
                      backend=backend)
    np.testing.assert_array_equal(got, 2 * values)


@pytest.mark.parametrize("combine, expected", [
    ("sum", sum(i * i for i in range(100))),
    ("min", 0),
    ("max", 99 * 99),
])
def test_named_combines(fine_blocks, combine, expected):
    got = blocks.reduce(lambda a, b: functools.reduce(
        {"sum": int.__add__, "min": min, "max": max}[combine], (i * i for i in range(a, b))),
        0, 100, combine=combine, workers=2, backend="thread")
    assert got == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_combine_function_gets_the_values_in_block_order(fine_blocks, backend):
    def combine(parts):
        return sum(total for total, _ in parts), max(top for _, top in parts)

    got = blocks.reduce(sum_and_max_of_squares, 0, 2_000, combine=combine, workers=2,
                        backend=backend)
    assert got == (sum(i * i for i in range(2_000)), 1_999 ** 2)


def test_the_blocks_cover_the_range_once_in_order(fine_blocks, map_calls):
    blocks.fill(table_rows, (500, 3), np.int64, args=(3,), workers=3, backend="thread")
    (call,) = map_calls
    ran = call["blocks"]
    assert len(ran) == 3 * blocks.BLOCKS_PER_WORKER  # really split
    assert all(a < b for a, b in ran)
    assert all(b == c for (_, b), (c, _) in zip(ran, ran[1:]))
    assert ran[-1][1] == 500 and call["chunksize"] == 1


def test_split_is_exact():
    assert blocks.split(0, 10, 3) == [(0, 3), (3, 6), (6, 10)]
    for size in range(0, 30):
        for count in range(1, max(size, 1) + 1):
            pieces = blocks.split(5, 5 + size, count)
            assert len(pieces) == count and pieces[0][0] == 5 and pieces[-1][1] == 5 + size
            assert all(b == c for (_, b), (c, _) in zip(pieces, pieces[1:]))


# --- choosing the backend and the blocks ------------------------------------------------------


def test_a_short_job_runs_serially_without_a_pool(map_calls):
    assert blocks.reduce(count_multiples, 0, 1_000, args=(3,), cost=1e-9) == 334
    assert map_calls == []


def test_a_nogil_function_runs_on_threads(monkeypatch):
    marked = allcores.nogil(functools.partial(count_multiples))
    plan = blocks.plan_blocks(marked, 0, 10**9, cost=1e-8, workers=2, backend="auto")
    assert plan.backend == "thread" and len(plan.blocks) == 2 * blocks.BLOCKS_PER_WORKER


def test_with_a_cost_an_unmarked_function_runs_on_processes():
    plan = blocks.plan_blocks(count_multiples, 0, 10**9, cost=1e-8, workers=2,
                              backend="auto")
    assert plan.backend == "process"
    # Without a cost, the map planner decides by measuring.
    assert blocks.plan_blocks(count_multiples, 0, 10**6, cost=None, workers=2,
                              backend="auto").backend == "auto"


def test_a_measured_cost_leaves_the_backend_to_the_map_planner(map_calls, monkeypatch):
    # Without cost=, the probe measures the cost; whether threads pay for a function
    # not marked nogil is then the map planner's measurement, not a guess.
    monkeypatch.setattr(blocks, "PROBE_S", 0.0)
    assert blocks.plan_blocks(count_multiples, 0, 10**9, cost=1e-8, workers=2,
                              backend="auto", measured=True).backend == "auto"
    slow = functools.partial(spin_block, 0.002)
    assert blocks.reduce(slow, 0, 40, workers=2) == 40
    assert [call["backend"] for call in map_calls] == ["auto"]


def test_no_block_is_shorter_than_min_block_or_the_minimum_work():
    plan = blocks.plan_blocks(count_multiples, 0, 1_000, cost=1.0, workers=4,
                              backend="thread", min_block=300)
    assert len(plan.blocks) == 3
    plan = blocks.plan_blocks(count_multiples, 0, 10**6, cost=1e-8, workers=4,
                              backend="thread")
    # 10 ms of work, blocks of at least MIN_BLOCK_S (2 ms) on threads
    assert len(plan.blocks) == int(10**6 * 1e-8 / blocks.MIN_BLOCK_S["thread"])


def test_an_explicit_backend_and_the_environment_win(monkeypatch):
    assert blocks.plan_blocks(count_multiples, 0, 10, cost=1e-9, workers=2,
                              backend="process").backend == "process"
    monkeypatch.setenv("ALLCORES_BACKEND", "thread")
    assert blocks.plan_blocks(count_multiples, 0, 10**9, cost=1e-6, workers=2,
                              backend="auto").backend == "thread"


def test_progress_and_insights_go_to_the_map(fine_blocks, map_calls):
    blocks.reduce(count_multiples, 0, 3_000, args=(5,), workers=2, backend="thread",
                  insights=True)
    assert map_calls[0]["insights"] is True and map_calls[0]["progress"] is False


# --- where fill's blocks write -------------------------------------------------------------


def test_thread_blocks_write_in_place(fine_blocks, map_calls):
    blocks.fill(table_rows, (200, 2), np.int64, args=(2,), workers=2, backend="thread")
    task = map_calls[0]["fn"]
    assert task.out is not None and isinstance(task.out.array, np.ndarray)
    assert task.out.shared is None  # nothing crossed to another process


@pytest.mark.skipif(not os.path.isdir(SHM_DIR), reason="no /dev/shm here")
def test_process_blocks_write_through_shared_memory_and_leave_none(fine_blocks):
    before = set(os.listdir(SHM_DIR))
    got = blocks.fill(table_rows, (200, 2), np.int64, args=(2,), workers=2,
                      backend="process")
    np.testing.assert_array_equal(got, expected_table(200, 2))
    assert not {n for n in set(os.listdir(SHM_DIR)) - before if n.startswith("psm_")}


def test_blocks_out_of_reach_of_shared_memory_return_their_rows():
    # What a Dask worker on another machine gets: an output whose segment was made on
    # a machine that is not this one. The block computes its rows privately and
    # returns them for the caller to put in place.
    elsewhere = _block_task.Remote(None, "another machine", (120, 3), "<i8")
    assert not elsewhere.reachable
    rows = _block_task.Task(table_rows, (3,), elsewhere)((10, 13))
    np.testing.assert_array_equal(rows, expected_table(120, 3)[10:13])
    sliced_input = _block_task.Sliced(elsewhere, 0)
    with pytest.raises(RuntimeError, match="another machine"):
        _block_task.rows_of(sliced_input, 0, 3, [])


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_block_that_raises_names_its_bounds(fine_blocks, backend):
    with pytest.raises(ValueError, match="cannot handle index 777") as info:
        blocks.reduce(functools.partial(raise_in_block, 777), 0, 2_000, workers=2,
                      backend=backend)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "allcores.blocks: in the block [" in notes
    a, b = (int(x) for x in notes.split("in the block [")[1].split(")")[0].split(", "))
    assert a <= 777 < b


@pytest.mark.slow
def test_a_worker_that_dies_in_a_block_is_replaced_and_the_result_exact(fine_blocks,
                                                                         tmp_path):
    marker = str(tmp_path / "died")
    got = blocks.fill(functools.partial(die_once_in_block, marker, 150), (300, 1),
                      np.int64, workers=2, backend="process")
    assert os.path.exists(marker)  # a worker did die
    np.testing.assert_array_equal(got[:, 0], np.arange(300))


@pytest.mark.slow
def test_ctrl_c_while_blocks_run(fine_blocks, tmp_path):
    started = tmp_path / "started"
    ctrl_c_once_started(
        # cost= given: no probe in the caller, every block goes to the worker processes
        started, lambda: blocks.reduce(functools.partial(wait_in_block, str(started)),
                                       0, 100, cost=1.0, workers=2, backend="process"),
        WAIT_LIMIT_S)
    # The pool Ctrl-C stopped is replaced on the next call.
    assert blocks.reduce(count_multiples, 0, 100, args=(10,), workers=2,
                         backend="process") == 10


# --- arguments are checked first --------------------------------------------------------------


@pytest.mark.parametrize("call, error, match", [
    (lambda: blocks.reduce(5, 0, 10), TypeError, "fn"),
    (lambda: blocks.reduce(count_multiples, 10, 0, args=(2,)), ValueError, "stop"),
    (lambda: blocks.reduce(count_multiples, 0, 0, args=(2,)), ValueError, "empty"),
    (lambda: blocks.reduce(count_multiples, 0.5, 10), TypeError, "start"),
    (lambda: blocks.reduce(count_multiples, 0, 10, combine="mean"), ValueError, "combine"),
    (lambda: blocks.reduce(count_multiples, 0, 10, combine=3), TypeError, "combine"),
    (lambda: blocks.reduce(count_multiples, 0, 10, args=5), TypeError, "args"),
    (lambda: blocks.reduce(count_multiples, 0, 10, min_block=0), ValueError, "min_block"),
    (lambda: blocks.reduce(count_multiples, 0, 10, cost=0), ValueError, "cost"),
    (lambda: blocks.reduce(count_multiples, 0, 10, backend="gpu"), ValueError, "backend"),
    (lambda: blocks.reduce(count_multiples, 0, 10, workers=0), ValueError, "workers"),
    (lambda: blocks.fill(table_rows, (2, -1)), ValueError, "shape"),
    (lambda: blocks.fill(table_rows, ()), ValueError, "shape"),
    (lambda: blocks.fill(table_rows, 3, "not a dtype"), TypeError, "dtype"),
    (lambda: blocks.fill(table_rows, 3, object), TypeError, "dtype"),
    (lambda: blocks.fill(doubled_rows, 3, args=(blocks.sliced(np.zeros(4)),)), ValueError,
     "sliced"),
    (lambda: blocks.sliced(3.0), ValueError, "sliced"),
])
def test_bad_arguments_fail_before_any_work(map_calls, call, error, match):
    with pytest.raises(error, match=match):
        call()
    assert map_calls == []


def test_an_empty_fill_is_an_empty_array():
    got = blocks.fill(table_rows, (0, 3), np.int32)
    assert got.shape == (0, 3) and got.dtype == np.int32
