"""``python -m benchmarks --plot FILE.png``: the printed ratio table as a chart.

The chart is drawn from the Markdown table the benchmark prints (columns
figure | aioconc | baseline | ratio | target | ok), not from the benchmark's
own row objects, so it keeps working whatever the benchmark measures and
however its modules are arranged: a row the table prints is a bar.

matplotlib is the optional ``plot`` extra; :func:`require_matplotlib` fails
with the install command before a long benchmark run starts.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["INSTALL_HINT", "Bar", "parse_table", "require_matplotlib", "save_chart"]

INSTALL_HINT = "--plot needs matplotlib: pip install 'aioconc[plot]' (or pip install matplotlib)"

_TIMES = "\u00d7"  # the multiplication sign the table prints after a ratio
# A measured value at the end of the baseline cell: "0.56 ms", "74,920/s", "76.4 µs".
_VALUE = re.compile(r"\s+[\d.,]+\s*(?:/s|ms|µs|s)$")
_RATIO_TARGET = re.compile(r"^([≥≤])\s*([\d.]+)" + _TIMES + "$")


@dataclass(frozen=True)
class Bar:
    """One row of the table that has a ratio: a bar of the chart."""

    label: str
    ratio: float
    target: float | None  # a ratio bound (target "≥ 2" times), None when the row has none
    met: bool | None  # the table's ok column: ✓ True, ✗ False, blank None


def parse_table(text: str) -> list[Bar]:
    """The bars of the benchmark's printed table; rows without a ratio are left out.

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
        if not ratio.endswith(_TIMES):
            continue  # "—": an absolute figure (CPU seconds) or a failed subject
        baseline = _VALUE.sub("", cells[col["baseline"]]) if "baseline" in col else ""
        target_cell = cells[col["target"]] if "target" in col else ""
        target = _RATIO_TARGET.match(target_cell)
        ok = cells[col["ok"]] if "ok" in col else ""
        bars.append(
            Bar(
                label=f"{cells[col['figure']]} vs {baseline}" if baseline else cells[col["figure"]],
                ratio=float(ratio[: -len(_TIMES)].replace(",", "")),
                target=float(target.group(2)) if target else None,
                met={"✓": True, "✗": False}.get(ok),
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


def save_chart(bars: Iterable[Bar], path: str, *, title: str = "aioconc bench") -> None:
    """Draw ``bars`` as a horizontal bar chart (log scale) and save it to ``path``.

    Raises ``ImportError`` (with the install command) without matplotlib and
    ``ValueError`` when there is nothing to draw.
    """
    shown = list(bars)
    if not shown:
        raise ValueError("the benchmark's table has no ratios to draw")
    plt = require_matplotlib()
    colours = {True: "tab:green", False: "tab:red", None: "tab:gray"}
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(shown) + 1.4))
    ax.barh(
        [b.label for b in shown], [b.ratio for b in shown], color=[colours[b.met] for b in shown]
    )
    for y, bar in enumerate(shown):
        ax.annotate(
            f"{bar.ratio:.2f}{_TIMES}",
            (bar.ratio, y),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
        if bar.target is not None:
            ax.plot([bar.target] * 2, [y - 0.4, y + 0.4], color="black", linewidth=1.5)
    ax.axvline(1.0, color="grey", linewidth=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("aioconc ÷ baseline (log scale; calls/s: higher is better, ms and µs: lower)")
    ax.set_title(
        f"{title}: green = target met, red = missed, grey = no target; black tick = target",
        fontsize=9,
    )
    ax.tick_params(axis="y", labelsize=7)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
