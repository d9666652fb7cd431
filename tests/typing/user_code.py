"""A user's script exercising allcores' whole public API, for ``mypy --strict``.

``tests/test_typing.py`` type-checks this file: each ``assert_type`` pins the type a
signature gives its caller, so a signature that degrades to ``Any`` (or to a wider type)
fails the check. Importing the file runs nothing; ``python tests/typing/user_code.py``
runs every part on small inputs (the Dask part too, when ``allcores[dask]`` is
installed), checking a few results on the way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import math
import multiprocessing
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any, assert_type

import numpy as np
import numpy.typing as npt

import allcores
from allcores import (
    AllcoresError,
    AsyncResult,
    ChunkTimeoutError,
    Executor,
    Insights,
    Plan,
    Pool,
    PoolClosedError,
    WorkerCrashedError,
    WorkerInitError,
    blocks,
    kernels,
)

# --- the user's functions ------------------------------------------------------------


def square(x: int) -> int:
    return x * x


def describe(x: int) -> str:
    return f"item {x}"


def add(a: int, b: int) -> int:
    return a + b


def scale(x: float, *, factor: float = 2.0) -> float:
    return x * factor


def setup(tag: str) -> None:
    """A pool's initializer: runs once in each worker."""
    assert tag


@allcores.nogil
def block_sum(block: npt.NDArray[np.float64]) -> float:
    return float(block.sum())


received: list[object] = []


def on_int(value: int) -> None:
    received.append(value)


def on_list(values: list[int]) -> None:
    received.append(len(values))


def on_error(error: BaseException) -> None:
    received.append(error)


# --- module-level calls --------------------------------------------------------------


def module_level_calls() -> None:
    items = list(range(100))
    assert_type(allcores.map(square, items), list[int])
    assert_type(allcores.map(describe, items, workers=2, backend="thread", chunksize=10,
                             progress=False), list[str])
    assert_type(allcores.map(square, range(10), backend="serial", retries=0), list[int])
    assert_type(allcores.imap(square, iter(items), backend="auto"), Iterator[int])
    unordered = allcores.imap_unordered(square, items, backend="process", retries=2,
                                        timeout=60.0)
    assert_type(unordered, Iterator[int])
    assert sorted(unordered) == [x * x for x in items]
    for text in allcores.imap(describe, items, backend="thread", insights=True):
        assert_type(text, str)
    summary = allcores.insights()
    assert_type(summary, Insights)
    assert_type(summary.wall_s, float)
    assert_type(summary.chunks, int)
    assert_type(summary.chunk_sizes(), tuple[int, int, int])
    assert summary.items == len(items)
    assert_type(allcores.cpu_count(), int)
    assert_type(allcores.__version__, str)


def planning() -> None:
    chosen = allcores.plan(square, range(1_000), workers=2)
    assert_type(chosen, Plan[int])
    assert_type(chosen.backend, str)
    assert_type(chosen.workers, int)
    assert_type(chosen.chunksize, int)
    assert_type(chosen.predicted_speedup, float)
    assert_type(chosen.reason, str)
    assert_type(chosen.seconds_per_item, float | None)
    assert_type(chosen.sampled_results, list[int])
    assert_type(chosen.map(progress=False), list[int])
    again = allcores.plan(describe, range(10))
    assert_type(again.imap(ordered=False), Iterator[str])


def gil_free_functions() -> None:
    blocks = [np.ones(1_000) for _ in range(8)]
    assert_type(allcores.map(block_sum, blocks, backend="thread"), list[float])
    root = allcores.nogil(math.sqrt)  # a builtin: marked through a wrapper
    assert_type(allcores.map(root, [1.0, 4.0, 9.0]), list[float])


# --- Pool ----------------------------------------------------------------------------


def pool_calls() -> None:
    with Pool(2, initializer=setup, initargs=("pool",), backend="process",
              start_method="spawn", retries=2, timeout=60.0, maxtasksperchild=100,
              insights=True, max_bytes=1 << 24) as pool:
        assert_type(pool, Pool)
        assert_type(pool.workers, int)
        assert_type(pool.backend, str)
        assert_type(pool.map(square, range(10)), list[int])
        assert_type(pool.map(square, range(10), chunksize=2), list[int])
        assert_type(pool.imap(describe, range(10)), Iterator[str])
        assert_type(pool.imap_unordered(square, range(10), chunksize=3), Iterator[int])
        assert_type(pool.starmap(add, [(1, 2), (3, 4)]), list[int])

        future = pool.submit(scale, 1.5, factor=3.0)
        assert_type(future, Future[float])
        assert_type(future.result(timeout=60), float)
        assert_type(pool.apply(add, (1, 2)), int)
        assert_type(pool.apply(scale, (1.0,), {"factor": 0.5}), float)

        one = pool.apply_async(add, (1, 2), callback=on_int, error_callback=on_error)
        assert_type(one, AsyncResult[int])
        assert_type(one.get(timeout=60), int)
        one.wait(60)
        assert_type(one.ready(), bool)
        assert_type(one.successful(), bool)
        assert_type(one.future, Future[int])
        many = pool.map_async(square, range(10), callback=on_list, error_callback=on_error)
        assert_type(many, AsyncResult[list[int]])
        assert_type(many.get(60), list[int])
        pairs = pool.starmap_async(add, [(1, 2), (3, 4)], chunksize=1, callback=on_list)
        assert_type(pairs, AsyncResult[list[int]])
        assert pairs.get(60) == [3, 7]

        assert_type(pool.insights(reset=True), Insights)
        assert_type(pool.closed, bool)
    assert_type(pool.join(timeout=60), bool)

    # multiprocessing.Pool's spelling: processes= and a context.
    legacy = Pool(processes=2, context=multiprocessing.get_context("spawn"))
    try:
        assert legacy.map(square, [1, 2, 3]) == [1, 4, 9]
    finally:
        legacy.close()
    assert_type(legacy.join(), bool)
    with Pool(2, backend="thread") as threads:
        assert threads.map(square, [3]) == [9]
    with Pool(backend="serial") as serial:
        assert serial.apply(square, (4,)) == 16


def dask_pool() -> None:
    """Needs ``allcores[dask]``: a local cluster, started and closed with the pool."""
    with Pool(2, backend="dask", address=None, client=None) as cluster:
        assert_type(cluster.map(square, range(5)), list[int])


# --- Executor ------------------------------------------------------------------------


def executor_calls() -> None:
    with Executor(max_workers=2, mp_context=multiprocessing.get_context("spawn"),
                  initializer=setup, initargs=("executor",), max_tasks_per_child=50,
                  backend="process", retries=1, timeout=60.0) as executor:
        assert_type(executor, Executor)
        assert_type(executor.workers, int)
        futures = [executor.submit(square, n) for n in range(10)]
        assert_type(futures, list[Future[int]])
        done, not_done = concurrent.futures.wait(
            futures, timeout=60, return_when=concurrent.futures.ALL_COMPLETED)
        assert_type(done, set[Future[int]])
        assert not not_done
        for finished in concurrent.futures.as_completed(futures, timeout=60):
            assert_type(finished.result(), int)
        assert_type(executor.submit(scale, 2.0, factor=0.5), Future[float])
        assert_type(executor.map(add, [1, 2], [3, 4], timeout=60, chunksize=1),
                    Iterator[int])
        assert list(executor.map(describe, [1])) == ["item 1"]
    executor.shutdown(wait=True, cancel_futures=True)

    # Wherever a concurrent.futures.Executor is expected:
    standard: concurrent.futures.Executor = Executor(backend="thread")
    try:
        assert_type(standard.submit(square, 5).result(), int)
    finally:
        standard.shutdown()


async def in_event_loop() -> int:
    loop = asyncio.get_running_loop()
    with Executor(2, backend="thread") as executor:
        result = await loop.run_in_executor(executor, square, 7)
    assert_type(result, int)
    return result


# --- errors --------------------------------------------------------------------------


def failures() -> None:
    pool = Pool(1, backend="serial")
    pool.terminate()
    try:
        pool.map(square, [1])
    except PoolClosedError as closed:
        assert_type(closed, PoolClosedError)
        assert isinstance(closed, RuntimeError) and isinstance(closed, AllcoresError)
    else:
        raise AssertionError("a terminated pool ran a map")

    try:
        allcores.map(square, [1, 2], backend="process", timeout=60.0)
    except ChunkTimeoutError as overran:
        assert_type(overran, ChunkTimeoutError)
        assert isinstance(overran, TimeoutError)
    except WorkerCrashedError as crashed:
        assert_type(crashed.exitcode, int | None)
        assert isinstance(crashed, BrokenProcessPool)
        print(f"a worker died running items {crashed.first_item}..{crashed.stop_item - 1}")
    except WorkerInitError as init_failed:
        assert_type(init_failed, WorkerInitError)
    except AllcoresError as other:
        assert_type(other, AllcoresError)


# --- kernels -------------------------------------------------------------------------


def kernel_calls() -> None:
    image = kernels.mandelbrot(64, 48, max_iter=100, bounds=(-2.0, 1.0, -1.5, 1.5),
                               impl="native", workers=2, backend="thread")
    assert_type(image, npt.NDArray[np.uint32])
    assert image.shape == (48, 64)
    assert_type(kernels.count_primes(0, 10_000, impl="python", backend="serial"), int)
    flags = kernels.is_prime([2, 3, 4], backend="auto")
    assert_type(flags, npt.NDArray[np.bool_])
    assert flags.tolist() == [True, True, False]
    assert_type(kernels.fannkuch(7), tuple[int, int])
    assert_type(kernels.monte_carlo_pi(10_000, seed=1, workers=1), float)


def block_kernels() -> None:
    """The per-block kernels: allcores.native (typed by its stub) and its pure twins."""
    from allcores import native, pure

    rows = np.zeros((2, 8), dtype=np.uint32)
    native.mandelbrot_rows(rows, 1, 4, 50, -2.0, 1.0, -1.5, 1.5)
    twin_rows = np.zeros((2, 8), dtype=np.uint32)
    pure.mandelbrot_rows(twin_rows, 1, 4, 50, -2.0, 1.0, -1.5, 1.5)
    assert (rows == twin_rows).all()
    flags = np.empty(2, dtype=np.bool_)
    native.is_prime_array(np.array([2, 4], dtype=np.uint64), flags)
    pure.is_prime_array(np.array([3, 9], dtype=np.uint64), flags)
    assert flags.tolist() == [True, False]
    assert_type(native.count_primes_range(0, 100), int)
    assert_type(pure.count_primes_range(0, 100), int)
    assert_type(native.fannkuch_block(7, 0, 5040), tuple[int, int])
    assert_type(pure.fannkuch_block(7, 0, 5040), tuple[int, int])
    assert_type(native.monte_carlo_hits(1, 0, 100), int)
    assert_type(pure.monte_carlo_hits(1, 0, 100), int)
    assert_type(native.ISA_NAMES, dict[str, int])
    assert_type(native.ISA_ENV, str)
    isas = native.available_isas()
    assert_type(isas, list[str])
    for get, set_isa in [(native.mandelbrot_isa, native.set_mandelbrot_isa),
                         (native.monte_carlo_isa, native.set_monte_carlo_isa),
                         (native.fannkuch_isa, native.set_fannkuch_isa)]:
        set_isa(isas[0])
        assert_type(get(), str)
        set_isa("auto")
    assert_type(native.build_info(), dict[str, str])


def row_numbers(a: int, b: int, rows: npt.NDArray[np.int64], width: int) -> None:
    rows[:] = np.arange(a * width, b * width).reshape(b - a, width)


def count_even(a: int, b: int) -> int:
    return len(range(a + a % 2, b, 2))


def own_kernel_blocks() -> None:
    table = blocks.fill(row_numbers, (100, 4), np.int64, args=(4,), workers=2,
                        backend="thread")
    assert_type(table, npt.NDArray[Any])
    assert int(table[-1, -1]) == 399
    evens = blocks.reduce(count_even, 0, 1_000, combine="sum", backend="serial")
    assert evens == 500
    doubled = blocks.fill(lambda a, b, rows, v: np.multiply(v, 2, out=rows), 10,
                          args=(blocks.sliced(np.arange(10.0)),))
    assert doubled.tolist() == [2.0 * i for i in range(10)]
    plan = blocks.plan_blocks(count_even, 0, 10**9, cost=1e-8, workers=2, backend="auto")
    assert_type(plan, blocks.BlockPlan)
    assert plan.backend == "process" and len(plan.blocks) == 16


def insights_plot(directory: str) -> str:
    """Needs ``allcores[plot]`` (matplotlib)."""
    allcores.map(square, range(100), backend="thread", insights=True)
    return allcores.insights().plot(f"{directory}/timeline.png", title="square")


def main() -> None:
    module_level_calls()
    planning()
    gil_free_functions()
    pool_calls()
    executor_calls()
    assert asyncio.run(in_event_loop()) == 49
    own_kernel_blocks()
    failures()
    kernel_calls()
    block_kernels()
    if importlib.util.find_spec("matplotlib") is not None:
        with tempfile.TemporaryDirectory() as directory:
            insights_plot(directory)
    if importlib.util.find_spec("distributed") is not None:
        dask_pool()
    print("ok")


if __name__ == "__main__":
    main()
