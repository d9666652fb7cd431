"""``allcores.Pool``: map, imap, imap_unordered, starmap and submit on a worker pool.

The pool validates every argument before any worker starts, builds one backend (see
``allcores.backends``), and streams work through the dispatcher (``allcores.dispatch``).
Its lifecycle is one state, shared with its backend, behind one lock
(``allcores._lifecycle``): open -> closed (no new calls; calls already made finish, then
the workers stop), terminated (workers stopped at once) or broken (the workers cannot
run anything). It belongs to the process that created it: a copy inherited through
``os.fork()`` refuses work there and never touches the parent's workers.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util  # before our atexit hook: see _terminate_live_pools
import os
import sys
import threading
import weakref
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Callable, Iterable, Iterator, Mapping, Self

from allcores import _checks as check
from allcores._execute import ChunkError, chunk_values
from allcores._options import (
    check_callable,
    check_map_arguments,
    flag_option,
    retries_option,
    timeout_option,
    workers_option,
)
from allcores._results import concatenate_results, flatten_results, progress_bar, started
from allcores._async import AsyncResult
from allcores._futures import CallbackSafeFuture, SubmitFuture, settle
from allcores._lifecycle import Lifecycle, State
from allcores._main_guard import refuse_work_while_main_is_imported
from allcores._types import BackendName, P, R, StartMethod, T
from allcores.backends import create_backend, running_in_worker, validate_backend_name
from allcores.backends.base import Chunk
from allcores.cpu import cpu_count
from allcores.dispatch import (
    ChunkSizer,
    ChunkSource,
    default_max_bytes,
    known_length,
    run_chunks,
)
from allcores.errors import AllcoresError, PoolClosedError
from allcores.timeline import CallRecorder, Insights, Recorder

_live_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


def default_start_method() -> StartMethod:
    """forkserver where it exists (Linux; Python 3.14's own choice): fork is unsafe with
    threads; spawn elsewhere (macOS, Windows)."""
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods and sys.platform != "darwin" else "spawn"


class Pool:
    """A pool of ``workers`` workers that run functions over iterables in chunks.

    Parameters
    ----------
    workers : int, optional
        Number of workers; default :func:`allcores.cpu_count`, the CPUs this process
        may really use (affinity mask, cgroup quota, ``ALLCORES_WORKERS``).
        ``processes=`` is accepted for it, as ``multiprocessing.Pool`` calls it.
    backend : {"process", "thread", "serial", "dask"}
        Where chunks run: worker processes (any Python function, true parallelism),
        threads (functions that release the GIL, such as the native kernels), the
        caller itself, or a Dask cluster (``pip install 'allcores[dask]'``).
    start_method : {"forkserver", "spawn", "fork"}, optional
        For processes: ``"forkserver"`` (default on Linux), ``"spawn"`` (default on
        macOS and Windows) or ``"fork"``. ``context=`` (a ``multiprocessing`` context,
        as ``multiprocessing.Pool`` takes) gives it too.
    initializer, initargs
        ``initializer(*initargs)`` runs once in each worker before any work.
    retries : int
        How many times a chunk whose worker process died is run again (on a new
        worker) before :class:`WorkerCrashedError` is raised.
    timeout : float, optional
        Seconds a chunk may run (process backend): an overrunning chunk's worker is
        killed and replaced, and :class:`ChunkTimeoutError` (a ``TimeoutError``) is
        raised. Threads and Dask tasks cannot be stopped: those backends refuse it.
    maxtasksperchild : int, optional
        Process backend: a worker is replaced by a fresh one after running this many
        tasks, as in ``multiprocessing.Pool`` (a task is a chunk: one ``submit`` or
        ``apply`` call, or one chunk of a map). Default None: workers live as long as
        the pool.
    address, client : optional
        Dask only: a scheduler address (default ``ALLCORES_DASK_ADDRESS``) or an existing
        ``distributed.Client``; with neither, a local cluster of ``workers``
        single-threaded processes on 127.0.0.1 is started and closed with the pool.
    insights : bool
        Record which worker ran each chunk of every map (``map``, ``imap``,
        ``imap_unordered``, ``starmap``; not ``submit``), and when (off by default);
        :meth:`insights` sums it up and draws the timeline. See ``allcores.timeline``.
    max_bytes : int, optional
        A bound on the pickled bytes of the chunks in flight per map (items and
        results; at least one chunk is always in flight): default 64 MiB, or
        ``ALLCORES_MAX_BYTES``. Chunks also hold at most 65,536 items and about 4 MiB
        pickled. The caller's memory for a map is then about 2-3 times this bound
        (the objects behind the bytes), however long the input.

    Leaving a ``with`` block closes the pool (submitted work finishes, then the workers
    stop); if the block is left by an exception (Ctrl-C included), the pool is
    terminated: the workers are stopped at once.
    """

    def __init__(
        self,
        workers: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        *,
        processes: int | None = None,
        backend: BackendName = "process",
        start_method: StartMethod | None = None,
        context: multiprocessing.context.BaseContext | None = None,
        retries: int = 1,
        timeout: float | None = None,
        maxtasksperchild: int | None = None,
        address: str | None = None,
        client: Any = None,
        insights: bool = False,
        max_bytes: int | None = None,
    ) -> None:
        refuse_work_while_main_is_imported()
        if processes is not None:  # multiprocessing.Pool's name for it
            if workers is not None:
                raise TypeError("workers and processes: the same thing, given twice")
            workers = processes
        backend_class = validate_backend_name(backend)
        workers = workers_option(workers) or cpu_count()
        retries = retries_option(retries)
        timeout = timeout_option(timeout, backend)
        if maxtasksperchild is not None:
            check.integer("maxtasksperchild", maxtasksperchild, min=1)
            if "max_tasks" not in backend_class.option_names:
                raise ValueError(f"maxtasksperchild: the {backend!r} backend does not "
                                 "replace its workers; use backend='process'")
        if context is not None:  # a multiprocessing context: its start method
            if not isinstance(context, multiprocessing.context.BaseContext):
                raise TypeError(f"context: expected a multiprocessing context, got: "
                                f"{type(context).__name__}")
            if start_method not in (None, context.get_start_method()):
                raise ValueError(f"start_method={start_method!r} and a "
                                 f"{context.get_start_method()!r} context: choose one")
            start_method = context.get_start_method()
        if start_method is None:
            start_method = default_start_method()
        elif start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"start_method: expected one of {multiprocessing.get_all_start_methods()}, "
                f"got: {start_method!r}"
            )
        if initializer is not None:
            check_callable(initializer, "initializer")
        try:
            initargs = tuple(initargs)
        except TypeError:
            raise TypeError(
                f"initargs: expected an iterable of arguments, got: {type(initargs).__name__}"
            ) from None

        flag_option("insights", insights)
        self._max_bytes = (default_max_bytes() if max_bytes is None
                           else check.integer("max_bytes", max_bytes, min=1))
        if (address is not None or client is not None) and backend != "dask":
            raise ValueError("address and client: only for backend='dask', "
                             f"got backend={backend!r}")

        self._lifecycle = Lifecycle()
        # Set once the workers have stopped (close, the last open call's end, terminate).
        self._workers_stopped = threading.Event()
        # Options a backend has no use for (e.g. retries for threads) are not passed.
        wanted = set(backend_class.option_names)
        options = dict(start_method=start_method, initializer=initializer,
                       initargs=initargs or None, retries=retries, timeout=timeout,
                       max_tasks=maxtasksperchild, address=address, client=client)
        self._backend = create_backend(
            backend, workers, self._lifecycle,
            **{k: v for k, v in options.items() if k in wanted})
        self._recorder = Recorder(self.workers, self.backend) if insights else None
        # Dropping the last reference to a pool stops its workers.
        self._finalizer = weakref.finalize(self, _stop_now, self._backend, self._lifecycle)
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
        state = self._lifecycle.state.value
        if not self._lifecycle.owned:
            state = f"inherited from process {self._lifecycle.owner_pid}"
        return f"<allcores.Pool backend={self.backend!r} workers={self.workers} {state}>"

    # --- work -------------------------------------------------------------------------

    def imap(self, fn: Callable[[T], R], iterable: Iterable[T],
             chunksize: int | None = None) -> Iterator[R]:
        """Lazily yield ``fn(item)`` for each item, in input order.

        The input is read as results are consumed, with a bounded number of chunks in
        flight, so an endless generator works. Stopping early cancels queued chunks.
        """
        return flatten_results(
            self._chunk_results(fn, iterable, chunksize, ordered=True))

    def imap_unordered(self, fn: Callable[[T], R], iterable: Iterable[T],
                       chunksize: int | None = None) -> Iterator[R]:
        """Like :meth:`imap`, but yield each chunk's results as soon as it finishes."""
        return flatten_results(
            self._chunk_results(fn, iterable, chunksize, ordered=False))

    def map(self, fn: Callable[[T], R], iterable: Iterable[T],
            chunksize: int | None = None) -> list[R]:
        """``list(map(fn, iterable))``, computed on the pool's workers."""
        return concatenate_results(
            self._chunk_results(fn, iterable, chunksize, ordered=True))

    def starmap(self, fn: Callable[..., R], iterable: Iterable[Iterable[Any]],
                chunksize: int | None = None) -> list[R]:
        """``[fn(*args) for args in iterable]``, computed on the pool's workers."""
        return concatenate_results(
            self._chunk_results(fn, iterable, chunksize, ordered=True, star=True))

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        """Run ``fn(*args, **kwargs)`` on a worker; return a ``concurrent.futures.Future``.

        The future is pending until a worker takes the call (``cancel()`` then succeeds
        and the call never runs), running while it runs, then done. On the Dask
        backend it stays pending until done (Dask does not say when a task starts);
        cancelling it there drops the task from the cluster. A function or arguments
        that cannot be pickled fail the future, not the call to ``submit``."""
        check_callable(fn)
        call = _BoundCall(fn, kwargs) if kwargs else fn
        self._lifecycle.check(new_call=True)
        backend = self._backend_for_this_thread()
        try:
            chunk_future = backend.submit(backend.prepare(call), Chunk(0, [args]), True)
        except AllcoresError:
            raise  # the pool's state (closed, broken): the submit itself fails
        except Exception as exc:
            # Pickling the function or the arguments failed here, in the caller: this
            # call's error, on its future, as concurrent.futures executors report it
            # (code that submits a batch handles failures per future).
            failed: Future[R] = CallbackSafeFuture()
            failed.set_exception(exc)
            return failed
        # Pending until a worker takes the chunk: cancel() works until then.
        result = SubmitFuture(chunk_future)
        chunk_future.follow_with(result)

        def forward(done: Future[Any]) -> None:
            # Runs where the chunk's future settles (an engine thread, maybe): whatever
            # unpickling the result raises is this call's error, nothing else's.
            value, error = None, None
            try:
                if done.cancelled():
                    if result.cancelling:
                        return  # the caller's cancel(): it cancels the result itself
                    error = PoolClosedError("the pool was terminated")
                elif (error := done.exception()) is None:
                    value = chunk_values(done.result(), 1)[0]
            except BaseException as exc:
                error = exc
            if isinstance(error, ChunkError):
                error = error.for_caller(0, 1)
            settle(result, result=value, error=error)

        chunk_future.add_done_callback(forward)
        return result

    # --- multiprocessing.Pool's asynchronous calls ----------------------------------

    def apply(self, fn: Callable[..., R], args: Iterable[Any] = (),
              kwds: Mapping[str, Any] | None = None) -> R:
        """``fn(*args, **kwds)`` on a worker, waiting for its result."""
        return self.submit(fn, *args, **(kwds or {})).result()

    def apply_async(self, fn: Callable[..., R], args: Iterable[Any] = (),
                    kwds: Mapping[str, Any] | None = None,
                    callback: Callable[[R], object] | None = None,
                    error_callback: Callable[[BaseException], object] | None = None
                    ) -> AsyncResult[R]:
        """``fn(*args, **kwds)`` on a worker; see :class:`allcores.AsyncResult`."""
        _check_callbacks(callback, error_callback)
        return AsyncResult(self.submit(fn, *args, **(kwds or {})), callback, error_callback)

    def map_async(self, fn: Callable[[T], R], iterable: Iterable[T],
                  chunksize: int | None = None,
                  callback: Callable[[list[R]], object] | None = None,
                  error_callback: Callable[[BaseException], object] | None = None
                  ) -> AsyncResult[list[R]]:
        """:meth:`map` without waiting: the call is made (and counted, so that
        :meth:`close` then :meth:`join` wait for it) at once, and run on a thread."""
        return self._async(fn, iterable, chunksize, callback, error_callback, star=False)

    def starmap_async(self, fn: Callable[..., R], iterable: Iterable[Iterable[Any]],
                      chunksize: int | None = None,
                      callback: Callable[[list[R]], object] | None = None,
                      error_callback: Callable[[BaseException], object] | None = None
                      ) -> AsyncResult[list[R]]:
        """:meth:`starmap` without waiting; see :meth:`map_async`."""
        return self._async(fn, iterable, chunksize, callback, error_callback, star=True)

    def _async(self, fn, iterable, chunksize, callback, error_callback, *,
               star: bool) -> AsyncResult[Any]:
        _check_callbacks(callback, error_callback)
        results = self._chunk_results(fn, iterable, chunksize, ordered=True, star=star)
        future: Future[Any] = CallbackSafeFuture()
        future.set_running_or_notify_cancel()
        outcome = AsyncResult(future, callback, error_callback)

        def run() -> None:
            value, error = None, None
            try:
                value = concatenate_results(results)
            except BaseException as exc:  # the call's error, whatever it is
                error = exc
            settle(future, result=value, error=error)

        threading.Thread(target=run, name="allcores-map-async", daemon=True).start()
        return outcome

    def _submit_chunk(self, prepared_fn, chunk: Chunk):
        """One chunk outside any map (the planner's sample and its speculation): the
        backend's future of its ``ChunkResult``. ``prepared_fn``: from ``prepare``."""
        self._lifecycle.check(new_call=True)
        return self._backend.submit(prepared_fn, chunk, False)

    def _chunk_results(self, fn, iterable, chunksize, *, ordered: bool, star: bool = False,
                       progress: bool = False, seconds_per_item: float | None = None,
                       length: int | None = None, first_item: int = 0,
                       bar=None, recorder: CallRecorder | None = None,
                       deadline: float | None = None) -> Iterator[list]:
        """The results of each chunk, as a list per chunk. Arguments are checked now,
        at the call, not at the first ``next()``. ``chunksize=None`` adapts chunk sizes
        to the measured cost of items (``seconds_per_item`` seeds the measure);
        ``length`` and ``first_item`` describe an input that is the rest of another.
        Chunks are recorded into ``recorder``, else the pool's recorder (if it has one).
        ``deadline`` (``time.monotonic()``): ``TimeoutError`` when the next chunk is not
        finished by then (see ``dispatch.run_chunks``)."""
        check_map_arguments(fn, iterable, chunksize)
        if length is None:
            length = known_length(iterable)
        sizer = ChunkSizer(self.workers, length=length, fixed=chunksize,
                           seconds_per_item=seconds_per_item)
        chunks = ChunkSource(iterable, sizer, first_item)
        call = _OpenCall(self)  # counted from here: close() lets it finish
        backend = self._backend_for_this_thread()
        if progress and bar is None:
            bar = progress_bar(length)
        if recorder is None and self._recorder is not None:
            recorder = self._recorder.start_call()
        return started(self._run(backend, fn, chunks, ordered, star, bar, recorder, call,
                                 deadline))

    def _backend_for_this_thread(self):
        """The pool's backend; a serial one (sharing the lifecycle) on a thread of this
        very pool: a map or submit from inside one of its chunks runs in place, as
        module-level calls nested in a worker do (it would otherwise wait for threads
        that may all be waiting for it)."""
        if running_in_worker(self._backend):
            return create_backend("serial", 1, self._lifecycle)
        return self._backend

    def _run(self, backend, fn, chunks, ordered, star, bar, recorder,
             call, deadline) -> Iterator[list]:
        try:
            yield  # the priming yield: see allcores._results.started
            for chunk, results in run_chunks(backend, fn, chunks, ordered=ordered,
                                             star=star, recorder=recorder,
                                             max_bytes=self._max_bytes, deadline=deadline):
                if bar is not None:
                    bar.update(len(chunk.items))
                yield results
        except KeyboardInterrupt as interrupt:
            # Ctrl-C (or anything raising KeyboardInterrupt in this thread): stop every
            # worker now, leave nothing behind. One that fn raised in a worker is only
            # that call's error.
            if not getattr(interrupt, "_allcores_from_worker", False):
                self.terminate()
            raise
        finally:
            call.end()
            if bar is not None:
                bar.close()

    # --- lifecycle --------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the pool takes no new calls: after :meth:`close` or
        :meth:`terminate`, when it broke (its workers cannot run anything: the calls
        then raise, saying why), and in a child process that inherited it through
        ``os.fork()``."""
        return self._lifecycle.state is not State.OPEN or not self._lifecycle.owned

    def close(self) -> None:
        """Take no new calls. Calls already made finish (an ``imap`` created before can
        still be read to its end; a submitted future settles); then the workers stop.
        Waits for that unless a map is still open (being read, maybe by the very code
        that closes the pool): the workers then stop when the last one ends."""
        self._close(wait=True)

    def _close(self, *, wait: bool) -> None:
        """close(); ``wait=False`` returns at once, the work already submitted finishing
        on a thread (not a daemon: the interpreter's exit waits for that work, as it
        does for a ``concurrent.futures`` executor shut down without waiting)."""
        if not self._lifecycle.owned:
            return  # the parent's pool: nothing here to stop
        if self._lifecycle.close():
            self._finalizer.detach()
            if wait:
                self._shutdown(wait=True)
            else:
                threading.Thread(target=self._shutdown, kwargs={"wait": True},
                                 name="allcores-close").start()

    def terminate(self) -> None:
        """Stop the workers now; unfinished work fails with :class:`PoolClosedError`.
        Returns within a few seconds whatever the workers are doing."""
        self._finalizer.detach()
        try:
            _stop_now(self._backend, self._lifecycle)
        finally:
            self._workers_stopped.set()

    def _shutdown(self, *, wait: bool) -> None:
        try:
            self._backend.shutdown(wait=wait)
        finally:
            self._workers_stopped.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the workers have stopped, after :meth:`close` (the calls already
        made finish first, ``*_async`` ones included) or :meth:`terminate`, as
        ``multiprocessing.Pool.join`` does; True once they have (False if ``timeout``
        seconds passed first). ValueError while the pool is still open."""
        if not self._lifecycle.owned:
            return True  # inherited through fork: the parent's workers are not ours
        if self._lifecycle.state in (State.OPEN, State.BROKEN):
            raise ValueError("Pool is still running: call close() or terminate() first")
        return self._workers_stopped.wait(timeout)

    def _end_call(self) -> None:
        """A map ended (see _OpenCall); the last one of a closed pool stops the workers,
        on a thread of its own: this may run in a finally or a garbage collection
        anywhere, even on one of the pool's own threads."""
        if self._lifecycle.owned and self._lifecycle.end_call():
            self._finalizer.detach()
            try:
                threading.Thread(target=self._shutdown, kwargs={"wait": True},
                                 name="allcores-close", daemon=True).start()
            except RuntimeError:  # no new threads at interpreter exit: stop them now
                self._shutdown(wait=False)

    def __enter__(self) -> Self:
        # A closed or terminated pool cannot be used again; a broken one enters, and
        # its calls then say why it broke.
        if self._lifecycle.state is not State.BROKEN:
            self._lifecycle.check(new_call=True)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()


def _check_callbacks(callback, error_callback) -> None:
    if callback is not None:
        check_callable(callback, "callback")
    if error_callback is not None:
        check_callable(error_callback, "error_callback")


def _stop_now(backend, lifecycle: Lifecycle) -> None:
    """Terminate: run once, by terminate() or when the pool is collected. A process
    that inherited the pool through fork() does nothing: the workers are the parent's."""
    if lifecycle.owned:
        lifecycle.terminate()
        backend.shutdown(wait=False)


class _OpenCall:
    """A map whose results are still to be read: counted as open in the pool's
    lifecycle until it ends, however it ends (read to its end, closed, failed, or
    collected without ever being started: a generator that never ran has no
    ``finally`` to run, hence ``__del__``)."""

    __slots__ = ("_pool", "_ended")

    def __init__(self, pool: Pool):
        self._ended = True  # until begun: a refused call has nothing to end
        pool._lifecycle.begin_call()
        self._pool = pool
        self._ended = False

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._pool._end_call()

    def __del__(self) -> None:
        try:
            self.end()
        except Exception:  # at interpreter exit: the exit hook terminates every pool
            pass


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


def _forget_the_parents_pools() -> None:
    # In a fork child the parent's pools are not ours to stop at exit (see Lifecycle).
    _live_pools.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_the_parents_pools)
