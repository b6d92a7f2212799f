"""``python -m benchmarks --plot``: the printed table becomes a chart (benchmarks/_plot.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks import __main__ as cli
from benchmarks import _plot

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
