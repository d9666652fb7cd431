"""Framed messages over a stream socket: blocking in a worker, never blocking in the manager.

A worker and its pool's manager thread talk over one end each of a ``socket.socketpair()``.
Each message is a pickled ``allcores._messages`` object behind an 8-byte length, so the
manager can read whatever bytes have arrived and keep a partial message until the rest
comes: a worker stopped (SIGSTOP) or killed in the middle of a reply can never block
it, and neither can a worker that stops reading while a big chunk is being sent (the
manager keeps the unsent bytes and writes them when the socket has room). Only our own
message classes are unpickled here; their payloads (user objects) stay bytes.
"""

from __future__ import annotations

import collections
import io
import pickle
import socket
import struct
import threading

_LENGTH = struct.Struct("!Q")
# How much one recv() may take at once: a few pipe buffers, so that a stream of small
# replies costs one system call per round, not one per message.
RECV_BYTES = 1 << 18


def frame(message) -> bytes:
    """``message`` pickled, behind its length (written into one buffer: no copy)."""
    buffer = io.BytesIO()
    buffer.write(b"\0" * _LENGTH.size)
    pickle.dump(message, buffer, pickle.HIGHEST_PROTOCOL)
    data = buffer.getbuffer()
    _LENGTH.pack_into(data, 0, len(data) - _LENGTH.size)
    del data
    return buffer.getvalue()


# --- the worker's side: blocking ------------------------------------------------------------


def send(sock: socket.socket, message) -> None:
    sock.sendall(frame(message))


def receive(sock: socket.socket):
    """The next message; ``EOFError`` when the other side closed the socket."""
    (length,) = _LENGTH.unpack(_receive_exactly(sock, _LENGTH.size))
    return pickle.loads(_receive_exactly(sock, length))


def _receive_exactly(sock: socket.socket, count: int) -> bytes:
    buffer = bytearray(count)
    view = memoryview(buffer)
    got = 0
    while got < count:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise EOFError("the socket was closed")
        got += n
    return bytes(buffer)


# --- the manager's side: non-blocking -------------------------------------------------------


class Channel:
    """The manager's end of one worker's socket: non-blocking, with a send buffer and a
    receive buffer. The manager thread alone receives; sending (the send buffer) is
    guarded by a lock of its own, as a caller's thread may send to an idle worker."""

    def __init__(self, sock: socket.socket):
        sock.setblocking(False)
        self.sock = sock
        self._inbox = bytearray()
        # Frames not yet written, as views: the unsent rest of the first one is a slice,
        # never a copy (a chunk of a few MB leaves in many writes). Under _send_lock.
        self._outbox: collections.deque[memoryview] = collections.deque()
        self._send_lock = threading.Lock()
        # Bytes were left unsent when the last send or flush returned: a state that a
        # thread may read without the lock (never the middle of another's send).
        self.wants_to_write = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message) -> None:
        """Queue ``message`` and write what the socket takes now; call :meth:`flush` when
        the socket is writable again. ``OSError`` if the worker's end is gone."""
        data = memoryview(frame(message))
        with self._send_lock:
            self._outbox.append(data)
            self._flush()

    def flush(self) -> None:
        with self._send_lock:
            self._flush()

    def _flush(self) -> None:
        outbox = self._outbox
        try:
            while outbox:
                try:
                    sent = self.sock.send(outbox[0])
                except (BlockingIOError, InterruptedError):
                    return
                if sent == len(outbox[0]):
                    outbox.popleft()
                else:
                    outbox[0] = outbox[0][sent:]
        finally:
            self.wants_to_write = bool(outbox)

    def receive(self) -> tuple[list, bool]:
        """The complete messages that arrived, and whether the worker's end is closed."""
        closed = False
        while True:
            try:
                data = self.sock.recv(RECV_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ECONNRESET: the worker died with unread data
                closed = True
                break
            if not data:
                closed = True
                break
            self._inbox += data
            if len(data) < RECV_BYTES:
                break
        return self._take_messages(), closed

    def _take_messages(self) -> list:
        messages = []
        start = 0
        inbox = self._inbox
        with memoryview(inbox) as view:  # released before the buffer is resized
            while len(inbox) - start >= _LENGTH.size:
                (length,) = _LENGTH.unpack_from(inbox, start)
                end = start + _LENGTH.size + length
                if len(inbox) < end:
                    break
                messages.append(pickle.loads(view[start + _LENGTH.size:end]))
                start = end
        if start:
            del inbox[:start]
        return messages

    def close(self) -> None:
        self.sock.close()
