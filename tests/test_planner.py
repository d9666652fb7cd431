"""Self-tuning: adaptive chunk sizes, ``backend="auto"`` and ``allcores.plan``."""

from __future__ import annotations

import functools
import itertools
import os

import _workloads as w
import pytest

import allcores
from allcores import _default_pools, _memory, native
from allcores.dispatch import MAX_GROWTH, TARGET_CHUNK_S, ChunkSizer, ChunkSource
from allcores.planner import BACKEND_ENV, SAMPLE_MAX_ITEMS, nogil, plan, releases_gil


def identity(x):
    return x


spin = w.cpu_spin


# --- ChunkSizer / ChunkSource --------------------------------------------------------------


def test_first_chunk_is_a_probe_then_sizes_follow_the_measured_cost():
    sizer = ChunkSizer(workers=2)
    assert sizer.size(0) == 1
    sizer.observe(1, 1e-3)  # 1 ms per item
    assert sizer.size(1) == min(int(TARGET_CHUNK_S / 1e-3), MAX_GROWTH)


def test_growth_is_capped_until_big_chunks_were_measured():
    sizer = ChunkSizer(workers=2)
    sizer.observe(1, 1e-8)  # a suspiciously cheap first item
    assert sizer.size(1) == MAX_GROWTH
    sizer.observe(MAX_GROWTH, MAX_GROWTH * 1e-8)
    assert sizer.size(17) == MAX_GROWTH**2


def test_a_measured_cost_sizes_the_first_chunk_without_probing():
    sizer = ChunkSizer(workers=2, seconds_per_item=1e-4)
    assert sizer.size(0) == int(TARGET_CHUNK_S / 1e-4)


def test_chunks_shrink_near_the_end_of_a_known_length():
    sizer = ChunkSizer(workers=2, length=10_000, seconds_per_item=1e-7)
    sizes = []
    cut = 0
    while cut < 10_000:
        sizes.append(sizer.size(cut))
        cut += sizes[-1]
    assert sizes == sorted(sizes, reverse=True), sizes
    assert sizes[0] <= 10_000 // 4 + 1
    assert sizes[-1] == 1  # the tail ends in chunks small enough to balance


def test_an_explicit_chunksize_is_always_honoured():
    sizer = ChunkSizer(workers=2, length=100, fixed=7)
    sizer.observe(7, 100.0)
    assert [sizer.size(cut) for cut in (0, 50, 98)] == [7, 7, 7]
    chunks = list(ChunkSource(range(20), sizer))
    assert [len(c.items) for c in chunks] == [7, 7, 6]


@pytest.mark.parametrize("source", [list, tuple, lambda n: range(n), lambda n: iter(range(n))])
def test_chunk_source_covers_every_item_once_in_order(source):
    sizer = ChunkSizer(workers=3, seconds_per_item=TARGET_CHUNK_S / 10)
    chunks = list(ChunkSource(source(range(95)) if source in (list, tuple) else source(95),
                              sizer))
    flat = [x for c in chunks for x in c.items]
    assert flat == list(range(95))
    assert [c.first_item for c in chunks] == list(itertools.accumulate(
        [0] + [len(c.items) for c in chunks[:-1]]))


def test_chunk_source_starts_a_sequence_at_first_item():
    chunks = list(ChunkSource(list(range(10)), ChunkSizer(1, fixed=4), first_item=3))
    assert [list(c.items) for c in chunks] == [[3, 4, 5, 6], [7, 8, 9]]
    assert [c.first_item for c in chunks] == [3, 7]


# --- plan ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_backend_override(monkeypatch):
    monkeypatch.delenv(BACKEND_ENV, raising=False)


@pytest.fixture(autouse=True)
def nothing_remembered():
    """Each test plans functions the planner has not measured before (but those it
    plans twice itself), with no warm pool: the sample runs in the caller whatever ran
    before (tests/test_auto.py covers sampling in a warm pool)."""
    _default_pools.terminate_all()
    _memory.memory.forget()
    yield
    _memory.memory.forget()


def test_cheap_items_run_serially_and_say_why():
    chosen = plan(identity, range(10**6), workers=2)
    assert chosen.backend == "serial"
    assert chosen.workers == 1
    assert chosen.predicted_speedup == 1.0
    assert chosen.reason.startswith("serial: ")
    assert "us per item" in chosen.reason and "as fast" in chosen.reason


def test_tiny_inputs_run_serially():
    # No pool running: starting one would cost far more than the 6 ms of work. (With a
    # warm pool, two of these items on two workers may well be worth it.)
    chosen = plan(spin, [0.002] * 3, workers=2)
    assert chosen.backend == "serial", chosen.reason
    assert chosen.map() == [0.002] * 3


@pytest.mark.slow
def test_heavy_items_run_on_processes():
    chosen = plan(spin, [0.005] * 400, workers=2)
    assert chosen.backend == "process", chosen.reason
    assert chosen.workers == 2
    assert chosen.predicted_speedup >= 1.2
    assert "predicted" in chosen.reason
    assert chosen.chunksize >= 1


def test_generator_input_is_planned_without_len_and_nothing_is_lost():
    chosen = plan(identity, (x for x in range(5000)), workers=2)
    assert chosen.backend == "serial"
    assert chosen.map() == list(range(5000))


def test_a_short_generator_is_read_whole_by_the_sample():
    chosen = plan(identity, iter(range(10)), workers=2)
    assert chosen.sampled_results == list(range(10))
    assert chosen.backend == "serial"
    assert "0 items left" in chosen.reason
    assert chosen.map() == list(range(10))


def test_native_kernels_and_nogil_functions_are_weighed_for_threads():
    assert releases_gil(native.count_primes_range)
    assert releases_gil(functools.partial(native.monte_carlo_hits, 1))
    assert not releases_gil(identity)

    @nogil
    def count_block(k):
        # ~1 ms of native work an item (the bit sieve does 10**7 numbers in about that),
        # so that threads pay where they run in parallel
        return native.count_primes_range(k * 10**7, (k + 1) * 10**7)

    assert releases_gil(count_block)
    assert releases_gil(nogil(len))  # builtins are wrapped, not modified
    assert not hasattr(len, "__allcores_nogil__")
    chosen = plan(count_block, range(64), workers=2)
    # Threads beat processes for it whatever the machine's load (no pickling); they
    # beat serial where two threads were measured running it mostly in parallel.
    assert chosen.backend in ("thread", "serial"), chosen.reason
    efficiency = _memory.memory.recall(count_block, 2)[0].thread_efficiency
    if allcores.cpu_count() >= 2 and (efficiency is None or efficiency >= 0.75):
        assert chosen.backend == "thread", chosen.reason
    assert chosen.map() == [count_block(k) for k in range(64)]


def record_call(log: str, x):
    w.append_line(log, str(x))
    return spin(0.002)


@pytest.mark.slow
@pytest.mark.parametrize("workload", ["cheap", "heavy"])
def test_sampled_items_are_computed_once(tmp_path, workload):
    log = str(tmp_path / "calls")
    fn = functools.partial(w.append_line, log) if workload == "cheap" else \
        functools.partial(record_call, log)
    items = [str(x) for x in range(300)] if workload == "cheap" else range(300)
    allcores.map(fn, items, workers=2)
    assert sorted(int(x) for x in w.read_lines(log)) == list(range(300))


def test_sample_errors_name_the_item():
    with pytest.raises(ZeroDivisionError) as info:
        allcores.map(lambda x: 1 / (x - 5), range(100))
    assert any("item 5" in note for note in info.value.__notes__)


@pytest.mark.parametrize("backend", ["serial", "thread", "process"])
def test_the_override_variable_wins(monkeypatch, backend):
    monkeypatch.setenv(BACKEND_ENV, backend)
    chosen = plan(identity, range(100), workers=2)
    assert chosen.backend == backend
    assert BACKEND_ENV in chosen.reason
    assert chosen.sampled_results == []  # nothing was sampled: the choice was made
    assert chosen.map() == list(range(100))
    assert allcores.map(identity, range(100), workers=2) == list(range(100))


def test_a_bad_override_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "gpu")
    with pytest.raises(ValueError, match=BACKEND_ENV):
        allcores.map(identity, range(3))


def test_auto_is_the_default_and_explicit_chunksize_still_counts():
    assert allcores.map(identity, range(10)) == list(range(10))
    assert list(allcores.imap(identity, iter(range(2500)), chunksize=7)) == list(range(2500))
    assert sorted(allcores.imap_unordered(identity, range(2500))) == list(range(2500))


def test_plan_checks_its_arguments():
    with pytest.raises(TypeError, match="fn"):
        plan(5, range(3))
    with pytest.raises(TypeError, match="iterable"):
        plan(identity, 5)
    with pytest.raises(ValueError, match="workers"):
        plan(identity, range(3), workers=0)
    with pytest.raises(ValueError, match="backend"):
        allcores.map(identity, range(3), backend="gpu")


def test_sample_is_bounded_in_items():
    chosen = plan(identity, itertools.count(), workers=2)
    assert len(chosen.sampled_results) <= SAMPLE_MAX_ITEMS
    assert "an unknown number of" in chosen.reason
    first = list(itertools.islice(chosen.imap(), 3000))
    assert first == list(range(3000))


def test_plan_runs_in_a_fresh_process_without_leaving_workers():
    # Sanity: the module-level default pools are the ones planned calls use.
    from allcores._default_pools import default_pool

    assert default_pool("serial", 1).workers == 1
    assert os.environ.get(BACKEND_ENV) is None
