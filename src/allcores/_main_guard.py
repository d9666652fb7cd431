"""Worker processes and the caller's ``__main__``: the missing guard, and mains without a file.

Under the ``spawn`` and ``forkserver`` start methods, multiprocessing starts each worker
by importing the caller's main script (as ``__mp_main__``) so that functions pickled by
reference to it can be found. A script that starts work at its top level, without
``if __name__ == "__main__":``, then starts that work again in every worker: the most
common newcomer mistake with process pools. It used to run the whole script once more per
worker, or fill the screen with tracebacks. Now a worker that, while importing the main
script, reaches anything that starts allcores work exits at once with
``MAIN_GUARD_EXIT_CODE``, and the pool fails once, in the caller, with
:func:`missing_guard_error`: a short message that names the guard and shows the fix.

A main module without a file to import (``python -c``, a REPL, a notebook) is not
imported by workers at all; one read from standard input (``python - < script.py``)
gives multiprocessing the path ``<stdin>``, which every worker would fail to open
(CPython does not check): :func:`skip_missing_main_file` leaves it out for our workers.
Functions of such a ``__main__`` travel by value (cloudpickle), and so do instances of
its classes (``allcores._execute.dumps``).
"""

from __future__ import annotations

import multiprocessing
import os
import threading

from allcores.backends import WORKER_PROCESS_NAME
from allcores.errors import WorkerInitError

# A worker that exits with this status before it is ready found the missing guard.
MAIN_GUARD_EXIT_CODE = 93

GUARD_MESSAGE = """\
the worker processes ran your script's top-level code again, and it started allcores \
work from there. With the "spawn" and "forkserver" start methods every worker imports \
your main script; code that starts work must run only when the script is run, so put \
it under the guard:

    if __name__ == "__main__":
        main()   # or the code that calls allcores
"""


def missing_guard_error() -> WorkerInitError:
    return WorkerInitError(GUARD_MESSAGE)


def refuse_work_while_main_is_imported() -> None:
    """Call where allcores work starts. In a worker process that is importing the
    caller's main script (multiprocessing's ``_inheriting`` phase): exit at once, and
    quietly, if it is one of ours (the pool reports it); raise if it is anyone else's."""
    process = multiprocessing.current_process()
    if not getattr(process, "_inheriting", False):
        return
    if process.name == WORKER_PROCESS_NAME:
        os._exit(MAIN_GUARD_EXIT_CODE)
    raise RuntimeError("allcores: " + GUARD_MESSAGE)


_patch_lock = threading.Lock()


def skip_missing_main_file() -> None:
    """Make multiprocessing leave out a main script path that is not a file (``<stdin>``)
    from what it sends to our workers. Idempotent; other processes are untouched."""
    from multiprocessing import spawn

    with _patch_lock:
        original = spawn.get_preparation_data
        if getattr(original, "allcores_skips_missing_main", False):
            return

        def get_preparation_data(name):
            data = original(name)
            path = data.get("init_main_from_path")
            if name == WORKER_PROCESS_NAME and path is not None and not os.path.isfile(path):
                del data["init_main_from_path"]
            return data

        get_preparation_data.allcores_skips_missing_main = True
        spawn.get_preparation_data = get_preparation_data
