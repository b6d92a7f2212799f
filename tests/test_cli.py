"""The command line and the README run end to end.

``python -m aioconc demo`` and ``python -m benchmarks --quick`` run in a
subprocess (``python -m aioconc bench`` only says where the benchmarks went);
every ``python`` block of the README and of the docs (with its subfolders) runs
too (but ``docs/ray.md``'s, which need a Ray cluster), and ``.ci/run`` runs the
README's test command.  Code of other libraries shown for comparison (concurry,
Ray, pynenc) is fenced as ``py``, not ``python``, and is not run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE_MODES = ("sync", "asyncio", "thread")


def run_cli(
    *args: str, timeout: float, module: str = "aioconc"
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m MODULE ARGS`` from the project root and capture its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1"}
    env.pop("AIOCONC_FORCE_SYNC", None)  # the demo must show the real modes
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def python_blocks() -> list[tuple[str, str]]:
    """``(where, code)`` of every ```python block of the README and the docs, in order."""
    docs = sorted(page for page in (ROOT / "docs").rglob("*.md") if page.name != "ray.md")
    pages = [ROOT / "README.md", *docs]
    blocks = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        found = re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
        blocks += [(f"{page.relative_to(ROOT)}#{i}", code) for i, code in enumerate(found)]
    return blocks


@pytest.mark.parametrize(("where", "code"), python_blocks(), ids=[w for w, _ in python_blocks()])
def test_documented_example_runs(where: str, code: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Outputs promised in comments (`print(x)  # value`) are what the code prints.
    promised = re.findall(r"print\(.*\)\s+# (.+)$", code, re.MULTILINE)
    assert proc.stdout.splitlines() == [p.strip() for p in promised]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r"^pip install -e '\.\[test\]' && (.+)$", readme, re.MULTILINE)
    assert command, "the README's quick start has no test command"
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command.group(1).strip() in (line.strip() for line in ci_lines)


def test_help_lists_the_demo_and_where_the_benchmarks_are() -> None:
    proc = run_cli("--help", timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout
    assert "bench" in proc.stdout
    assert "python -m benchmarks" in " ".join(proc.stdout.split())  # however help wraps


@pytest.mark.parametrize("args", [("bench",), ("bench", "--quick", "--plot", "x.png")])
def test_bench_says_where_the_benchmarks_moved(args: tuple[str, ...]) -> None:
    proc = run_cli(*args, timeout=30)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "python -m benchmarks" in proc.stderr
    assert "nox -s bench" in proc.stderr
    assert "checkout" in proc.stderr


def test_demo_shows_all_six_parts() -> None:
    proc = run_cli("demo", timeout=240)  # a first local Ray start takes a while
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "\x1b[" not in out, "the demo's output must be plain text (NO_COLOR, not a TTY)"
    assert "\r" not in out
    for part in range(1, 7):
        assert f"[{part}/6]" in out, f"part {part} is missing:\n{out}"

    # 1. every mode, and where it ran.
    for mode in CORE_MODES:
        row = re.search(rf"^{mode}\s+\|\s+(\d+)\s+\|\s+(.+?)\s+\|\s+42\s+\|", out, re.MULTILINE)
        assert row, f"no row for {mode!r} in:\n{out}"
    # sync runs in the caller's thread; thread mode on a thread of its own.
    sync_thread = re.search(r"^sync\s+\|\s+\d+\s+\|\s+(.+?)\s+\|", out, re.MULTILINE)
    thread_thread = re.search(r"^thread\s+\|\s+\d+\s+\|\s+(.+?)\s+\|", out, re.MULTILINE)
    assert sync_thread, out
    assert sync_thread.group(1) == "MainThread"
    assert thread_thread, out
    assert thread_thread.group(1) != "MainThread"
    # process and ray either ran (in another process) or were skipped with a note.
    caller_pid = re.search(r"caller: pid (\d+)", out)
    assert caller_pid, out
    caller = int(caller_pid.group(1))
    for mode in ("process", "ray"):
        row = re.search(rf"^{mode}\s+\|\s+(\d+)\s+\|", out, re.MULTILINE)
        assert row or f"{mode}: skipped" in out, out
        if row:
            assert int(row.group(1)) != caller, f"{mode} ran in the caller's process"
    if "process: skipped" in out:
        return  # the parts below run on process workers

    # 2. a pool map with a progress bar that reaches the end, results in order.
    assert "300/300 items" in out, out
    assert "300 results in" in out and "in order: True" in out, out
    per_worker = re.search(r"items per worker: (.+)$", out, re.MULTILINE)
    assert per_worker and len(re.findall(r"pid \d+: \d+", per_worker.group(1))) == 2, out

    # 3. the rate-limited batch never goes over 20 calls in a second.
    counts = re.search(r"calls started in each second: \[([\d, ]+)\]", out)
    assert counts, out
    per_second = [int(n) for n in counts.group(1).split(",")]
    assert sum(per_second) == 60, per_second
    assert max(per_second) <= 20, per_second
    assert len(per_second) >= 3, per_second  # 60 calls at 20/s need three seconds

    # 4. the killed worker's calls fail at once; the pool replaces it.
    crash = re.search(r"(\d+) calls failed with WorkerCrashedError, the last (\d+) ms", out)
    assert crash, out
    assert int(crash.group(1)) > 0
    assert int(crash.group(2)) < 1000, "a crash must fail its calls within a second"
    assert "killed by SIGKILL" in out
    replaced = re.search(r"the pool replaced it: .* new \[(\d+)\], replaced=1", out)
    assert replaced, out

    # 5. await inside asyncio.run.
    assert "await w.awhere(21)  [asyncio] -> 42" in out
    assert "[thread] -> [0, 2, 4]" in out

    # 6. the task records: a success, a crash, a retried call, a cancelled one.
    records = out[out.index("[6/6]") :]
    for status in ("SUCCESS", "FAILURE", "CANCELLED"):
        assert re.search(rf"\| {status}\s+\|", records), records
    assert re.search(r"\| SUCCESS\s+\| 2\s+\|", records), "the retried call shows 2 attempts"
    assert '"status":"SUCCESS"' in records


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_bench_quick_measures_every_core_mode(tmp_path: Path) -> None:
    chart = tmp_path / "bench.png"
    plot = ("--plot", str(chart)) if importlib.util.find_spec("matplotlib") else ()
    proc = run_cli("--quick", *plot, timeout=220, module="benchmarks")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for mode in CORE_MODES:
        for figure in ("start-up", "burst", "round trip"):
            row = re.search(rf"^\| {mode} {figure}\s+\| ([^|]+)\|", out, re.MULTILINE)
            assert row, f"no {mode} {figure} row in:\n{out}"
            assert "n/a" not in row.group(1), row.group(0)
    for name in (
        "asyncio awaited",
        "thread awaited",
        "asyncio CPU",
        "thread CPU",
        "asyncio in coroutines",
        "thread in coroutines",
        "process in coroutines",
    ):
        assert re.search(rf"^\| {name}", out, re.MULTILINE), f"no {name} row in:\n{out}"
    assert "ratio" in out
    if plot:
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "no chart drawn"
