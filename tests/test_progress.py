"""ProgressBar and make_progress: conformance items 257-262."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import types
from typing import Any

import pytest

from aioconc.progress import ProgressBar, make_progress

# The 24-bit ANSI colour codes tqdm writes for the status colours.
BLUE = "38;2;2;136;209m"
GREEN = "38;2;67;160;71m"
RED = "38;2;230;74;25m"
GREY = "38;2;176;190;197m"


def new_bar(**kw: Any) -> tuple[ProgressBar, io.StringIO]:
    out = io.StringIO()
    return ProgressBar(file=out, style="std", **kw), out


# ---- 257: iterating ------------------------------------------------------------


def test_iterating_a_list_yields_items_with_total_from_len() -> None:
    out = io.StringIO()
    pb = ProgressBar([10, 20, 30], file=out, desc="nums")
    assert pb.total == 3
    assert list(pb) == [10, 20, 30]
    assert pb.n == 3
    assert pb.status == "success"
    assert pb.closed
    assert "3/3" in out.getvalue()
    assert GREEN in out.getvalue()


def test_iterating_a_dict_yields_its_items() -> None:
    pb, _ = new_bar(iterable={"a": 1, "b": 2})
    assert pb.total == 2
    assert list(pb) == [("a", 1), ("b", 2)]


def test_iterating_a_generator_has_no_total() -> None:
    pb, out = new_bar(iterable=(i * i for i in range(4)))
    assert pb.total is None
    assert list(pb) == [0, 1, 4, 9]
    assert "4row" in out.getvalue().replace(" ", "")


def test_an_error_from_the_iterable_marks_failure_and_propagates() -> None:
    def boom() -> Any:
        yield 1
        raise KeyError("x")

    pb, out = new_bar(iterable=boom(), total=2)  # tqdm draws (and colours) a bar only with a total
    with pytest.raises(KeyError):
        list(pb)
    assert pb.status == "failure"
    assert RED in out.getvalue()


def test_leaving_the_loop_early_stops_the_bar() -> None:
    pb, out = new_bar(iterable=range(10))
    for i in pb:
        if i == 2:
            break
    assert pb.status == "stopped"
    assert pb.closed
    assert GREY in out.getvalue()


def test_iterating_a_bar_without_iterable_raises_type_error() -> None:
    pb, _ = new_bar(total=3)
    with pytest.raises(TypeError):
        iter(pb)
    pb.close()


# ---- 258: the manual API -------------------------------------------------------


def test_manual_methods_drive_the_tqdm_bar() -> None:
    pb, out = new_bar(total=10, desc="load", unit="file")
    assert pb.update(3) is True
    assert pb.pbar.n == 3
    pb.set_n(7)
    assert (pb.n, pb.pbar.n) == (7, 7)
    pb.set_total(20)
    assert pb.total == 20
    pb.set_description("reload")
    assert "reload" in out.getvalue()
    pb.set_unit("MB")
    pb.refresh()
    assert "7/20" in out.getvalue()
    assert "MB" in out.getvalue()
    assert repr(pb) == "ProgressBar(desc='reload', n=7, total=20, status='running')"
    pb.close()
    assert pb.closed
    assert pb.status == "closed"
    assert out.getvalue().endswith("\n")
    pb.close()  # a second close does nothing


def test_context_manager_ends_green_or_red() -> None:
    with new_bar(total=2)[0] as pb:
        pb.update(2)
    assert pb.status == "success"
    with pytest.raises(RuntimeError), new_bar(total=2)[0] as pb2:
        raise RuntimeError
    assert pb2.status == "failure"


# ---- 259: buffered updates -----------------------------------------------------


def test_updates_are_buffered_until_miniters_accumulate() -> None:
    pb, _ = new_bar(total=10, miniters=3)
    assert pb.update(1) is False
    assert pb.update(1) is False
    assert (pb.n, pb.pbar.n) == (2, 0)
    assert pb.update(1) is True
    assert pb.pbar.n == 3
    pb.update(1)
    pb.close()  # closing tells the bar what is buffered
    assert pb.pbar.n == 4


@pytest.mark.parametrize("miniters", [0, -1])
def test_miniters_below_one_raises(miniters: int) -> None:
    with pytest.raises(ValueError, match="miniters"):
        ProgressBar(total=3, miniters=miniters, file=io.StringIO())


# ---- 260: end states -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "colour"),
    [("success", "success", GREEN), ("failure", "failure", RED), ("stop", "stopped", GREY)],
)
def test_end_states_recolour_and_close(method: str, status: str, colour: str) -> None:
    pb, out = new_bar(total=4, desc="work", miniters=10)
    pb.update(2)
    assert colour not in out.getvalue()
    getattr(pb, method)("note")
    assert pb.status == status
    assert pb.closed
    assert pb.pbar.n == 2  # buffered steps are shown before closing
    last_line = out.getvalue().rsplit("\r", 1)[-1]
    assert colour in last_line
    assert "[note] work" in last_line


def test_end_state_without_close_leaves_the_bar_open() -> None:
    pb, out = new_bar(total=4, desc="work")
    pb.success("ok", close=False, append_desc=False)
    assert not pb.closed
    assert pb.pbar.desc == "ok"
    assert GREEN in out.getvalue()
    pb.close()
    assert pb.status == "success"
    pb.failure()  # a closed bar keeps its end state
    assert pb.status == "success"


def test_a_running_bar_is_blue() -> None:
    pb, out = new_bar(total=2)
    pb.update(1)
    pb.refresh()
    assert BLUE in out.getvalue()
    pb.close()


# ---- 261: disable --------------------------------------------------------------


def test_disabled_bar_writes_nothing() -> None:
    pb, out = new_bar(total=5, disable=True, desc="quiet")
    pb.update(2)
    pb.set_n(4)
    pb.set_description("still quiet")
    pb.set_total(6)
    pb.success("done")
    assert out.getvalue() == ""
    pb2, out2 = new_bar(iterable=[1, 2], disable=True)
    assert list(pb2) == [1, 2]
    assert out2.getvalue() == ""


# ---- 262: styles ---------------------------------------------------------------


def test_ray_style_without_ray_falls_back_to_a_normal_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def no_ray(name: str, *args: Any) -> Any:
        return None if name.split(".")[0] == "ray" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", no_ray)
    out = io.StringIO()
    pb = ProgressBar(total=3, style="ray", file=out, desc="r")
    pb.update(3)
    pb.success()
    assert type(pb.pbar).__module__ == "tqdm.std"
    assert "3/3" in out.getvalue()


class FakeRayTqdm:
    """Stands in for ray.experimental.tqdm_ray.tqdm, which takes few of tqdm's options."""

    def __init__(self, desc: str | None = None, total: int | None = None) -> None:
        self.desc, self.total, self.n, self.closed = desc, total, 0, False

    def update(self, n: int = 1) -> None:
        self.n += n

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_ray_style_with_ray_uses_rays_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    fake = types.ModuleType("ray.experimental.tqdm_ray")
    fake.tqdm = FakeRayTqdm  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray.experimental.tqdm_ray", fake)
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "ray" else real_find_spec(name, *a),
    )
    pb = ProgressBar(total=3, style="ray", desc="r", ncols=50, file=io.StringIO())
    assert isinstance(pb.pbar, FakeRayTqdm)
    pb.update(3)
    pb.success()
    assert (pb.pbar.n, pb.pbar.closed, pb.status) == (3, True, "success")


def test_importing_progress_does_not_import_ray() -> None:
    code = "import sys, aioconc.progress; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_style_raises() -> None:
    with pytest.raises(ValueError, match="style"):
        ProgressBar(total=1, style="fancy", file=io.StringIO())  # type: ignore[arg-type]


# ---- defaults from aioconc.config ----------------------------------------------


def test_defaults_come_from_global_config(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = types.SimpleNamespace(
        progress_bar_ncols=40, progress_bar_smoothing=0.5, progress_bar_miniters=4
    )
    fake = types.ModuleType("aioconc.config")
    fake.global_config = types.SimpleNamespace(defaults=defaults)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aioconc.config", fake)
    pb, _ = new_bar(total=3)
    assert (pb.pbar.ncols, pb.pbar.smoothing, pb.miniters) == (40, 0.5, 4)
    pb.close()


def test_defaults_fall_back_without_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aioconc.config", None)  # makes the import fail
    pb, _ = new_bar(total=3)
    assert (pb.pbar.ncols, pb.pbar.smoothing, pb.miniters) == (100, 0.15, 1)
    pb.close()


# ---- make_progress -------------------------------------------------------------


@pytest.mark.parametrize("option", [None, False])
def test_make_progress_off(option: Any) -> None:
    assert make_progress(option, 10, "Waiting") is None


def test_make_progress_true_writes_a_bar_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    sink = make_progress(True, 500, "Waiting")
    assert sink is not None
    assert sink.bar is not None
    assert (sink.bar.total, sink.bar.miniters) == (500, 5)
    sink.advance(500)
    sink.done(ok=True)
    assert sink.bar.status == "success"
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Waiting" in captured.err
    assert "500/500" in captured.err


def test_make_progress_dict_overrides_defaults() -> None:
    out = io.StringIO()
    sink = make_progress({"desc": "mine", "miniters": 2, "file": out}, 4, "Waiting")
    assert sink is not None
    assert sink.bar is not None
    sink.advance()
    assert sink.bar.pbar.n == 0
    sink.advance()
    assert sink.bar.pbar.n == 2
    sink.done(ok=False, desc="boom")
    assert sink.bar.status == "failure"
    assert "[boom] mine" in out.getvalue()


def test_make_progress_uses_a_given_bar_and_sets_unknown_total() -> None:
    pb, out = new_bar()
    sink = make_progress(pb, 3, "Waiting")
    assert sink is not None
    assert sink.bar is pb
    assert pb.total == 3
    sink.advance(3)
    sink.stop()
    assert pb.status == "stopped"
    assert "Timeout: 100%" in out.getvalue()  # no description to prefix: it becomes the label
    sink.done(ok=True)  # already finished: no effect
    assert pb.status == "stopped"


def test_make_progress_callable_gets_completed_total_elapsed() -> None:
    calls: list[tuple[int, int, float]] = []
    ticks = iter([100.0, 100.5, 102.0])
    sink = make_progress(
        lambda c, t, e: calls.append((c, t, e)), 3, "Waiting", clock=lambda: next(ticks)
    )
    assert sink is not None
    assert sink.bar is None
    sink.advance()
    sink.advance(2)
    sink.done(ok=True)
    sink.advance()  # ignored after done
    assert calls == [(1, 3, 0.5), (3, 3, 2.0)]
    assert repr(sink) == "_ProgressSink(3/3, finished=True)"


def test_make_progress_rejects_other_values() -> None:
    with pytest.raises(ValueError, match="progress must be"):
        make_progress(42, 3, "Waiting")  # type: ignore[arg-type]
