"""The dask backend: chunks run as tasks on a Dask cluster (``dask.distributed``).

For work that outgrows one machine: the same ``Pool`` / ``allcores.map`` code runs on
Dask's distributed scheduler, which owns the workers, places the tasks and re-runs the
ones whose worker died. Three ways to get a cluster, in this order:

- ``client=``: an existing ``distributed.Client``; used as it is, never closed by us;
- ``address=`` (or the environment variable ``ALLCORES_DASK_ADDRESS``): a running
  scheduler, e.g. ``"tcp://10.0.0.5:8786"``; we open a client to it and close that
  client (not the cluster) on shutdown;
- neither: a local cluster (what ``LocalCluster`` starts: a scheduler on this process's
  event loop, a nanny here and one single-threaded worker process per worker), started
  here and closed on shutdown. It admits only this pool: it listens on 127.0.0.1 only,
  every connection to it speaks TLS with a key and certificate made for this cluster
  (``Security.temporary()``: both ends must show one it signed), and nothing in it serves
  HTTP (no dashboard, no health or metrics routes). A cluster given by ``address`` or
  ``client`` is the caller's, secured as they set it up (a ``Security`` passed to their
  ``Client``).

Data flow (who owns what)::

    caller thread(s)              Dask client, in this process          Dask workers
    ----------------              ----------------------------          ------------
    submit(): pickle the items,
      client.submit(run_chunk,   -> event-loop thread: the task  =====>  run_chunk: the process
        RunChunk)                   goes to the scheduler,              workers' protocol: load fn
      -> our Future (pending),      which places it                     (cached by content hash),
      noted in _in_flight                                               run the items, pickle the
                                                                        results: return ChunkDone,
                                                                        or ChunkFailed (the stage,
                                                                        the item)
                                  Dask's callback thread: the task <==  finished / erred (Dask
                                    is done -> hand it to a fetch       could not run it) / lost
                                    thread                              with its worker too often
                                                                        (KilledWorker)
    future.result() <--set------- fetch threads (FETCH_THREADS): fetch the reply ->
      (the caller's thread          ChunkResult with the pickled results; ChunkFailed ->
      unpickles the results)        ChunkError; KilledWorker -> WorkerCrashedError;
                                    cancelled -> PoolClosedError
    future.cancel() ------------> distributed Future.cancel(): the scheduler drops the task
                                    (a task already running finishes; its result is dropped)
    shutdown(wait=False): fail our futures with PoolClosedError, cancel their tasks (one
    message), close what we started (client, cluster)

- The pool's state is its ``Lifecycle`` (``allcores._lifecycle``): ``submit`` asks it.
- ``_lock`` guards ``_closed`` (shutdown ran), ``_released`` and ``_in_flight`` (our Future -> its
  distributed Future), which any thread may touch: callers (submit, cancel, shutdown),
  fetch threads (settling). Nothing blocking runs under it.
- Our futures never enter the RUNNING state (Dask does not tell us when a task starts),
  so a caller's ``cancel()`` always succeeds and always reaches Dask.
- Whoever settles a future first wins (a fetch thread, a cancel, a shutdown); the others
  find it done and leave it (``settle``).
- Items and results travel as bytes pickled by us (``allcores._execute.dumps``): Dask does
  not walk a chunk's list looking for Dask objects, an object that fails to pickle or
  unpickle is reported with its stage, and a chunk's results come back as one pickled
  list (numpy arrays in one buffer each, no per-item overhead).

Capabilities and how Pool options map onto Dask:

- ``retries``: how many worker deaths a chunk survives. On the local cluster we start it
  is the scheduler's ``allowed_failures``: a chunk whose worker died more than
  ``retries`` times fails with ``WorkerCrashedError``. Dask counts a death against every
  chunk assigned to the dying worker, including one queued there behind the chunk that
  killed it. On a cluster we did not start (``address``/``client``) the scheduler's own
  setting (``distributed.scheduler.allowed-failures``, default 3) applies: it belongs to
  the cluster, not to one client. Dask's ``submit(retries=...)`` is not used: it re-runs
  tasks that *raised*, and an exception from ``fn`` must reach the caller at once.
- ``initializer``: a ``WorkerPlugin`` whose ``setup`` calls it, registered with the
  client: it runs once in every worker process, on the workers there now and on any that
  join or restart later (after a crash), before they run our tasks. It runs on the
  worker's event-loop thread, so it should set up process state (globals, imports,
  environment), not thread-local state. If it raises, ``Pool()`` raises
  ``WorkerInitError``; the plugin is unregistered on shutdown, so it does not outlive the
  pool on a shared cluster.
- ``timeout``: not supported (``supports_timeout = False``): Dask cannot stop a running
  task. Likewise a chunk that is running when the caller stops reading, or when the pool
  is terminated, runs to its end on its worker; only the workers of the local cluster
  we started are stopped with the pool.
- ``workers``: the number of Dask worker threads (the sum of every worker's
  ``nthreads``); for a cluster we did not start it is read from the scheduler (it may
  grow or shrink), and the ``workers`` given to ``Pool`` is ignored.
- The workers must be able to import ``allcores`` (install it on them, same version);
  functions travel by cloudpickle, so lambdas and closures work.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import os
import pickle
import threading
import time
import traceback
import uuid
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from typing import Any, NamedTuple

try:
    import distributed
    from dask.utils import funcname
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError as exc:  # the registry imports this module only when asked for "dask"
    raise ImportError(
        "backend='dask' needs Dask's distributed scheduler, an optional extra: "
        "pip install 'allcores[dask]'"
    ) from exc

import cloudpickle

from allcores import _execute
from allcores._execute import (
    PICKLE_PROTOCOL,
    ChunkError,
    ChunkResult,
    FunctionCache,
    dumps,
)
from allcores._futures import ChunkFuture, settle
from allcores._lifecycle import Lifecycle
from allcores._messages import ChunkDone, ChunkFailed, RunChunk
from allcores.backends.base import Backend, Chunk
from allcores.errors import (
    PoolClosedError,
    RemoteTraceback,
    WorkerCrashedError,
    WorkerInitError,
)

# Read when neither ``address`` nor ``client`` is given: the scheduler to connect to.
ADDRESS_ENV = "ALLCORES_DASK_ADDRESS"
# How long closing the client and the LocalCluster we started may take (each). Long
# enough for workers to exit cleanly; after it Dask kills them.
CLOSE_TIMEOUT_S = 10.0
# On terminate, how long the worker processes of our LocalCluster get to exit before
# they are killed: a running chunk cannot finish anyway, and Ctrl-C should feel instant.
TERMINATE_GRACE_S = 0.5
# For a cluster we did not start, ``workers`` is re-read from the scheduler at most this
# often: fresh enough to follow a cluster that scales, without a round trip to the
# scheduler on every ``map`` call.
WORKERS_REFRESH_S = 1.0
# Chunks in flight per worker thread. A chunk's round trip through Dask takes 10-20 ms
# (the client, scheduler and workers batch their messages every 2-10 ms), as long as a
# chunk itself (the dispatcher aims at 20 ms): with 2 per worker, as for local processes,
# workers would wait for their next chunk. More would hold more items and results in
# memory for no gain. (Measured on 2 workers: 4 took 25% less time than 2 for 1 ms items
# in chunks of one.)
CHUNKS_IN_FLIGHT_PER_WORKER = 4
# Threads that fetch finished chunks' results. Dask calls every done callback on one
# thread per process; fetching there, one chunk after another, capped a 2-worker
# cluster at about 270 chunks per second (3.7 ms per fetch): fetches overlap here.
FETCH_THREADS = 4
FETCH_THREAD_NAME = "allcores-dask-fetch"


# Backends not yet shut down, for the exit hook below.
_live_backends: weakref.WeakSet[DaskBackend] = weakref.WeakSet()


# --- the worker side ----------------------------------------------------------------------

# Functions unpickled in this worker process, by content hash: a function is unpickled
# once per worker, not once per chunk (the cache is thread-safe: a worker runs tasks on
# several threads when its nthreads > 1).
_functions = FunctionCache()


def _lane() -> str:
    """This task's place in the cluster, for the timeline: the worker's address, and
    the thread when the worker runs tasks on several."""
    try:
        worker = distributed.get_worker()
    except ValueError:
        return f"process {os.getpid()}"
    # worker.state.nthreads in current releases, worker.nthreads in older ones
    nthreads = getattr(getattr(worker, "state", worker), "nthreads", None)
    if (nthreads or getattr(worker, "nthreads", 1)) > 1:
        return f"{worker.address} {threading.current_thread().name}"
    return worker.address


def _this_worker() -> str:
    try:
        return f"dask worker {distributed.get_worker().address}"
    except ValueError:  # called outside a Dask worker
        return f"process {os.getpid()}"


def run_chunk(task: RunChunk) -> ChunkDone | ChunkFailed:
    """The task that runs one chunk on a Dask worker: the worker side of the protocol
    that process workers run too (``allcores._execute.run_chunk``). It returns its
    failure rather than raising it, so that Dask never re-runs it or pickles the error;
    ``started`` goes back as wall-clock time, the one clock machines share."""
    reply = _execute.run_chunk(task, _functions, lane=_lane(), worker=_this_worker())
    if isinstance(reply, ChunkDone):
        reply = reply._replace(started=time.time() - (time.perf_counter() - reply.started))
    return reply


class InitializerPlugin(WorkerPlugin):
    """Runs the pool's ``initializer(*initargs)`` once in each Dask worker process."""

    def __init__(self, payload: bytes):
        self.payload = payload  # cloudpickle of (initializer, initargs)

    def setup(self, worker) -> None:
        initializer, initargs = pickle.loads(self.payload)
        initializer(*initargs)


# --- the caller side ----------------------------------------------------------------------


class _PreparedFunction(NamedTuple):
    fn_id: bytes     # content hash of payload: the workers' cache key
    payload: bytes   # cloudpickle of fn, sent with every task (a few hundred bytes, usually)
    key_prefix: str  # task keys start with it: what the Dask dashboard groups by


def _key_prefix(fn) -> str:
    try:
        name = funcname(fn)
    except Exception:
        name = type(fn).__name__
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in str(name))
    return f"allcores-{cleaned.strip('_') or 'fn'}"


# --- the cluster we start -----------------------------------------------------------------
#
# It must admit only this pool: whoever can talk to a Dask scheduler, worker or nanny can
# run code as the pool's owner, and a loopback port is open to every local user. So every
# comm speaks TLS with a key and certificate made for this cluster alone (both ends must
# show a certificate signed by it), and nothing serves HTTP: Dask's scheduler and workers
# always start an HTTP server, dashboard or not, with no authentication (its default
# routes show the workers, their logs and call stacks, the tasks, metrics).


class _SchedulerWithoutHTTP(distributed.Scheduler):
    """A Dask scheduler that serves no HTTP at all (Scheduler.__init__ starts it)."""

    def start_http_server(self, *args, **kwargs) -> None:
        # Nothing listens. Dask looks a server up in self.services["dashboard"], absent
        # as when it runs no dashboard, and uses self.http_server only with a dashboard.
        pass


class _WorkerWithoutHTTP(distributed.Worker):
    """A Dask worker that serves no HTTP at all (Worker.start_unsafe starts it). The
    nanny starts it by reference, so it lives in a module the worker process imports."""

    def start_http_server(self, *args, **kwargs) -> None:
        pass  # as for _SchedulerWithoutHTTP


def _start_local_cluster(workers: int, *, allowed_failures: int):
    """Start our cluster: a scheduler (on this process's event loop thread) and
    ``workers`` nannies, each running one single-threaded worker process; every one on
    127.0.0.1, speaking ``tls://`` with new temporary credentials, serving no HTTP.

    What LocalCluster(processes=True) would start, with the classes above; each worker's
    memory limit is its share of the machine's, as LocalCluster gives it."""
    import logging

    from distributed.security import Security
    from distributed.system import MEMORY_LIMIT

    try:
        # New for every cluster, kept in memory (Dask writes it to a private temporary
        # directory only while it loads it into an SSL context).
        security = Security.temporary()
    except ImportError as exc:
        raise ImportError(
            "backend='dask' starts its own Dask cluster secured with TLS, which needs the "
            "cryptography package: pip install 'allcores[dask]' (or pass address= or "
            "client= to use a cluster of your own)") from exc
    common = dict(host="127.0.0.1", protocol="tls://", security=security)
    scheduler = {"cls": _SchedulerWithoutHTTP,
                 "options": dict(common, port=0, allowed_failures=allowed_failures)}
    worker = {"cls": distributed.Nanny,
              "options": dict(common, nthreads=1, worker_class=_WorkerWithoutHTTP,
                              memory_limit=max(1, MEMORY_LIMIT // workers),
                              silence_logs=logging.WARN)}
    return distributed.SpecCluster(
        workers={i: worker for i in range(workers)}, scheduler=scheduler, worker=worker,
        security=security, silence_logs=logging.WARN)


class DaskBackend(Backend):
    name = "dask"
    runs_in_caller_process = False
    supports_timeout = False  # a running Dask task cannot be stopped from outside
    option_names = ("initializer", "initargs", "retries", "address", "client")

    def __init__(self, workers: int, *, lifecycle: Lifecycle, initializer=None, initargs=(),
                 retries: int = 1, address: str | None = None, client: Any = None):
        if address is not None and client is not None:
            raise ValueError("address and client: give one or the other, got both")
        if address is not None and (not isinstance(address, str) or not address):
            raise ValueError("address: expected a Dask scheduler address such as "
                             f"'tcp://127.0.0.1:8786', got: {address!r}")
        if client is not None and not isinstance(client, distributed.Client):
            raise TypeError(f"client: expected a distributed.Client, got: "
                            f"{type(client).__name__}")
        if client is not None and client.asynchronous:
            raise ValueError("client: expected a synchronous distributed.Client, got one "
                             "made with asynchronous=True")
        if client is not None and client.status != "running":
            raise ValueError(f"client: expected a connected distributed.Client, got one "
                             f"whose status is {client.status!r}")
        source = "address="
        if address is None and client is None and os.environ.get(ADDRESS_ENV):
            address, source = os.environ[ADDRESS_ENV], ADDRESS_ENV

        self._lifecycle = lifecycle
        self._lock = threading.Lock()
        self._closed = False                                    # under _lock
        self._released = False                                  # under _lock
        # Our future -> its Dask future, until ours settles. E.g. {<Future pending>:
        # <Future: pending, key: allcores-square-3f2a...>}.
        self._in_flight: dict[Future, distributed.Future] = {}  # under _lock
        # (when read, count): the last worker-thread count read from the scheduler. Any
        # thread; a stale read only costs one more round trip.
        self._workers_seen: tuple[float, int] = (-float("inf"), 1)
        # Set once here, read-only afterwards. What we started we close: _cluster and
        # _owned_client are None or ours; _client is the one in use (maybe the caller's).
        self._cluster = None
        self._owned_client = None
        self._client = client
        self._fixed_workers: int | None = None  # our LocalCluster's size
        self._plugin_name: str | None = None
        self._fetcher = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix=FETCH_THREAD_NAME)
        try:
            if address is not None:
                try:
                    self._owned_client = distributed.Client(address, set_as_default=False)
                except Exception as error:
                    error.add_note(f"allcores: backend='dask' could not connect to the Dask "
                                   f"scheduler at {address!r} (from {source})")
                    raise
            elif client is None:
                self._cluster = _start_local_cluster(workers, allowed_failures=retries)
                # The client takes the cluster's credentials (cluster.security) with it.
                self._owned_client = distributed.Client(self._cluster, set_as_default=False)
                self._fixed_workers = workers
            if self._owned_client is not None:
                self._client = self._owned_client
            if initializer is not None:
                self._register_initializer(initializer, tuple(initargs))
        except BaseException:
            self._release()
            raise
        _live_backends.add(self)

    def _register_initializer(self, initializer, initargs: tuple) -> None:
        payload = cloudpickle.dumps((initializer, initargs), protocol=PICKLE_PROTOCOL)
        self._plugin_name = f"allcores-initializer-{uuid.uuid4().hex}"
        try:
            self._client.register_plugin(InitializerPlugin(payload), name=self._plugin_name)
        except Exception as exc:
            raise WorkerInitError("the pool's initializer raised on a dask worker") from exc

    # --- properties -----------------------------------------------------------------------

    @property
    def workers(self) -> int:
        """Dask worker threads: what the dispatcher sizes its window and chunks for."""
        if self._fixed_workers is not None:
            return self._fixed_workers
        seen_at, count = self._workers_seen
        now = time.monotonic()
        if now - seen_at > WORKERS_REFRESH_S:
            try:
                count = max(1, sum(self._client.nthreads().values()))
            except Exception:  # the client is closing: keep the last count
                pass
            self._workers_seen = (now, count)
        return count

    # --- called by callers ----------------------------------------------------------------

    def prepare(self, fn) -> _PreparedFunction:
        try:
            payload = cloudpickle.dumps(fn, protocol=PICKLE_PROTOCOL)
        except BaseException as exc:
            exc.add_note("allcores: failed pickling the function (in the caller)")
            raise
        fn_id = hashlib.blake2b(payload, digest_size=16).digest()
        return _PreparedFunction(fn_id, payload, _key_prefix(fn))

    def submit(self, prepared_fn: _PreparedFunction, chunk: Chunk, star: bool) -> Future:
        self._lifecycle.check(new_call=False)
        try:
            # Dask workers are other processes, maybe other machines: never this __main__.
            items_payload = dumps(chunk.items, main_by_value=True)
        except BaseException as exc:
            exc.add_note(f"allcores: failed pickling the items for items "
                         f"{chunk.first_item}..{chunk.stop_item - 1} (in the caller)")
            raise
        task = RunChunk(0, prepared_fn.fn_id, prepared_fn.payload, items_payload, star)
        future: ChunkFuture = ChunkFuture()
        future.sent_bytes = len(items_payload)  # for the result (the window's byte bound)
        with self._lock:
            if self._closed:
                raise PoolClosedError("the pool's Dask client is closed")
            if self._client.status in ("closing", "closed"):
                raise PoolClosedError("the pool's Dask client was closed")
            dask_future = self._client.submit(
                run_chunk, task, key=f"{prepared_fn.key_prefix}-{uuid.uuid4().hex}",
                pure=False,
            )
            self._in_flight[future] = dask_future
        first, stop = chunk.first_item, chunk.stop_item
        future.add_done_callback(self._on_settled)
        dask_future.add_done_callback(
            lambda done: self._on_task_done(future, done, first, stop))
        return future

    def _on_settled(self, future: Future) -> None:
        """Our future settled (any thread): forget it; if the caller cancelled it, drop
        the task too."""
        with self._lock:
            dask_future = self._in_flight.pop(future, None)
        if future.cancelled() and dask_future is not None and not dask_future.done():
            try:
                dask_future.cancel()
            except Exception:  # the client is closing: the task goes with it
                pass

    # --- the callback thread --------------------------------------------------------------

    def _on_task_done(self, future: Future, done, first_item: int, stop_item: int) -> None:
        """A chunk's task finished, erred or was cancelled (on Dask's callback thread):
        have a fetch thread settle our future."""
        if future.done():
            return  # cancelled by the caller, or failed by shutdown, meanwhile
        try:
            self._fetcher.submit(self._resolve, future, done, first_item, stop_item)
        except RuntimeError:  # the fetcher was shut down: so was the pool
            settle(future, error=PoolClosedError("the pool was terminated"))

    def _resolve(self, future: Future, done, first_item: int, stop_item: int) -> None:
        """Settle our future from its task's outcome (on a fetch thread).

        Every error handed on here has had its traceback objects replaced by their text
        (``_detached``): see there why."""
        if future.done():
            return  # cancelled by the caller, or failed by shutdown, meanwhile
        status = done.status
        if status == "finished":
            outcome = _fetch_results(done)
            if done.status == "error":  # its recomputation failed while we fetched
                outcome = _chunk_failure(done, first_item, stop_item)
        elif status == "error":
            outcome = _chunk_failure(done, first_item, stop_item)
        elif status == "cancelled":  # by our shutdown, the client closing, or another client
            outcome = PoolClosedError(
                "the chunk's Dask task was cancelled (the pool or its Dask client closed)")
        else:
            # "lost" (or "pending" again): the chunk finished, but its worker died before
            # we fetched the result, and Dask computes it again. Wait for that: the same
            # callback, once the task is done again.
            done.add_done_callback(
                lambda again: self._on_task_done(future, again, first_item, stop_item))
            return
        if isinstance(outcome, ChunkResult):
            settle(future, result=outcome._replace(sent_bytes=future.sent_bytes))
        else:
            settle(future, error=outcome)

    # --- lifecycle ------------------------------------------------------------------------

    def window(self) -> int:
        return CHUNKS_IN_FLIGHT_PER_WORKER * self.workers

    def shutdown(self, *, wait: bool) -> None:
        with self._lock:
            self._closed = True
            in_flight = dict(self._in_flight)
        if not wait:
            for future in in_flight:
                settle(future, error=PoolClosedError("the pool was terminated"))
        if self._on_dask_thread():
            # Waiting here could wait for ourselves (these threads settle the futures
            # and run the client): finish on a thread of our own.
            threading.Thread(target=self._stop, args=(in_flight, wait),
                             name="allcores-dask-shutdown", daemon=True).start()
        else:
            self._stop(in_flight, wait)

    def _stop(self, in_flight: dict, wait: bool) -> None:
        if wait:
            wait_for_futures(list(in_flight))
        else:
            tasks = [task for task in in_flight.values() if not task.done()]
            if tasks:
                try:
                    self._client.cancel(tasks)  # one message for them all
                except Exception:  # the client is closing: the tasks go with it
                    pass
        self._release(stop_workers_now=not wait)

    def _on_dask_thread(self) -> bool:
        if threading.current_thread().name.startswith(("Dask-Callback-Thread",
                                                       FETCH_THREAD_NAME)):
            return True
        loop = getattr(self._client, "loop", None)
        return loop is not None and distributed.utils.in_async_call(loop)

    def _release(self, *, stop_workers_now: bool = True) -> None:
        """Unregister our plugin; close the client, then the cluster, we started. Once.

        The client goes first: the scheduler then forgets its tasks, and no worker leaves
        while it holds a result the client wanted (Dask would warn of lost work). Every
        step tolerates a client or cluster already closed."""
        with self._lock:
            if self._released:
                return
            self._released = True
            _live_backends.discard(self)
        self._fetcher.shutdown(wait=False, cancel_futures=True)
        if self._plugin_name is not None and self._cluster is None:
            try:  # a cluster we did not start must not keep running our initializer
                self._client.unregister_worker_plugin(self._plugin_name)
            except Exception:
                pass
        if self._owned_client is not None:
            try:
                self._owned_client.close(timeout=CLOSE_TIMEOUT_S)
            except Exception:
                pass
        if self._cluster is not None:
            if stop_workers_now:
                try:
                    self._cluster.sync(_stop_worker_processes, self._cluster)
                except Exception:
                    pass
            try:
                self._cluster.close(timeout=CLOSE_TIMEOUT_S)
            except Exception:
                pass


async def _stop_worker_processes(cluster) -> None:
    """Stop a LocalCluster's worker processes at once (on the cluster's event loop):
    its own close() gives a busy worker 4 s to finish, too long after Ctrl-C."""
    nannies = list(cluster.workers.values())
    await asyncio.gather(*(nanny.close(timeout=TERMINATE_GRACE_S) for nanny in nannies),
                         return_exceptions=True)


def _fetch_results(done) -> ChunkResult | ChunkError:
    """The finished task's reply, as our future's outcome: the results stay pickled
    (the caller's thread unpickles them); a failure the worker reported, as its error."""
    try:
        reply: ChunkDone | ChunkFailed = done.result()
    except Exception as exc:  # the result could not be fetched (e.g. the client closed)
        return ChunkError(_detached(exc), None, "fetching the results", "from the dask cluster")
    if isinstance(reply, ChunkFailed):  # its exception travelled as plain bytes: no frames
        return ChunkError.from_reply(reply)
    # Back to the caller's perf_counter clock, through the wall clock both sides share.
    started = reply.started - (time.time() - time.perf_counter())
    return ChunkResult(None, reply.seconds, started, reply.worker,
                       payload=reply.results_payload)


def _chunk_failure(done, first_item: int, stop_item: int) -> BaseException:
    """The task erred: Dask gave up on it after worker deaths, or Dask itself failed to
    run it (run_chunk returns every failure of the chunk's own)."""
    try:
        error = done.exception()
    except Exception as exc:
        return ChunkError(_detached(exc), None, "fetching the error", "from the dask cluster")
    if isinstance(error, distributed.KilledWorker):
        attempts = error.allowed_failures + 1
        crashed = WorkerCrashedError(first_item, stop_item, None, attempts)
        crashed.add_note(
            f"allcores: Dask gave up on the chunk after {attempts} worker deaths (the "
            f"scheduler's allowed-failures is {error.allowed_failures}); the last worker "
            f"was {error.last_worker.address}")
        crashed.__cause__ = _detached(error)
        return crashed
    # Raised by Dask rather than by run_chunk: e.g. the task could not be unpickled on the
    # worker (allcores is not installed there).
    return ChunkError(_detached(error), None, "running the task", "on a dask worker")


def _detached(error: BaseException) -> BaseException:
    """``error`` with its traceback objects (and those of its causes and contexts)
    replaced by their text, chained as its cause (unless that already holds a worker's
    traceback text, as ``unpack_exception`` leaves it).

    A traceback object holds frames, and a frame holds its callers' frames: here the fetch
    thread's ``_resolve`` and the work item that holds the Dask future and the backend.
    An error the caller keeps (pytest, Jupyter and logging all do) would keep the Dask task
    and its data alive on the cluster. Unpickling a worker's error makes such frames too:
    Dask pickles tracebacks (with tblib), and unpickling one builds real frames."""
    text = None
    if not isinstance(error.__cause__, RemoteTraceback) and error.__traceback__ is not None:
        try:
            text = "".join(traceback.format_exception(error))
        except Exception:  # a __str__ that raises breaks the formatting too
            text = None
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        link = pending.pop()
        if id(link) in seen:
            continue
        seen.add(id(link))
        link.__traceback__ = None
        pending.extend(e for e in (link.__cause__, link.__context__) if e is not None)
    if text is not None:
        error.__cause__ = RemoteTraceback(text)
    return error


# atexit hooks run last-registered first, and distributed registered its own (which close
# every cluster and client) when this module imported it: this one runs before them. It
# closes our clients before our clusters, so that no worker leaves while the scheduler
# still holds a result for a client, which Dask would report as lost work. (Pools left
# open are also terminated by allcores.pool's exit hook, later: shutdown is idempotent.)
@atexit.register
def _shut_down_live_backends() -> None:
    for backend in list(_live_backends):
        backend.shutdown(wait=False)
