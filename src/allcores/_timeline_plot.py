"""Drawing an :class:`allcores.timeline.Insights` as a PNG timeline with matplotlib.

A ``matplotlib.figure.Figure`` with the Agg canvas, never pyplot: no display, no global
figure state, safe from any thread and in programs that use pyplot themselves.

What the picture shows, from top to bottom: the caller's lane, with a tick where each
chunk's results arrived; then one lane per worker (the caller first where it ran chunks
itself, then the workers in natural order of their names: ``lane_order``), with a bar
per chunk from its start to its end. A chunk's colour says when it was handed over
(the colour bar: first to last), and its tick on the caller's lane has the same colour.
"""

from __future__ import annotations

import os

from allcores import _palette

# Above this many chunks, bars get no edge: edges would paint the whole lane black.
EDGED_CHUNKS_MAX = 400
CALLER = "caller"
RECEIVED_LABEL = "caller: results received"


def lane_order(lanes) -> list[str]:
    """The workers' lanes from top to bottom: the caller first (where it ran chunks
    itself), then the workers by a natural sort of their names (``thread_2`` before
    ``thread_10``), so that the same pool draws its lanes in the same order every time."""
    return sorted(lanes, key=lambda lane: (lane != CALLER, _palette.natural_key(lane)))


def chunk_sizes_text(smallest: int, median: int, largest: int) -> str:
    """``300 items per chunk``, ``1 item per chunk``, or ``1 to 40 items per chunk
    (median 12)``."""
    if smallest == largest:
        return f"{smallest:,} {_plural(smallest, 'item')} per chunk"
    return f"{smallest:,} to {largest:,} items per chunk (median {median:,})"


def subtitle(insights) -> str:
    """The line under a timeline's title: chunks, their sizes, the workers, wall time and
    utilisation, and how many workers ran nothing."""
    idle = insights.workers - len([lane for lane in insights.lanes() if lane != CALLER])
    idle_text = (f" ({idle} {_plural(idle, 'worker')} ran no chunk)" if idle > 0 else "")
    return (f"{insights.chunks:,} {_plural(insights.chunks, 'chunk')}, "
            f"{chunk_sizes_text(*insights.chunk_sizes())}, on {insights.workers} "
            f"{insights.backend} {_plural(insights.workers, 'worker')}{idle_text}; "
            f"wall {insights.wall_s:.3g} s, utilisation {insights.utilisation:.0%}")


def draw_timeline(insights, path: str, *, title: str | None = None) -> str:
    """Write the timeline of ``insights`` to ``path`` as a PNG; return ``path``."""
    figure = timeline_figure(insights, title=title)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    figure.savefig(path, format="png", dpi=110)
    return path


def timeline_figure(insights, *, title: str | None = None):
    """The timeline as a ``matplotlib.figure.Figure`` (not saved)."""
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
    except ImportError as error:
        raise ImportError(
            "Insights.plot needs matplotlib: pip install matplotlib "
            "(from a checkout: pip install '.[plot]')") from error
    if not insights.records:
        raise ValueError("no chunks were recorded: nothing to plot")

    lanes = lane_order(insights.lanes())
    received_row = len(lanes)   # on top; the workers' lanes below, lanes[0] first
    row_of = {lane: len(lanes) - 1 - i for i, lane in enumerate(lanes)}
    figure = Figure(figsize=(11, 2.2 + 0.45 * (len(lanes) + 1)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    edge = "black" if len(insights.records) <= EDGED_CHUNKS_MAX else "none"
    t0 = insights.start

    # Colour = the order chunks were handed over, so that a bar and its tick on the
    # caller's lane match, and a late chunk stands out from an early one.
    cmap = colormaps[_palette.SEQUENTIAL]
    low, high = _palette.SEQUENTIAL_RANGE
    order = sorted(range(len(insights.records)),
                   key=lambda i: (insights.records[i].submitted, i))
    rank = {index: position for position, index in enumerate(order)}
    last = max(1, len(order) - 1)

    def colour(index: int):
        return cmap(low + (high - low) * rank[index] / last)

    by_lane: dict[str, list] = {lane: [] for lane in lanes}
    for index, record in enumerate(insights.records):
        by_lane[record.worker].append((index, record))
    for lane, entries in by_lane.items():
        axes.broken_barh([(r.started - t0, r.seconds) for _, r in entries],
                         (row_of[lane] - 0.4, 0.8),
                         facecolors=[colour(i) for i, _ in entries],
                         edgecolors=edge, linewidth=0.3)
    axes.vlines([r.received - t0 for r in insights.records],
                received_row - 0.35, received_row + 0.35,
                colors=[colour(i) for i in range(len(insights.records))], linewidth=1.2)

    # Legend samples in grey: the colour itself is the colour bar's to explain.
    handles = [Patch(facecolor=_palette.GREY, edgecolor="black", linewidth=0.3,
                     label="a chunk, from its start to its end on that worker"),
               Line2D([], [], color=_palette.GREY, linewidth=1.2, linestyle="none",
                      marker="|", markersize=10,
                      label="its results received by the caller (same colour)")]
    # Runs lost with their worker: hatched, on the lane of the worker that died.
    if insights.lost:
        lost_style = dict(facecolor="none", edgecolor=_palette.LOST, hatch="xxx",
                          linewidth=0.8)
        for lane in lanes:
            lost = [(r.started - t0, r.seconds) for r in insights.lost if r.worker == lane]
            if lost:
                axes.broken_barh(lost, (row_of[lane] - 0.4, 0.8), **lost_style)
        handles.append(Patch(label="lost with its worker (run again)", **lost_style))
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles),
                  fontsize=8, frameon=False)
    if len(order) > 1:
        bar = figure.colorbar(ScalarMappable(Normalize(1, len(order)),
                                             _truncated(cmap, low, high)),
                              ax=axes, pad=0.01, aspect=15)
        bar.set_label("chunk colour: order\nhanded over", fontsize=8)
        bar.set_ticks([1, len(order)], labels=["first", "last"])
        bar.ax.tick_params(labelsize=8)

    axes.set_yticks([*(row_of[lane] for lane in lanes), received_row],
                    [*(_lane_label(lane) for lane in lanes), RECEIVED_LABEL])
    axes.set_ylim(-0.7, received_row + 0.7)
    axes.set_xlim(0, max(insights.wall_s, 1e-6) * 1.01)
    axes.set_xlabel("seconds since the first chunk was handed over")
    axes.grid(axis="x", alpha=0.3)
    axes.set_axisbelow(True)
    text = subtitle(insights)
    axes.set_title(text if title is None else f"{title}\n{text}", fontsize=10)
    return figure


def _truncated(cmap, low: float, high: float):
    from matplotlib.colors import ListedColormap

    steps = 256
    return ListedColormap([cmap(low + (high - low) * i / (steps - 1)) for i in range(steps)])


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


def _lane_label(lane: str) -> str:
    """Lane labels short enough for the axis: a Dask address keeps host and port."""
    if lane == CALLER:
        return "caller (ran chunks itself)"
    return lane if len(lane) <= 28 else "..." + lane[-25:]
