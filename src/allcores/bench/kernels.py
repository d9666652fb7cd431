"""Section "kernels": what does each way of running a kernel buy, on this machine?

For each kernel, at a size that takes about a second natively on one core (full run):
pure Python serially; the tutorial's recipe (the pure twin's blocks through
``multiprocessing.Pool(workers).imap``); the pure twin through allcores (processes); the
native kernel serially, on allcores threads and on allcores processes; and what a user
would pick instead: ``concurrent.futures.ProcessPoolExecutor`` and joblib over the native
chunk-level functions, a numba ``@njit(parallel=True)`` twin (where installed), and for
count_primes the ``primesieve`` command (where found on PATH: a segmented sieve tuned for
years, what someone who only wants the count would run), on 1 thread and on N.

Pure Python is 25-500x slower than native: at the full size its rows would take minutes
each. They run on a proportional slice of the same workload (fewer image rows, a
sub-range of the numbers, the first values, spaced blocks of permutations, the first
samples) and their time is scaled up to the full workload; the table says so. A scaled
row's answer is checked against the native answer for its slice; every other row's
against the published value where one exists, else the native serial answer.

The peers get the job cut into ``workers x 8`` blocks, as allcores.kernels cuts it.

"vs the best other tool" (the headline's column and a reading line) compares like with
like: allcores' best native time on N workers (threads or processes) against the fastest
other tool on N threads (numba parallel, ``primesieve -t N``), and native serial against
``primesieve -t 1``. ProcessPoolExecutor and joblib run our kernel, and the plain-C
reference is our baseline, not a tool a user would pick: neither counts as another tool.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib
import importlib.util
import math
import multiprocessing
import shutil
import subprocess
import time
from typing import Any, Callable

import numpy as np

import allcores
from allcores import kernels
from allcores.bench import workloads
from allcores.bench.measure import (
    SEED,
    SUPERLINEAR_NOTE,
    Config,
    Progress,
    Section,
    Table,
    Timing,
    efficiency_text,
    interleaved,
    ratio_text,
    same,
    seconds_text,
    superlinear,
    timed,
    timing_text,
)

QUESTION = ("How much faster is each kernel natively than in pure Python, and how much "
            "more do N workers add, through allcores and through the tools a user would "
            "pick instead?")

BLOCKS_PER_WORKER = 8
MAX_ITER = 256
# Published answers: pi(x) and the Benchmarks Game's fannkuch-redux output.
PRIME_COUNTS = {10**6: 78498, 2 * 10**6: 148933, 5 * 10**6: 348513, 10**7: 664579,
                2 * 10**7: 1270607, 5 * 10**7: 3001134, 10**8: 5761455,
                2 * 10**8: 11078937, 5 * 10**8: 26355867, 10**9: 50847534,
                2 * 10**9: 98222287, 5 * 10**9: 234954223, 10**10: 455052511}
UNITS = {"mandelbrot": "pixel", "count_primes": "number", "is_prime": "value",
         "fannkuch": "permutation", "monte_carlo_pi": "sample"}
FANNKUCH = {7: (228, 16), 8: (1616, 22), 9: (8629, 30), 10: (73196, 38),
            11: (556355, 51), 12: (3968050, 65)}

# (method id, label, implementation, runs on the pure slice)
METHODS = [
    ("pure-serial", "pure Python, serial", "python", True),
    ("pure-mp-imap", "pure, multiprocessing.Pool.imap (tutorial)", "python", True),
    ("pure-allcores-process", "pure, allcores processes", "python", True),
    ("native-serial", "native, serial", "native", False),
    ("c-serial", "plain C reference, serial", "c", False),
    ("native-allcores-thread", "native, allcores threads", "native", False),
    ("native-allcores-process", "native, allcores processes", "native", False),
    ("native-futures", "native, ProcessPoolExecutor", "native", False),
    ("native-joblib", "native, joblib", "native", False),
    ("numba", "numba @njit(parallel=True)", "numba", False),
    # count_primes only: two rows where the command is found, else the one that says so.
    ("primesieve-serial", "primesieve, 1 thread", "primesieve", False),
    ("primesieve-threads", "primesieve, {workers} threads", "primesieve", False),
    ("primesieve", "primesieve", "primesieve", False),
]
PRIMESIEVE_KERNEL = "count_primes"
PRIMESIEVE_FOUND = ("primesieve-serial", "primesieve-threads")
PRIMESIEVE_MISSING = ("primesieve",)
PRIMESIEVE_INSTALL = ("apt-get install primesieve, brew install primesieve or "
                      "conda install -c conda-forge primesieve")
# A run of the command that takes longer than this has hung (a full run takes ~0.1 s).
PRIMESIEVE_TIMEOUT_S = 300
# Runs of `primesieve 0 1 -c -t 1 -q` (after a warm-up) that measure what starting it costs.
PRIMESIEVE_START_RUNS = 5

# "vs the best other tool": which rows are allcores and which are tools a user would
# pick instead, on N workers and on one. ProcessPoolExecutor and joblib run our native
# kernel; the plain-C reference is the baseline, not a tool: neither side counts them.
ALLCORES_PARALLEL = ("native-allcores-thread", "native-allcores-process")
OTHER_TOOLS_PARALLEL = ("numba", "primesieve-threads")
ALLCORES_SERIAL = ("native-serial",)
OTHER_TOOLS_SERIAL = ("primesieve-serial",)


def _split(start: int, stop: int, count: int) -> list[tuple[int, int]]:
    size = stop - start
    count = max(1, min(count, size)) if size else 1
    return [(start + size * i // count, start + size * (i + 1) // count) for i in range(count)]


# --- the workloads ------------------------------------------------------------------------


class Job:
    """One kernel's workload, or a slice of it.

    ``run(impl, workers, backend)`` computes it through the public API (allcores.kernels,
    or allcores.map over blocks where the kernel cannot take a slice); ``blocks(impl,
    count)`` cuts it for a pool of the user's choice, ``block_fn`` computes one block,
    ``combine`` joins the blocks' results; ``numba()`` runs the numba twin; ``work`` is
    its size in the kernel's unit.
    """

    block_fn: Callable
    work: float

    def run(self, impl: str, workers: int, backend: str) -> Any:
        raise NotImplementedError

    def blocks(self, impl: str, count: int) -> list:
        raise NotImplementedError

    def combine(self, results: list) -> Any:
        raise NotImplementedError

    def numba(self, twins) -> Any:
        raise NotImplementedError


@dataclasses.dataclass
class Mandelbrot(Job):
    width: int
    height: int
    block_fn = staticmethod(workloads.mandelbrot_block)

    @property
    def work(self) -> float:
        return self.width * self.height

    def run(self, impl, workers, backend):
        return kernels.mandelbrot(self.width, self.height, max_iter=MAX_ITER, impl=impl,
                                  workers=workers, backend=backend)

    def blocks(self, impl, count):
        return [(impl, a, b, self.width, self.height, MAX_ITER, kernels.DEFAULT_BOUNDS)
                for a, b in _split(0, self.height, count)]

    def combine(self, results):
        return np.concatenate(results)

    def numba(self, twins):
        return twins.mandelbrot(self.width, self.height, max_iter=MAX_ITER)


@dataclasses.dataclass
class CountPrimes(Job):
    lo: int
    hi: int
    block_fn = staticmethod(workloads.count_primes_block)

    @property
    def work(self) -> float:
        return self.hi - self.lo

    def run(self, impl, workers, backend):
        return kernels.count_primes(self.lo, self.hi, impl=impl, workers=workers,
                                    backend=backend)

    def blocks(self, impl, count):
        return [(impl, a, b) for a, b in _split(self.lo, self.hi, count)]

    def combine(self, results):
        return sum(results)

    def numba(self, twins):
        return twins.count_primes(self.lo, self.hi)

    def primesieve(self, command: str, threads: int) -> int:
        return primesieve_count(command, self.lo, self.hi, threads)


@dataclasses.dataclass
class IsPrime(Job):
    values: np.ndarray
    block_fn = staticmethod(workloads.is_prime_block)

    @property
    def work(self) -> float:
        return len(self.values)

    def run(self, impl, workers, backend):
        return kernels.is_prime(self.values, impl=impl, workers=workers, backend=backend)

    def blocks(self, impl, count):
        return [(impl, self.values[a:b]) for a, b in _split(0, len(self.values), count)]

    def combine(self, results):
        return np.concatenate(results)

    def numba(self, twins):
        return twins.is_prime(self.values)


@dataclasses.dataclass
class Fannkuch(Job):
    """Permutation indices ``ranges`` of fannkuch-redux(n): all of them, or spaced blocks."""

    n: int
    ranges: list[tuple[int, int]]
    block_fn = staticmethod(workloads.fannkuch_block)

    @property
    def work(self) -> float:
        return sum(b - a for a, b in self.ranges)

    @property
    def whole(self) -> bool:
        return self.ranges == [(0, math.factorial(self.n))]

    def run(self, impl, workers, backend):
        if self.whole:
            return kernels.fannkuch(self.n, impl=impl, workers=workers, backend=backend)
        # allcores.kernels.fannkuch takes no range: map the slice's blocks instead.
        blocks = self.blocks(impl, workers * BLOCKS_PER_WORKER if backend != "serial" else 1)
        if backend == "serial":
            return self.combine([workloads.fannkuch_block(b) for b in blocks])
        return self.combine(allcores.map(workloads.fannkuch_block, blocks, workers=workers,
                                         backend=backend, chunksize=1))

    def blocks(self, impl, count):
        per_range = max(1, -(-count // len(self.ranges)))
        return [(impl, self.n, a, b) for start, stop in self.ranges
                for a, b in _split(start, stop, per_range)]

    def combine(self, results):
        return (sum(c for c, _ in results), max(f for _, f in results))

    def numba(self, twins):
        return twins.fannkuch(self.n)


@dataclasses.dataclass
class MonteCarlo(Job):
    samples: int
    seed: int = SEED
    block_fn = staticmethod(workloads.monte_carlo_block)

    @property
    def work(self) -> float:
        return self.samples

    def run(self, impl, workers, backend):
        return kernels.monte_carlo_pi(self.samples, seed=self.seed, impl=impl,
                                      workers=workers, backend=backend)

    def blocks(self, impl, count):
        return [(impl, self.seed, a, b) for a, b in _split(0, self.samples, count)]

    def combine(self, results):
        return 4 * sum(results) / self.samples

    def numba(self, twins):
        return twins.monte_carlo_pi(self.samples, seed=self.seed)


@dataclasses.dataclass
class Case:
    kernel: str
    workload: str          # words: "2800x2800 px, max_iter=256"
    full: Job
    part: Job              # the slice the pure rows run
    part_text: str         # words: "70 of 2800 rows"
    expected: Any = None   # the published answer of the full job, where one exists

    @property
    def fraction(self) -> float:
        return self.part.work / self.full.work


# Sizes are chosen at run time from these ladders, so that the native serial run takes
# about NATIVE_TARGET_S (times --quick's and --scale's factors) on this machine, however
# fast the kernels and the machine are; the pure rows' slice is chosen the same way from
# SLICES so that a pure serial run takes about as long.
NATIVE_TARGET_S = 1.0
MANDELBROT_SIDES = [64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144,
                    8192]
PRIME_LIMITS = sorted(PRIME_COUNTS)
VALUE_COUNTS = [k * 10**e for e in range(3, 8) for k in (1, 2, 5)]
FANNKUCH_NS = [7, 8, 9, 10, 11, 12]
SAMPLE_COUNTS = [k * 10**e for e in range(4, 10) for k in (1, 2, 5)]
SLICES = [1, 2, 4, 5, 10, 20, 25, 40, 50, 100, 200, 250, 400, 500, 1000, 2000, 5000, 10000]


def _unit_seconds(job: Job, impl: str, runs: int = 2) -> float:
    """Seconds per unit of work of ``job`` serially (the best of ``runs``)."""
    best = math.inf
    for _ in range(runs):
        start = time.perf_counter()
        job.run(impl, 1, "serial")
        best = min(best, time.perf_counter() - start)
    return max(best, 1e-9) / job.work


def _closest(candidates: list, seconds_of: Callable[[Any], float], target: float):
    """The candidate whose predicted time is closest to ``target`` (in ratio)."""
    return min(candidates, key=lambda c: abs(math.log(max(seconds_of(c), 1e-9) / target)))


def _slice(work: float, pure_unit_s: float, target: float, most: float) -> int:
    """How many times less work the pure rows get: a pure run of about ``target``."""
    return _closest([f for f in SLICES if f <= most] or [1],
                    lambda f: work * pure_unit_s / f, target)


def make_cases(size: float) -> tuple[list[Case], dict]:
    """The five workloads, sized on this machine: the native serial run takes about
    ``NATIVE_TARGET_S * size`` seconds and so does the pure run on its slice. Returns the
    cases and the calibration (seconds per unit, natively and in pure Python)."""
    target = NATIVE_TARGET_S * size
    calibration = {}
    cases = []

    unit = _unit_seconds(Mandelbrot(256, 256), "native")
    side = _closest(MANDELBROT_SIDES, lambda s: s * s * unit, target)
    pure_unit = _unit_seconds(Mandelbrot(256, 4), "python", runs=1)
    # At least 8 rows, spread over the image: rows differ ~100x in cost.
    slice_ = _slice(side * side, pure_unit, target, most=max(1, side // 8))
    band = side // slice_
    cases.append(Case("mandelbrot", f"{side}x{side} px, max_iter={MAX_ITER}",
                      Mandelbrot(side, side), Mandelbrot(side, band),
                      f"the same image at {band} of {side} rows"))
    calibration["mandelbrot"] = (unit, pure_unit)

    unit = _unit_seconds(CountPrimes(0, 10**7), "native")
    limit = _closest(PRIME_LIMITS, lambda n: n * unit, target)
    lo = limit // 2
    pure_unit = _unit_seconds(CountPrimes(lo, lo + max(10**5, limit // 2000)), "python",
                              runs=1)
    width = limit // _slice(limit, pure_unit, target, most=limit // 10**4)
    cases.append(Case("count_primes", f"primes below {limit:,}",
                      CountPrimes(0, limit), CountPrimes(lo, lo + width),
                      f"[{lo:,}, {lo + width:,})", PRIME_COUNTS[limit]))
    calibration["count_primes"] = (unit, pure_unit)

    rng = np.random.default_rng(SEED)
    probe_values = rng.integers(2**62, 2**63, size=20_000, dtype=np.uint64)
    unit = _unit_seconds(IsPrime(probe_values), "native")
    count = _closest(VALUE_COUNTS, lambda n: n * unit, target)
    pure_unit = _unit_seconds(IsPrime(probe_values[:500]), "python", runs=1)
    values = np.random.default_rng(SEED).integers(2**62, 2**63, size=count, dtype=np.uint64)
    some = count // _slice(count, pure_unit, target, most=count // 10)
    cases.append(Case("is_prime", f"{count:,} random 63-bit values",
                      IsPrime(values), IsPrime(values[:some]), f"the first {some:,} values"))
    calibration["is_prime"] = (unit, pure_unit)

    unit = _unit_seconds(Fannkuch(9, [(0, math.factorial(9))]), "native")
    n = _closest(FANNKUCH_NS, lambda k: math.factorial(k) * unit, target)
    permutations = math.factorial(n)
    pure_unit = _unit_seconds(Fannkuch(n, [(0, 3000)]), "python", runs=1)
    piece = permutations // (8 * _slice(permutations, pure_unit, target,
                                        most=permutations // 800))
    pieces = [(k * permutations // 8, k * permutations // 8 + piece) for k in range(8)]
    cases.append(Case("fannkuch", f"n={n} ({permutations:,} permutations)",
                      Fannkuch(n, [(0, permutations)]), Fannkuch(n, pieces),
                      f"8 spaced blocks of {piece:,} permutations", FANNKUCH[n]))
    calibration["fannkuch"] = (unit, pure_unit)

    unit = _unit_seconds(MonteCarlo(10**6), "native")
    samples = _closest(SAMPLE_COUNTS, lambda n: n * unit, target)
    pure_unit = _unit_seconds(MonteCarlo(10**4), "python", runs=1)
    some = samples // _slice(samples, pure_unit, target, most=samples // 1000)
    cases.append(Case("monte_carlo_pi", f"{samples:,} samples",
                      MonteCarlo(samples), MonteCarlo(some), f"the first {some:,} samples"))
    calibration["monte_carlo_pi"] = (unit, pure_unit)
    return cases, {kernel: {"native_s_per_unit": native, "python_s_per_unit": python,
                            "unit": UNITS[kernel]}
                   for kernel, (native, python) in calibration.items()}


# --- the section --------------------------------------------------------------------------


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def methods(config: Config, kernel: str, primesieve_found: bool
            ) -> list[tuple[str, str, str, bool]]:
    """The rows ``kernel`` gets: the plain-C row only where a C reference was given
    (``benchmarks/run.py`` in a source checkout passes ``benchmarks/c_reference.py``);
    for count_primes, primesieve on 1 and on N threads where the command was found, else
    one row that says it is not installed."""
    skip = set() if config.c_reference else {"c-serial"}
    if kernel != PRIMESIEVE_KERNEL:
        skip.update(PRIMESIEVE_FOUND + PRIMESIEVE_MISSING)
    else:
        skip.update(PRIMESIEVE_MISSING if primesieve_found else PRIMESIEVE_FOUND)
    return [m for m in METHODS if m[0] not in skip]


def primesieve_command() -> str | None:
    """The path of the ``primesieve`` command, None where it is not on PATH."""
    return shutil.which("primesieve")


def primesieve_count(command: str, lo: int, hi: int, threads: int) -> int:
    """Primes ``p`` with ``lo <= p < hi``, counted by ``primesieve`` on ``threads``
    threads, in a process of its own. Its STOP is inclusive: it is asked for [lo, hi - 1].
    Raises RuntimeError if it fails or prints something other than a count."""
    if hi <= lo:
        return 0
    argv = [command, str(lo), str(hi - 1), "-c", "-t", str(threads), "-q"]
    proc = subprocess.run(argv, capture_output=True, text=True,
                          timeout=PRIMESIEVE_TIMEOUT_S)
    words = proc.stdout.split()
    if proc.returncode != 0 or len(words) != 1 or not words[0].isdigit():
        said = (proc.stderr or proc.stdout).strip()[-200:]
        raise RuntimeError(f"{' '.join(argv[1:])}: expected exit status 0 and one count, "
                           f"got: exit status {proc.returncode}, {said!r}")
    return int(words[0])


def primesieve_version(command: str) -> str:
    """``primesieve 11.0`` (the first line of ``--version`` up to its comma), or ''."""
    try:
        proc = subprocess.run([command, "--version"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    lines = proc.stdout.strip().splitlines()
    return lines[0].split(",")[0].strip() if lines else ""


def primesieve_threads(command: str, lo: int, hi: int, threads: int) -> int | None:
    """How many threads ``primesieve`` says it uses for [lo, hi) when asked for
    ``threads``: ``-t`` is a cap (it takes fewer on a small range, never more than the
    CPUs). None if it does not say (an untimed run without ``-q``)."""
    try:
        proc = subprocess.run([command, str(lo), str(max(lo, hi - 1)), "-c", "-t",
                               str(threads), "--no-status"], capture_output=True, text=True,
                              timeout=PRIMESIEVE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in proc.stdout.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "Threads" and value.strip().isdigit():
            return int(value)
    return None


def primesieve_start(command: str) -> Timing | str:
    """What one run of the command costs with (almost) nothing to sieve: the Timing of
    ``primesieve 0 1 -c -t 1 -q`` (median of PRIMESIEVE_START_RUNS after a warm-up), or why
    it could not be measured."""
    try:
        timing, result = timed(lambda: primesieve_count(command, 0, 2, 1),
                               PRIMESIEVE_START_RUNS)
    except (OSError, subprocess.SubprocessError, RuntimeError) as error:
        return f"{type(error).__name__}: {error}"
    return timing if same(result, 0) else f"expected 0 primes below 2, got: {result!r}"


def load_c_reference(path: str):
    """Build the plain-C reference kernels (``benchmarks/c_reference.py``): the object,
    or a string saying why there is none (no C compiler, a failed compile)."""
    spec = importlib.util.spec_from_file_location("allcores_bench_c_reference", path)
    if spec is None or spec.loader is None:
        return f"not found: {path}"
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        reference = module.build()
    except Exception as error:
        return f"C reference failed: {type(error).__name__}: {error}"
    if reference is None:
        return f"no C reference: {module.build_error()}"
    return reference


def steps(config: Config) -> int:
    found = primesieve_command() is not None
    warm_ups = sum(len(methods(config, kernel, found)) for kernel in UNITS)
    # a step per row's warm-up, per kernel and round, and primesieve's start-up measure
    return warm_ups + config.repeat * len(UNITS) + found


def run(config: Config, progress: Progress) -> Section:
    started = time.perf_counter()
    workers = config.workers
    joblib = _optional("joblib")
    twins = None
    numba_status = "not installed"
    if _optional("numba") is not None:
        try:
            from allcores.bench import numba_twins as twins
            twins.set_threads(workers)
            numba_status = ""
        except Exception as error:  # a broken numba install: say so, run the rest
            numba_status = f"numba failed to load: {type(error).__name__}: {error}"
            twins = None

    c_reference = None
    c_status = ""
    if config.c_reference:
        c_reference = load_c_reference(config.c_reference)
        if isinstance(c_reference, str):
            c_status, c_reference = c_reference, None
        else:
            # Serial rows run in this process: the block functions find it by name.
            workloads.IMPLEMENTATIONS["c"] = c_reference
            c_status = f"compiled with {c_reference.describe()}"

    primesieve = primesieve_command()
    primesieve_about = ""                  # "primesieve 11.0 (/usr/bin/primesieve)"
    start: Timing | str | None = None      # what starting the command alone costs
    if primesieve is not None:
        primesieve_about = (f"{primesieve_version(primesieve) or 'primesieve'} "
                            f"({primesieve})")
        progress.step("kernels: primesieve's process start")
        start = primesieve_start(primesieve)

    rows: list[dict] = []
    table_rows: list[list[str]] = []
    cases, calibration = make_cases(config.size)
    threads_used = None   # what primesieve -t N took for count_primes (it is a cap)
    if primesieve is not None:
        primes = next(c.full for c in cases if c.kernel == PRIMESIEVE_KERNEL)
        threads_used = primesieve_threads(primesieve, primes.lo, primes.hi, workers)
    # Pools are created once and warmed by each row's untimed warm-up run.
    mp_pool = multiprocessing.Pool(workers)
    executor = concurrent.futures.ProcessPoolExecutor(workers)
    parallel = joblib.Parallel(n_jobs=workers) if joblib is not None else None
    if parallel is not None:
        parallel.__enter__()
    image = None
    try:
        runners: dict[tuple[str, str], Callable[[], Any]] = {}
        references: dict[tuple[str, str], Any] = {}
        rows_by_case = {}
        for case in cases:
            rows_by_case[case.kernel] = _warm_up(case, config, progress, mp_pool, executor,
                                                 parallel, joblib, twins, numba_status,
                                                 c_reference, c_status, primesieve,
                                                 runners, references)
            if case.kernel == "mandelbrot":
                image = references.get(("mandelbrot", "native-serial"))

        def on_run(round_index: int, key: tuple[str, str]) -> None:
            if key[1] == next(m for m in runners if m[0] == key[0])[1]:
                progress.step(f"kernels: timed round {round_index + 1} of {config.repeat}, "
                              f"{key[0]}")

        measured = interleaved(runners, lambda key, result: same(result, references[key]),
                               config.repeat, on_run)
        for case in cases:
            case_rows = rows_by_case[case.kernel]
            _record(case, case_rows, measured)
            _add_speedups(case_rows, workers)
            rows += case_rows
            table_rows += _table_rows(case, case_rows, workers)
        references.clear()
    finally:
        workloads.IMPLEMENTATIONS.pop("c", None)
        if parallel is not None:
            parallel.__exit__(None, None, None)
        mp_pool.terminate()
        mp_pool.join()
        executor.shutdown(wait=True, cancel_futures=True)

    fractions = sorted({round(1 / case.fraction) for case in cases})
    notes = [
        "Sizes: chosen on this machine so that the native serial run takes about "
        f"{NATIVE_TARGET_S * config.size:.2g} s, and each pure slice about as long. Times: "
        "median (min-max) of the timed runs, after one untimed warm-up run per row; the "
        "timed runs go in rounds over the whole section (every row once per round). "
        "Pools are created once per section and warmed by the warm-up runs.",
        "* scaled: pure-Python rows ran on a slice of the workload (1/"
        + ", 1/".join(str(f) for f in fractions)
        + " of the work; see 'slice') and their times are multiplied up to the full "
        "workload. Each slice's answer is checked against the native kernel's answer "
        "for that slice.",
        "vs pure / vs native: the pure-Python serial and native serial median times "
        "divided by this row's (below 0.1 as a fraction: 1/250x, this row took 250 times "
        "as long). Efficiency: the speedup over the serial run of the same "
        "implementation (native for the native blocks and numba, primesieve on 1 thread "
        f"for primesieve on {workers}) divided by {workers} workers.",
        f"Peers (multiprocessing, ProcessPoolExecutor, joblib) map {workers} x "
        f"{BLOCKS_PER_WORKER} blocks of the chunk-level functions (allcores.native / "
        "allcores.pure); multiprocessing.Pool and ProcessPoolExecutor use start method "
        f"'{multiprocessing.get_start_method()}', joblib its loky processes.",
    ]
    if twins is not None:
        notes.append(f"numba: allcores/bench/numba_twins.py, plain loops under "
                     f"@njit(parallel=True) on {twins.threads()} numba threads; its compile "
                     "time falls in the warm-up run (first_run_s in results.json).")
    if c_status:
        notes.append("Plain C reference: benchmarks/c_reference.py, the same algorithms "
                     f"written in plain C, the whole job in one call; {c_status}.")
    if any(superlinear(row.get("efficiency")) for row in rows if row["impl"] != "numba"):
        notes.append(SUPERLINEAR_NOTE)
    notes.append(primesieve_note(primesieve_about, start, workers, threads_used))
    table = Table(f"kernels: {workers} workers (times scaled to the full workload)",
                  ["kernel", "method", "time", "slice", "vs pure", "vs native",
                   "efficiency", "answer"],
                  table_rows, notes)
    section = Section(
        name="kernels", question=QUESTION, rows=rows, tables=[table],
        extra={"workers": workers, "blocks_per_worker": BLOCKS_PER_WORKER,
               "native_target_s": NATIVE_TARGET_S * config.size, "calibration": calibration,
               "cases": [{"kernel": c.kernel, "workload": c.workload, "slice": c.part_text,
                          "slice_fraction": c.fraction} for c in cases],
               "numba": numba_status or "installed",
               "numba_threads": twins.threads() if twins is not None else None,
               "c_reference": c_status or None,
               "primesieve": primesieve_about or "not installed",
               "primesieve_threads_used": threads_used,
               "primesieve_start": (start.to_json() if isinstance(start, Timing)
                                    else start),
               "vs_best_other_tool": {"parallel": versus_other_tools(rows, parallel=True),
                                      "serial": versus_other_tools(rows, parallel=False)}},
        seconds=time.perf_counter() - started)
    section.artifacts["mandelbrot"] = image
    section.reading = reading(section)
    return section


def _warm_up(case: Case, config: Config, progress: Progress, mp_pool, executor, parallel,
             joblib, twins, numba_status: str, c_reference, c_status: str,
             primesieve: str | None, runners: dict, references: dict) -> list[dict]:
    """The rows of one kernel, each after its untimed warm-up run: adds each row's
    runner and reference answer to ``runners`` / ``references`` (keyed by (kernel,
    method)) for the timed rounds; a row whose warm-up gave a wrong answer is timed all
    the same and reported WRONG."""
    workers = config.workers
    count = workers * BLOCKS_PER_WORKER
    part_reference = case.part.run("native", 1, "serial")
    full_reference = case.expected   # the published answer; else native serial's, below
    makers: dict[str, Callable[[], Any] | str] = {
        "pure-serial": lambda: case.part.run("python", 1, "serial"),
        "pure-mp-imap": lambda: case.part.combine(
            list(mp_pool.imap(case.part.block_fn, case.part.blocks("python", count)))),
        "pure-allcores-process": lambda: case.part.run("python", workers, "process"),
        "native-serial": lambda: case.full.run("native", 1, "serial"),
        "c-serial": (lambda: case.full.combine(
            [case.full.block_fn(b) for b in case.full.blocks("c", 1)]))
        if c_reference is not None else c_status,
        "native-allcores-thread": lambda: case.full.run("native", workers, "thread"),
        "native-allcores-process": lambda: case.full.run("native", workers, "process"),
        "native-futures": lambda: case.full.combine(
            list(executor.map(case.full.block_fn, case.full.blocks("native", count)))),
        "native-joblib": (lambda: case.full.combine(
            parallel(joblib.delayed(case.full.block_fn)(b)
                     for b in case.full.blocks("native", count))))
        if parallel is not None else "not installed",
        "numba": (lambda: case.full.numba(twins)) if twins is not None else numba_status,
        # Called only for count_primes (methods() gives no other kernel these rows).
        "primesieve-serial": lambda: case.full.primesieve(primesieve, 1),
        "primesieve-threads": lambda: case.full.primesieve(primesieve, workers),
        "primesieve": "not installed",
    }
    rows: list[dict] = []
    for method, label, impl, on_part in methods(config, case.kernel, primesieve is not None):
        label = label.format(workers=workers)
        progress.step(f"kernels: {case.kernel}, {label} (warm-up)")
        row = {"kernel": case.kernel, "method": method, "label": label, "impl": impl,
               "workers": 1 if method.endswith("serial") else workers,
               "scaled": on_part, "work_fraction": case.fraction if on_part else 1.0}
        rows.append(row)
        runner = makers[method]
        if isinstance(runner, str):
            row.update(correct=None, status=runner)
            continue
        first = time.perf_counter()
        try:
            result = runner()     # the warm-up run (numba compiles here)
        except Exception as error:  # a peer that fails is reported, not fatal
            row.update(correct=False, status=f"failed: {type(error).__name__}: {error}")
            continue
        row["first_run_s"] = time.perf_counter() - first
        if method == "native-serial" and full_reference is None:
            full_reference = result   # every other full row is checked against it
        reference = part_reference if on_part else full_reference
        row["warm_up_correct"] = same(result, reference)
        runners[(case.kernel, method)] = runner
        references[(case.kernel, method)] = reference
        del result
    return rows


def primesieve_note(about: str, start: Timing | str | None, workers: int,
                    threads_used: int | None = None) -> str:
    """The table's footnote on the primesieve rows: what ran, how many threads it took,
    and what its start costs."""
    if not about:
        return f"primesieve: not installed ({PRIMESIEVE_INSTALL})."
    took = ("" if threads_used is None else
            f"; -t caps its threads: for -t {workers} it said it used {threads_used}")
    if isinstance(start, Timing):
        cost = (f"starting it costs {seconds_text(start.median)} (primesieve 0 1 -c -t 1 -q "
                f"alone, median of {len(start.times)}), included in its times")
    else:
        cost = f"its start cost could not be measured ({start})"
    return (f"primesieve: {about}, a process per run: primesieve LO HI-1 -c -t 1 -q, or "
            f"-t {workers} (its STOP is inclusive){took}. The count is parsed from its "
            f"output and checked like every row's; {cost}.")


def versus_other_tools(rows: list[dict], *, parallel: bool) -> dict[str, dict | None]:
    """Per kernel, allcores' best native time against the fastest other tool that ran:
    on N workers (``parallel``: allcores threads or processes vs numba parallel or
    primesieve -t N) or on one (native serial vs primesieve -t 1). Only rows with a
    right answer and a time count. ``ratio`` is the tool's median time over allcores',
    above 1: allcores is faster; a kernel where either side has no row maps to None."""
    ours_methods = ALLCORES_PARALLEL if parallel else ALLCORES_SERIAL
    theirs_methods = OTHER_TOOLS_PARALLEL if parallel else OTHER_TOOLS_SERIAL
    timed_rows = [r for r in rows if r.get("correct") and r.get("median_s")]
    out: dict[str, dict | None] = {}
    for kernel in dict.fromkeys(r["kernel"] for r in rows):
        ours = [r for r in timed_rows if r["kernel"] == kernel and r["method"] in ours_methods]
        theirs = [r for r in timed_rows
                  if r["kernel"] == kernel and r["method"] in theirs_methods]
        if not ours or not theirs:
            out[kernel] = None
            continue
        best = min(ours, key=lambda r: r["median_s"])
        tool = min(theirs, key=lambda r: r["median_s"])
        out[kernel] = {"ratio": tool["median_s"] / best["median_s"],
                       "allcores": best["label"], "allcores_s": best["median_s"],
                       "tool": tool["label"], "tool_s": tool["median_s"]}
    return out


def versus_text(entry: dict | None) -> str:
    """A headline cell: ``0.12x (primesieve, 2 threads)``, or ``-`` (no other tool ran)."""
    if entry is None:
        return "-"
    return f"{ratio_text(entry['ratio'])} ({entry['tool']})"


def _record(case: Case, rows: list[dict], measured: dict) -> None:
    """Put each row's timing and verdict into it."""
    for row in rows:
        key = (case.kernel, row["method"])
        if key not in measured:
            continue
        timing, right, error = measured[key]
        if error is not None:
            row.update(correct=False, status=error)
            continue
        correct = right and row.pop("warm_up_correct")
        scale = 1 / case.fraction if row["scaled"] else 1.0
        row.update(correct=correct, status="ok" if correct else "WRONG",
                   **timing.scaled(scale).to_json(),
                   measured=timing.to_json(), scale_factor=scale)


def _add_speedups(rows: list[dict], workers: int) -> None:
    by_method = {row["method"]: row for row in rows}
    pure = by_method["pure-serial"].get("median_s")
    native = by_method["native-serial"].get("median_s")
    # Efficiency is against the same implementation's serial run (numba has none: native).
    serial = {"python": pure,
              "primesieve": by_method.get("primesieve-serial", {}).get("median_s")}
    for row in rows:
        time_s = row.get("median_s")
        if time_s is None or not row.get("correct"):
            continue
        row["speedup_vs_pure"] = pure / time_s if pure else None
        row["speedup_vs_native"] = native / time_s if native else None
        own = serial.get(row["impl"], native)
        if row["workers"] > 1 and own:
            row["efficiency"] = own / time_s / row["workers"]


def _table_rows(case: Case, rows: list[dict], workers: int) -> list[list[str]]:
    out = []
    for row in rows:
        name = case.kernel if row is rows[0] else ""
        if row.get("median_s") is None:
            out.append([name, row["label"], row["status"], "", "", "", "", ""])
            continue
        timing = Timing(row["times_s"])
        efficiency = row.get("efficiency")
        out.append([
            name, row["label"], timing_text(timing) + (" *" if row["scaled"] else ""),
            f"1/{round(1 / row['work_fraction'])}" if row["scaled"] else "full",
            ratio_text(row.get("speedup_vs_pure")), ratio_text(row.get("speedup_vs_native")),
            # numba's efficiency is over native serial, another implementation: no mark.
            efficiency_text(efficiency) if row["impl"] != "numba"
            else f"{efficiency:.0%}" if efficiency is not None else "-",
            "ok" if row["correct"] else "WRONG",
        ])
    return out


def reading(section: Section) -> list[str]:
    """Sentences computed from the rows: native vs pure, and what N workers added."""
    rows = [r for r in section.rows if r.get("correct") and r.get("median_s")]
    workers = section.extra.get("workers", 0)
    by = {(r["kernel"], r["method"]): r for r in rows}
    kernel_names = list(dict.fromkeys(r["kernel"] for r in section.rows))
    out = []
    native_gain = {k: by[(k, "native-serial")]["speedup_vs_pure"] for k in kernel_names
                   if (k, "native-serial") in by and (k, "pure-serial") in by}
    if native_gain:
        low = min(native_gain, key=native_gain.get)
        high = max(native_gain, key=native_gain.get)
        out.append(f"On one core, native is {native_gain[low]:.0f}x ({low}) to "
                   f"{native_gain[high]:.0f}x ({high}) faster than pure Python "
                   "(pure times scaled from a slice).")
    for method, words in (("native-allcores-thread", "allcores threads"),
                          ("pure-allcores-process", "allcores processes (pure twin)"),
                          ("pure-mp-imap", "the tutorial's multiprocessing.Pool.imap")):
        gains = {k: by[(k, method)]["speedup_vs_native" if method.startswith("native")
                                    else "speedup_vs_pure"]
                 for k in kernel_names if (k, method) in by}
        if gains:
            listed = ", ".join(f"{k} {ratio_text(v)}" for k, v in gains.items())
            out.append(f"{workers} workers vs 1, {words}: {listed}.")
    versus_c = {k: by[(k, "c-serial")]["median_s"] / by[(k, "native-serial")]["median_s"]
                for k in kernel_names if (k, "c-serial") in by and (k, "native-serial") in by}
    if versus_c:
        listed = ", ".join(f"{k} {ratio_text(v)}" for k, v in versus_c.items())
        out.append("Native serial vs the plain C reference (C time / native time, above 1: "
                   f"native is faster): {listed}.")
    best = []
    for k in kernel_names:
        candidates = [r for r in rows if r["kernel"] == k and not r["scaled"]]
        if candidates:
            fastest = min(candidates, key=lambda r: r["median_s"])
            best.append(f"{k}: {fastest['label']}")
    if best:
        out.append("Fastest per kernel (measured medians): " + "; ".join(best) + ".")
    versus = section.extra.get("vs_best_other_tool", {})
    for parallel, words in ((True, f"on {workers} workers, allcores' best (threads or "
                                   "processes) vs the fastest of numba parallel and "
                                   f"primesieve -t {workers}"),
                            (False, "on one core, native serial vs primesieve -t 1")):
        listed = [f"{k} {ratio_text(v['ratio'])} ({v['tool']}: {seconds_text(v['tool_s'])} "
                  f"vs {v['allcores']}: {seconds_text(v['allcores_s'])})"
                  for k, v in versus.get("parallel" if parallel else "serial", {}).items()
                  if v is not None]
        if listed:
            out.append(f"vs the best other tool, {words} (tool time / allcores time, above "
                       f"1: allcores is faster): {'; '.join(listed)}.")
    start = section.extra.get("primesieve_start")
    fastest = min((r["median_s"] for r in rows if r["impl"] == "primesieve"), default=None)
    if isinstance(start, dict) and fastest:
        share = start["median_s"] / fastest
        out.append(f"primesieve's process start ({seconds_text(start['median_s'])}) is "
                   f"{share:.0%} of its fastest row's time"
                   + ("; it matters at this size." if share >= 0.05 else
                      "; it does not matter at this size."))
    if section.extra.get("numba", "installed") != "installed":
        out.append(f"numba rows did not run: {section.extra['numba']}.")
    if section.extra.get("primesieve") == "not installed":
        out.append(f"primesieve did not run: not installed ({PRIMESIEVE_INSTALL}).")
    return out
