"""Shared fixtures: every mode through ``worker_mode``; async tests on asyncio, uvloop
and trio (through anyio's plugin); ``@pytest.mark.asyncio_only`` keeps a test that
uses asyncio's own API off trio."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["aioconc.testing.plugin"]


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
        pytest.param(("trio", {}), id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture(autouse=True)
def _asyncio_only(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("asyncio_only") is None:
        return
    callspec = getattr(request.node, "callspec", None)
    backend = callspec.params.get("anyio_backend") if callspec is not None else None
    if backend is not None and (backend[0] if isinstance(backend, tuple) else backend) == "trio":
        pytest.skip("uses asyncio's own API")


@pytest.fixture(scope="session")
def _gate_manager() -> Iterator[Any]:
    # A manager's events can be passed to worker processes too (aioconc's
    # children take the parent's authkey).  Spawned: never fork the test process.
    manager = multiprocessing.get_context("spawn").Manager()
    yield manager
    manager.shutdown()


@pytest.fixture
def gate(_gate_manager: Any) -> Iterator[threading.Event]:
    """An event a test opens to let blocked worker methods go on; opened at teardown.

    It works across processes (a ``multiprocessing.Manager`` event), so the same
    tests run in process mode.
    """
    event = _gate_manager.Event()
    yield event
    event.set()


@pytest.fixture
def entered(_gate_manager: Any) -> Any:
    """An event a worker method sets once it runs (works across processes too)."""
    return _gate_manager.Event()


# ---------------------------------------------------------------------------
# Ray: one local Ray for the whole session, started by the first ray-mode test
# ---------------------------------------------------------------------------


def _take_authkey(authkey: bytes) -> Any:
    def setup() -> None:
        multiprocessing.current_process().authkey = authkey

    return setup


@pytest.fixture(scope="session")
def _ray_session() -> Iterator[None]:
    # ray.init is slow: started once.  Its workers take this process's authkey,
    # so the `gate` events (multiprocessing.Manager proxies) work in actors too.
    # Without Ray (the test-no-ray extra), every test that needs it is skipped.
    ray = pytest.importorskip("ray")

    started = not ray.is_initialized()
    if started:
        authkey = bytes(multiprocessing.current_process().authkey)
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            logging_level="ERROR",
            runtime_env={"worker_process_setup_hook": _take_authkey(authkey)},
        )
    yield
    if started:
        ray.shutdown()


@pytest.fixture(autouse=True)
def _ray_when_needed(request: pytest.FixtureRequest) -> None:
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("worker_mode") == "ray":
        request.getfixturevalue("_ray_session")
