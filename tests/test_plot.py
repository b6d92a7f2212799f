"""``python -m benchmarks --plot``: the printed table becomes a chart (benchmarks/_plot.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks import __main__ as cli
from benchmarks import _plot
from benchmarks._table import Row, Target, format_table

# The table as the benchmark prints it; "@" stands for the multiplication sign.
TABLE = """\
aioconc bench: n=1000, best of 1, concurry n=300
| figure                   | aioconc   | baseline                      | ratio     | target   | ok |
|--------------------------|-----------|-------------------------------|-----------|----------|----|
| sync burst               | 465,993/s | concurry 125,246/s            | 3.72@     | ≥ 3@     | ✓  |
| thread round trip        | 76.5 µs   | ThreadPoolExecutor(1) 76.4 µs | 1.00@     | ≤ 1.5@   | ✗  |
| thread start-up          | 1.30 ms   | ThreadPoolExecutor(1) 0.56 ms | 2.30@     |          |    |
| asyncio CPU awaiting 1 s | 0.0003 s  | —                             | —         | ≤ 0.02 s | ✓  |
| process burst            | 1,234/s   | multiprocessing.Pipe 1,100/s  | 1,234.50@ |          |    |

ratio = aioconc / baseline in the figure's unit
""".replace("@", "\u00d7")


def test_rows_with_a_ratio_become_bars_with_their_target_and_verdict() -> None:
    bars = _plot.parse_table(TABLE)
    assert [b.label for b in bars] == [
        "sync burst vs concurry",
        "thread round trip vs ThreadPoolExecutor(1)",
        "thread start-up vs ThreadPoolExecutor(1)",
        "process burst vs multiprocessing.Pipe",
    ]
    assert [b.ratio for b in bars] == [3.72, 1.0, 2.3, 1234.5]
    assert [b.target for b in bars] == [3.0, 1.5, None, None]
    assert [b.met for b in bars] == [True, False, None, None]


def test_a_time_ratio_becomes_a_speed_up_so_that_higher_is_better() -> None:
    bars = _plot.parse_table(TABLE)
    burst, round_trip, start_up, _ = bars
    assert not burst.time_ratio  # calls/s: drawn as printed
    assert (burst.speedup, burst.speedup_target) == (3.72, 3.0)
    assert round_trip.time_ratio and start_up.time_ratio  # µs and ms: inverted
    assert round_trip.speedup_target == pytest.approx(1 / 1.5)  # at most 1.5 times the time
    assert start_up.speedup == pytest.approx(1 / 2.3)  # 2.3 times as long: 0.43 as fast
    assert start_up.speedup_target is None


def test_a_time_ratio_is_drawn_inverted_so_that_higher_is_better() -> None:
    pytest.importorskip("matplotlib")
    fig = _plot.draw_chart(_plot.parse_table(TABLE))
    ax = fig.axes[0]
    widths = [patch.get_width() for patch in ax.patches]
    assert widths == pytest.approx([3.72, 1.0, 1 / 2.3, 1234.5])
    ticks = [line.get_xdata()[0] for line in ax.lines[:2]]  # one per bar with a target
    assert ticks == pytest.approx([3.0, 1 / 1.5])
    assert "higher is better" in ax.get_xlabel()
    assert "inverted" in ax.get_xlabel()
    _plot.require_matplotlib().close(fig)


def test_the_table_says_each_rows_target_and_whether_it_is_met() -> None:
    rows = [
        Row("thread", "burst", "calls/s", 300.0, "TPE(1)", 100.0, Target(">=", 3.0)),
        Row("process", "round trip", "µs", 90.0, "Pipe", 50.0, Target("<=", 1.5)),
        Row("process", "start-up", "ms", 10.0, "Pipe", 800.0),
    ]
    table = format_table(rows)
    cells = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("| thread") or line.startswith("| process")
    ]
    assert [(c[3], c[4], c[5]) for c in cells] == [
        ("3.00\u00d7", "≥ 3\u00d7", "✓ met"),
        ("1.80\u00d7", "≤ 1.5\u00d7", "✗ missed"),
        ("0.013\u00d7", "—", "—"),  # no target; a small ratio keeps two digits
    ]
    bars = _plot.parse_table(table)
    assert [(b.met, b.time_ratio) for b in bars] == [(True, False), (False, True), (None, True)]
    assert bars[2].speedup == pytest.approx(1 / 0.013)


def test_output_without_a_table_is_refused() -> None:
    with pytest.raises(ValueError, match="no table"):
        _plot.parse_table("aioconc bench: nothing measured\n")
    with pytest.raises(ValueError, match="no ratios"):
        _plot.save_chart([], "unused.png")


def test_the_chart_is_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "bench.png"
    _plot.save_chart(_plot.parse_table(TABLE), str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_bench_fails_at_once_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    code = cli.main(["--quick", "--plot", str(tmp_path / "x.png")])
    assert code == 2
    err = capsys.readouterr()
    assert "pip install 'aioconc[plot]'" in err.err
    assert "aioconc bench:" not in err.out  # refused before measuring anything
    assert not (tmp_path / "x.png").exists()
