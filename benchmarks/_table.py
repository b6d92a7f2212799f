"""The table of ``python -m benchmarks``: targets, rows and the Markdown table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["TIMES", "UNITS", "Row", "Target", "format_ratio", "format_table"]

TIMES = "\u00d7"  # the multiplication sign after a ratio


@dataclass(frozen=True)
class Target:
    """A bound on a row's ratio (or, when ``absolute``, on its aioconc value)."""

    op: Literal[">=", "<="]
    value: float
    absolute: bool = False

    def met(self, x: float) -> bool:
        """True when ``x`` satisfies the bound."""
        return x >= self.value if self.op == ">=" else x <= self.value

    def __str__(self) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        return f"{sign} {self.value:g} s" if self.absolute else f"{sign} {self.value:g}{TIMES}"


UNITS = {
    "start-up": "ms",
    "burst": "calls/s",
    "round trip": "µs",
    "awaited": "calls/s",
    "in coroutines": "calls/s",
}


@dataclass(frozen=True)
class Row:
    """One line of the table: an aioconc figure against one baseline."""

    mode: str
    figure: str
    unit: str
    ours: float
    baseline_label: str = ""
    baseline: float = math.nan
    target: Target | None = None
    note: str = ""
    failed: bool = False  # aioconc itself failed to produce the figure

    @property
    def name(self) -> str:
        """``"<mode> <figure>"``, e.g. ``"thread burst"``."""
        return f"{self.mode} {self.figure}"

    @property
    def ratio(self) -> float:
        """aioconc ÷ baseline, in the figure's unit (NaN without a baseline)."""
        if math.isnan(self.baseline) or self.baseline == 0:
            return math.nan
        return self.ours / self.baseline

    @property
    def met(self) -> bool | None:
        """Whether the target is met; None when there is no target or no number."""
        if self.target is None:
            return None
        x = self.ours if self.target.absolute else self.ratio
        return None if math.isnan(x) else self.target.met(x)


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "calls/s":
        return f"{value:,.0f}/s"
    if unit == "µs":
        return f"{value:.1f} µs"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:.4f} s"


def format_ratio(ratio: float) -> str:
    """A ratio as the table prints it, with the multiplication sign: two decimals
    (1.82), two significant digits below 0.1 (0.013, never a 0.00 the chart could
    not invert), ``"—"`` for NaN."""
    if math.isnan(ratio):
        return "—"
    return f"{ratio:.2f}{TIMES}" if ratio >= 0.1 else f"{ratio:.2g}{TIMES}"


def _verdict(row: Row) -> str:
    if row.target is None:
        return "—"  # SPEC.md sets no target for the row
    return {None: "n/a", True: "✓ met", False: "✗ missed"}[row.met]


def format_table(rows: Sequence[Row], notes: Sequence[str] = ()) -> str:
    """Render rows as a Markdown table (it pastes into the README as it is), then notes.

    Every row says its target (``—``: none) and whether it is met (``✓ met``,
    ``✗ missed``; ``n/a`` when the figure could not be measured).
    """
    header = ("figure", "aioconc", "baseline", "ratio", "target", "ok")
    lines = [header]
    for r in rows:
        baseline = f"{r.baseline_label} {_fmt(r.baseline, r.unit)}" if r.baseline_label else "—"
        target = str(r.target) if r.target is not None else "—"
        lines.append(
            (r.name, _fmt(r.ours, r.unit), baseline, format_ratio(r.ratio), target, _verdict(r)),
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def render(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [render(lines[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(render(line) for line in lines[1:])
    notes = [*(f"{r.name}: {r.note}" for r in rows if r.note), *notes]
    out.append("")
    out.append("ratio = aioconc ÷ baseline in the figure's unit (calls/s: higher is better;")
    out.append("ms and µs: lower is better). Best of k runs after a warm-up. target: SPEC.md §2")
    out.append("(— : none); the chart (--plot) draws every ratio as a speed-up, times inverted.")
    out.extend(dict.fromkeys(notes))
    return "\n".join(out)
