"""The engine's inner loop: call a function on each item of a chunk, in C.

``list.extend(map(fn, items))`` is the fastest loop Python offers, but a
``StopIteration`` raised by ``fn`` ends it as if the items had run out: the chunk comes
back short and every later result shifts onto the wrong item. This loop is as fast
(one C-level call and append per item) and stops at the first exception of any kind,
saying which item raised it.
"""


def call_each(fn, items, list out, bint star):
    """Append ``fn(item)`` (``fn(*item)`` when ``star``) to ``out`` for each item.

    Returns ``(-1, None)`` when every call returned, else ``(position, exception)``:
    the index in ``items`` of the first call that raised, and what it raised
    (``BaseException`` included: the caller decides what to let through). ``out`` then
    holds the results of the items before it.
    """
    cdef Py_ssize_t position = 0
    for item in items:
        try:
            if star:
                out.append(fn(*item))
            else:
                out.append(fn(item))
        except BaseException as exc:
            return position, exc
        position += 1
    return -1, None
