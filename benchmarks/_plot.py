"""``python -m benchmarks --plot FILE.png``: the printed ratio table as a chart.

The chart is drawn from the Markdown table the benchmark prints (columns
figure | aioconc | baseline | ratio | target | ok), not from the benchmark's
own row objects, so it keeps working whatever the benchmark measures and
however its modules are arranged: a row the table prints is a bar.

The chart reads one way: every bar is aioconc's *speed-up* over the baseline,
higher is better.  The table's ratio is aioconc ÷ baseline in the figure's
unit, so a rate (calls/s) is drawn as it is, while a time (start-up in ms, a
round trip in µs, seconds) is inverted, baseline ÷ aioconc, its target too: a
round trip of 1.5 times the raw one is a speed-up of 0.67.

matplotlib is the optional ``plot`` extra; :func:`require_matplotlib` fails
with the install command before a long benchmark run starts.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._table import TIMES, format_ratio

__all__ = ["INSTALL_HINT", "Bar", "draw_chart", "parse_table", "require_matplotlib", "save_chart"]

INSTALL_HINT = (
    "--plot needs matplotlib: pip install 'aioconc[plot]' "
    "(in a checkout: pip install -e '.[plot]'; or pip install matplotlib)"
)

# A measured value at the end of the baseline cell: "0.56 ms", "74,920/s", "76.4 µs".
_VALUE = re.compile(r"\s+[\d.,]+\s*(?:/s|ms|µs|s)$")
# aioconc's cell of a figure measured as a time: "0.56 ms", "76.4 µs", "0.0003 s".
_TIME_VALUE = re.compile(r"^[\d.,]+\s*(?:ms|µs|s)$")
_RATIO_TARGET = re.compile(r"^([≥≤])\s*([\d.]+)" + TIMES + "$")


@dataclass(frozen=True)
class Bar:
    """One row of the table that has a ratio: a bar of the chart.

    ``ratio`` and ``target`` are the table's (aioconc ÷ baseline in the figure's
    unit); ``speedup`` and ``speedup_target`` are what the chart draws.
    """

    label: str
    ratio: float
    target: float | None  # a ratio bound (target "≥ 2" times), None when the row has none
    met: bool | None  # the table's ok column: ✓ True, ✗ False, otherwise None
    time_ratio: bool = False  # a ratio of times (ms, µs, s): lower is better in the table

    @property
    def speedup(self) -> float:
        """aioconc's speed-up over the baseline: higher is better (a time ratio inverted)."""
        return 1.0 / self.ratio if self.time_ratio else self.ratio

    @property
    def speedup_target(self) -> float | None:
        """The target as a speed-up (a time ratio's bound inverted), None without one."""
        if self.target is None:
            return None
        return 1.0 / self.target if self.time_ratio else self.target


def parse_table(text: str) -> list[Bar]:
    """The bars of the benchmark's printed table; rows without a ratio are left out.

    A row whose aioconc value is a time (ms, µs, s) is a time ratio: its bar is
    drawn inverted (:attr:`Bar.speedup`).  A ratio of 0 (which no log scale can
    show) is left out too.

    Raises ``ValueError`` when ``text`` holds no table with a ratio column.
    """
    rows = [line for line in text.splitlines() if line.startswith("|")]
    if not rows:
        raise ValueError("no table in the benchmark's output")
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    if "ratio" not in header or "figure" not in header:
        raise ValueError(f"the table has no figure and ratio columns: {header}")
    col = {name: i for i, name in enumerate(header)}
    bars = []
    for line in rows[2:]:  # past the header and its |---| rule
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        ratio = cells[col["ratio"]]
        if not ratio.endswith(TIMES):
            continue  # "—": an absolute figure (CPU seconds) or a failed subject
        value = float(ratio[: -len(TIMES)].replace(",", ""))
        if value <= 0:
            continue
        baseline = _VALUE.sub("", cells[col["baseline"]]) if "baseline" in col else ""
        target_cell = cells[col["target"]] if "target" in col else ""
        target = _RATIO_TARGET.match(target_cell)
        ok = cells[col["ok"]] if "ok" in col else ""
        time_ratio = "aioconc" in col and _TIME_VALUE.match(cells[col["aioconc"]]) is not None
        bars.append(
            Bar(
                label=f"{cells[col['figure']]} vs {baseline}" if baseline else cells[col["figure"]],
                ratio=value,
                target=float(target.group(2)) if target else None,
                met={"✓": True, "✗": False}.get(ok[:1]),  # "✓ met", "✗ missed"
                time_ratio=time_ratio,
            )
        )
    return bars


def require_matplotlib() -> Any:
    """Import matplotlib (with the file-only Agg backend) and return ``pyplot``.

    Raises ``ImportError`` with the install command when matplotlib is missing.
    """
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    matplotlib.use("Agg")  # draw to a file; never open a window
    return importlib.import_module("matplotlib.pyplot")


def draw_chart(bars: Iterable[Bar], *, title: str = "aioconc bench") -> Any:
    """Draw ``bars`` as a horizontal bar chart of speed-ups (log scale); return the figure.

    Each bar is :attr:`Bar.speedup` (higher is better, a time ratio inverted),
    coloured by whether its target is met, with a black tick at its target.
    Raises ``ImportError`` (with the install command) without matplotlib and
    ``ValueError`` when there is nothing to draw.
    """
    shown = list(bars)
    if not shown:
        raise ValueError("the benchmark's table has no ratios to draw")
    plt = require_matplotlib()
    colours = {True: "tab:green", False: "tab:red", None: "tab:gray"}
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(shown) + 1.6))
    ax.barh(
        [b.label for b in shown], [b.speedup for b in shown], color=[colours[b.met] for b in shown]
    )
    for y, bar in enumerate(shown):
        text = format_ratio(bar.speedup)
        if bar.time_ratio:  # the table's figure, as it prints it
            text += f" (time {format_ratio(bar.ratio)})"
        # Right of the bar or of its target tick, whichever is further out.
        ax.annotate(
            text,
            (max(bar.speedup, bar.speedup_target or 0.0), y),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
        if bar.speedup_target is not None:
            ax.plot([bar.speedup_target] * 2, [y - 0.4, y + 0.4], color="black", linewidth=1.5)
    ax.axvline(1.0, color="grey", linewidth=0.6)  # as fast as the baseline
    ax.set_xscale("log")
    ends = [max(b.speedup, b.speedup_target or 0.0) for b in shown]
    ax.set_xlim(min(b.speedup for b in shown) / 2, max(ends) * 4)  # room for the labels
    ticker = importlib.import_module("matplotlib.ticker")
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}{TIMES}"))
    ax.set_xlabel(
        f"speed-up over the baseline, higher is better (log scale; 1{TIMES} = as fast)\n"
        "times (start-up, round trip) are inverted: baseline time \u00f7 aioconc time"
    )
    ax.set_title(
        f"{title}: green = target met, red = missed, grey = no target; black tick = target",
        fontsize=9,
    )
    ax.tick_params(axis="y", labelsize=7)
    ax.tick_params(axis="x", labelsize=8)
    ax.xaxis.label.set_size(8)
    ax.set_ylim(len(shown) - 0.5, -0.5)  # the table's first row on top, no blank rows
    fig.tight_layout()
    return fig


def save_chart(bars: Iterable[Bar], path: str, *, title: str = "aioconc bench") -> None:
    """Draw ``bars`` (see :func:`draw_chart`) and save the chart to ``path`` as a PNG.

    Raises ``ImportError`` (with the install command) without matplotlib and
    ``ValueError`` when there is nothing to draw.
    """
    fig = draw_chart(bars, title=title)
    fig.savefig(path, dpi=120)
    require_matplotlib().close(fig)
