"""The serial backend: chunks run in the caller, one at a time, when submitted."""

from __future__ import annotations

from concurrent.futures import Future

from allcores._execute import ChunkError, ItemError, run_items
from allcores._futures import ChunkFuture
from allcores._lifecycle import Lifecycle
from allcores.backends.base import Backend, Chunk
from allcores.errors import WorkerInitError


class SerialBackend(Backend):
    name = "serial"
    runs_in_caller_process = True
    supports_timeout = False
    runs_chunks_in_submit = True

    def __init__(self, workers: int = 1, *, lifecycle: Lifecycle, initializer=None,
                 initargs=()):
        self.workers = 1  # by definition; asking for more is not an error, just moot
        self._lifecycle = lifecycle
        if initializer is not None:
            try:
                initializer(*initargs)
            except Exception as exc:
                raise WorkerInitError("the pool's initializer raised in the caller") from exc

    def submit(self, prepared_fn, chunk: Chunk, star: bool) -> Future:
        self._lifecycle.check(new_call=False)
        future: ChunkFuture = ChunkFuture()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(run_items(prepared_fn, chunk.items, star))
        except ItemError as failure:
            future.set_exception(ChunkError.from_item(failure, "in the caller"))
        return future

    def window(self) -> int:
        return 1  # compute a chunk only when the caller asks for the next result

    def shutdown(self, *, wait: bool) -> None:
        pass  # nothing runs in the background
