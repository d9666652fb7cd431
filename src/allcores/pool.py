"""``allcores.Pool``: map, imap, imap_unordered, starmap and submit on a worker pool.

The pool validates every argument before any worker starts, builds one backend (see
``allcores.backends``), and streams work through the dispatcher (``allcores.dispatch``).
Its lifecycle is one state behind one lock: open -> closed (no new work; submitted work
finishes) or terminated (workers stopped at once).
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util  # before our atexit hook: see _terminate_live_pools
import sys
import threading
import weakref
from concurrent.futures import Future
from typing import Any, Callable, Iterable, Iterator

from allcores import _validate as check
from allcores._execute import ChunkError
from allcores.backends import create_backend, validate_backend_name
from allcores.backends.base import Chunk
from allcores.cpu import cpu_count
from allcores.dispatch import ChunkSizer, ChunkSource, known_length, run_chunks
from allcores.errors import PoolClosedError
from allcores.timeline import CallRecorder, Insights, Recorder

_live_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


def default_start_method() -> str:
    """forkserver where it exists (Linux; Python 3.14's own choice): fork is unsafe with
    threads; spawn elsewhere (macOS, Windows)."""
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods and sys.platform != "darwin" else "spawn"


def _check_callable(fn: object, name: str = "fn") -> None:
    if not callable(fn):
        raise TypeError(f"{name}: expected a callable, got: {type(fn).__name__}")


def check_map_arguments(fn: object, iterable: object, chunksize: object) -> None:
    """The checks every map-like call makes before any work (or any worker) starts."""
    _check_callable(fn)
    if not hasattr(iterable, "__iter__") and not hasattr(iterable, "__getitem__"):
        raise TypeError(f"iterable: expected an iterable, got: {type(iterable).__name__}")
    if chunksize is not None:
        check.integer("chunksize", chunksize, min=1)


def progress_bar(total: int | None):
    """A tqdm bar on stderr: items done, rate, and an ETA when the total is known."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="item", file=sys.stderr, dynamic_ncols=True)


class Pool:
    """A pool of ``workers`` workers that run functions over iterables in chunks.

    Parameters
    ----------
    workers : int, optional
        Number of workers; default :func:`allcores.cpu_count`, the CPUs this process
        may really use (affinity mask, cgroup quota, ``ALLCORES_WORKERS``).
    backend : {"process", "thread", "serial", "dask"}
        Where chunks run: worker processes (any Python function, true parallelism),
        threads (functions that release the GIL, such as the native kernels), the
        caller itself, or a Dask cluster (``pip install 'allcores[dask]'``).
    start_method : str, optional
        For processes: ``"forkserver"`` (default on Linux), ``"spawn"`` (default on
        macOS and Windows) or ``"fork"``.
    initializer, initargs
        ``initializer(*initargs)`` runs once in each worker before any work.
    retries : int
        How many times a chunk whose worker process died is run again (on a new
        worker) before :class:`WorkerCrashedError` is raised.
    timeout : float, optional
        Seconds a chunk may run (process backend): an overrunning chunk's worker is
        killed and replaced, and :class:`ChunkTimeoutError` (a ``TimeoutError``) is
        raised. Threads and Dask tasks cannot be stopped: those backends refuse it.
    address, client : optional
        Dask only: a scheduler address (default ``ALLCORES_DASK_ADDRESS``) or an existing
        ``distributed.Client``; with neither, a local cluster of ``workers``
        single-threaded processes on 127.0.0.1 is started and closed with the pool.
    insights : bool
        Record which worker ran each chunk of every map (``map``, ``imap``,
        ``imap_unordered``, ``starmap``; not ``submit``), and when (off by default);
        :meth:`insights` sums it up and draws the timeline. See ``allcores.timeline``.

    Leaving a ``with`` block waits for submitted work, then stops the workers; if the
    block is left by an exception (Ctrl-C included), the workers are stopped at once.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        backend: str = "process",
        start_method: str | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
        retries: int = 1,
        timeout: float | None = None,
        address: str | None = None,
        client: Any = None,
        insights: bool = False,
    ):
        backend_class = validate_backend_name(backend)
        workers = cpu_count() if workers is None else check.integer("workers", workers, min=1)
        retries = check.integer("retries", retries, min=0)
        if timeout is not None:
            timeout = check.finite_real("timeout", timeout)
            if timeout <= 0:
                raise ValueError(f"timeout: expected a number of seconds > 0, got: {timeout}")
            if not backend_class.supports_timeout:
                raise ValueError(
                    f"timeout: the {backend!r} backend cannot stop a running chunk; "
                    "use backend='process'"
                )
        if start_method is None:
            start_method = default_start_method()
        elif start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"start_method: expected one of {multiprocessing.get_all_start_methods()}, "
                f"got: {start_method!r}"
            )
        if initializer is not None:
            _check_callable(initializer, "initializer")
        try:
            initargs = tuple(initargs)
        except TypeError:
            raise TypeError(
                f"initargs: expected an iterable of arguments, got: {type(initargs).__name__}"
            ) from None

        if not isinstance(insights, bool):
            raise TypeError(f"insights: expected True or False, got: {insights!r}")
        if (address is not None or client is not None) and backend != "dask":
            raise ValueError("address and client: only for backend='dask', "
                             f"got backend={backend!r}")

        self._lock = threading.Lock()
        self._closed = False  # under _lock
        # Options a backend has no use for (e.g. retries for threads) are not passed.
        wanted = set(backend_class.option_names)
        options = dict(start_method=start_method, initializer=initializer,
                       initargs=initargs or None, retries=retries, timeout=timeout,
                       address=address, client=client)
        self._backend = create_backend(
            backend, workers, **{k: v for k, v in options.items() if k in wanted})
        self._recorder = Recorder(self.workers, self.backend) if insights else None
        # Dropping the last reference to a pool stops its workers.
        self._finalizer = weakref.finalize(self, self._backend.shutdown, wait=False)
        _live_pools.add(self)

    # --- properties -------------------------------------------------------------------

    @property
    def workers(self) -> int:
        """Number of workers (1 for the serial backend)."""
        return self._backend.workers

    @property
    def backend(self) -> str:
        return self._backend.name

    def insights(self, *, reset: bool = False) -> Insights:
        """A summary of every chunk the pool's maps handed back so far (or since the
        last ``reset=True``): wall time, per-worker busy and idle time, chunk sizes,
        dispatch vs the function, the slowest chunks; ``.plot(path)`` draws the
        timeline. ``reset=True`` starts a fresh recording after this summary.

        A map being consumed counts the chunks handed back until now. Needs
        ``Pool(insights=True)``."""
        if self._recorder is None:
            raise ValueError("this pool records nothing: create it with "
                             "Pool(..., insights=True)")
        return self._recorder.summary(reset=reset)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<allcores.Pool backend={self.backend!r} workers={self.workers} {state}>"

    # --- work -------------------------------------------------------------------------

    def imap(self, fn: Callable[[Any], Any], iterable: Iterable[Any],
             chunksize: int | None = None) -> Iterator[Any]:
        """Lazily yield ``fn(item)`` for each item, in input order.

        The input is read as results are consumed, with a bounded number of chunks in
        flight, so an endless generator works. Stopping early cancels queued chunks.
        """
        return flatten_results(
            self._chunk_results(fn, iterable, chunksize, ordered=True))

    def imap_unordered(self, fn: Callable[[Any], Any], iterable: Iterable[Any],
                       chunksize: int | None = None) -> Iterator[Any]:
        """Like :meth:`imap`, but yield each chunk's results as soon as it finishes."""
        return flatten_results(
            self._chunk_results(fn, iterable, chunksize, ordered=False))

    def map(self, fn: Callable[[Any], Any], iterable: Iterable[Any],
            chunksize: int | None = None) -> list:
        """``list(map(fn, iterable))``, computed on the pool's workers."""
        return concatenate_results(
            self._chunk_results(fn, iterable, chunksize, ordered=True))

    def starmap(self, fn: Callable[..., Any], iterable: Iterable[Iterable[Any]],
                chunksize: int | None = None) -> list:
        """``[fn(*args) for args in iterable]``, computed on the pool's workers."""
        return concatenate_results(
            self._chunk_results(fn, iterable, chunksize, ordered=True, star=True))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` on a worker; return a ``concurrent.futures.Future``."""
        _check_callable(fn)
        call = _BoundCall(fn, kwargs) if kwargs else fn
        with self._lock:
            self._ensure_open()
            chunk_future = self._backend.submit(self._backend.prepare(call), Chunk(0, [args]),
                                                True)
        result: Future = Future()
        result.set_running_or_notify_cancel()

        def forward(done: Future) -> None:
            if done.cancelled():
                result.set_exception(PoolClosedError("the pool was terminated"))
            elif isinstance(error := done.exception(), ChunkError):
                result.set_exception(error.for_caller(0, 1))
            elif error is not None:
                result.set_exception(error)
            else:
                result.set_result(done.result().values[0])

        chunk_future.add_done_callback(forward)
        return result

    def _chunk_results(self, fn, iterable, chunksize, *, ordered: bool, star: bool = False,
                       progress: bool = False, seconds_per_item: float | None = None,
                       length: int | None = None, first_item: int = 0,
                       bar=None, recorder: CallRecorder | None = None) -> Iterator[list]:
        """The results of each chunk, as a list per chunk. Arguments are checked now,
        at the call, not at the first ``next()``. ``chunksize=None`` adapts chunk sizes
        to the measured cost of items (``seconds_per_item`` seeds the measure);
        ``length`` and ``first_item`` describe an input that is the rest of another.
        Chunks are recorded into ``recorder``, else the pool's recorder (if it has one)."""
        check_map_arguments(fn, iterable, chunksize)
        self._ensure_open()
        if length is None:
            length = known_length(iterable)
        sizer = ChunkSizer(self.workers, length=length, fixed=chunksize,
                           seconds_per_item=seconds_per_item)
        if progress and bar is None:
            bar = progress_bar(length)
        if recorder is None and self._recorder is not None:
            recorder = self._recorder.start_call()
        return self._run(fn, ChunkSource(iterable, sizer, first_item), ordered, star, bar,
                         recorder)

    def _run(self, fn, chunks, ordered, star, bar, recorder) -> Iterator[list]:
        try:
            for chunk, results in run_chunks(self._backend, fn, chunks, ordered=ordered,
                                             star=star, recorder=recorder):
                if bar is not None:
                    bar.update(len(chunk.items))
                yield results
        except KeyboardInterrupt:
            self.terminate()  # Ctrl-C: stop every worker now, leave nothing behind
            raise
        finally:
            if bar is not None:
                bar.close()

    # --- lifecycle --------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` or :meth:`terminate` was called."""
        return self._closed

    def _ensure_open(self) -> None:
        if self._closed:
            raise PoolClosedError("the pool is closed")

    def close(self) -> None:
        """Accept no new work; wait for submitted work to finish; stop the workers."""
        with self._lock:
            self._closed = True
        self._backend.shutdown(wait=True)
        self._finalizer.detach()

    def terminate(self) -> None:
        """Stop the workers now; unfinished work fails with :class:`PoolClosedError`."""
        with self._lock:
            self._closed = True
        self._backend.shutdown(wait=False)
        self._finalizer.detach()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()


def flatten_results(chunk_results: Iterator[list]) -> Iterator[Any]:
    # A generator, not itertools.chain: callers may close() it to stop early.
    try:
        for results in chunk_results:
            yield from results
    finally:
        chunk_results.close()


def concatenate_results(chunk_results: Iterator[list]) -> list:
    """All chunks' results in one list. The first chunk's own list is extended (each
    chunk's list is fresh and ours); then one extend per chunk: much cheaper than a
    generator step per item for big maps."""
    out: list | None = None
    for results in chunk_results:
        if out is None:
            out = results
        else:
            out.extend(results)
    return [] if out is None else out


class _BoundCall:
    """``fn(*args, **kwargs)`` as a picklable callable taking the positional args."""

    def __init__(self, fn, kwargs):
        self.fn = fn
        self.kwargs = kwargs

    def __call__(self, *args):
        return self.fn(*args, **self.kwargs)


# atexit hooks run last-registered first. multiprocessing.util's hook joins every
# non-daemon child process, which would wait forever for our idle workers; importing it
# above registers it before this one, so our pools are stopped first.
@atexit.register
def _terminate_live_pools() -> None:
    for pool in list(_live_pools):
        pool.terminate()
