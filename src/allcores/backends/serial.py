"""The serial backend: chunks run in the caller, one at a time, when submitted."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from allcores._execute import ChunkError, ItemError, run_items
from allcores.backends.base import Backend, Chunk
from allcores.errors import PoolClosedError, WorkerInitError


class SerialBackend(Backend):
    name = "serial"
    runs_in_caller_process = True
    supports_timeout = False
    runs_chunks_in_submit = True

    def __init__(self, workers: int = 1, *, initializer=None, initargs=()):
        self.workers = 1  # by definition; asking for more is not an error, just moot
        self._closed = threading.Event()
        if initializer is not None:
            try:
                initializer(*initargs)
            except Exception as exc:
                raise WorkerInitError("the pool's initializer raised in the caller") from exc

    def submit(self, prepared_fn, chunk: Chunk, star: bool) -> Future:
        if self._closed.is_set():
            raise PoolClosedError("the pool is closed")
        future: Future = Future()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(run_items(prepared_fn, chunk.items, star))
        except ItemError as failure:
            future.set_exception(
                ChunkError(failure.error, failure.position, "running", "in the caller")
            )
        return future

    def window(self) -> int:
        return 1  # compute a chunk only when the caller asks for the next result

    def shutdown(self, *, wait: bool) -> None:
        self._closed.set()
