"""The colours of every plot allcores draws: one colour-blind-safe palette, one colour
per tool, the same in every picture.

The palette is Paul Tol's "muted" scheme (https://personal.sron.nl/~pault/): nine
colours that stay distinct under the common forms of colour blindness, plus black for
the serial baseline and a neutral grey. A tool keeps its colour from plot to plot, so a
reader who learnt "teal is joblib" on one picture can trust it on the next. Variants of
one tool (pure Python vs native, 1 thread vs N) share its colour and differ by hatching
or marker, never by a colour that belongs to another tool.

Plain strings only: importing this module needs no matplotlib.
"""

from __future__ import annotations

import re

# Paul Tol's muted scheme, in his order.
TOL_MUTED = {
    "indigo": "#332288",
    "cyan": "#88CCEE",
    "teal": "#44AA99",
    "green": "#117733",
    "olive": "#999933",
    "sand": "#DDCC77",
    "rose": "#CC6677",
    "wine": "#882255",
    "purple": "#AA4499",
}
BLACK = "#000000"
GREY = "#777777"

# Tool -> colour, for every plot. multiprocessing's two recipes are one library: rose
# and wine, close in hue and far apart in lightness.
TOOL_COLOURS = {
    "serial": BLACK,
    "mp-imap": TOL_MUTED["rose"],
    "mp-map": TOL_MUTED["wine"],
    "futures": TOL_MUTED["olive"],
    "joblib": TOL_MUTED["teal"],
    "allcores-auto": TOL_MUTED["purple"],
    "allcores-process": TOL_MUTED["indigo"],
    "allcores-thread": TOL_MUTED["cyan"],
    "numba": TOL_MUTED["green"],
    "primesieve": TOL_MUTED["sand"],
    "c": GREY,
}

# A reference line (ideal scaling, "as fast as serial") and runs lost with a worker.
REFERENCE = GREY
LOST = TOL_MUTED["rose"]
# Continuous values (the order in which a timeline's chunks were handed over): viridis
# is perceptually uniform and colour-blind safe; its last tenth (pale yellow) is cut so
# that thin marks stay visible on white.
SEQUENTIAL = "viridis"
SEQUENTIAL_RANGE = (0.0, 0.9)
# Images (the mandelbrot set's escape counts): magma, perceptually uniform as well.
IMAGE = "magma"


def tool_colour(tool: str) -> str:
    """The colour of ``tool`` (a key of TOOL_COLOURS); grey for a tool it does not know."""
    return TOOL_COLOURS.get(tool, GREY)


def tint(colour: str, share: float = 0.45) -> str:
    """``colour`` mixed with white (``share`` of the colour): the paler shade that marks
    a variant of a tool (hatched on top, so it never passes for another tool's colour)."""
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(255 - (255 - c) * share):02X}" for c in (red, green, blue))


def natural_key(text: str) -> list:
    """Sort key that orders the numbers inside names by value: ``thread_2`` before
    ``thread_10``, ``process 999`` before ``process 1000``."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", text) if part]
