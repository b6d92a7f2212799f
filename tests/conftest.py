"""Shared fixtures: every mode through ``worker_mode``; async tests on asyncio and uvloop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["aioconc.testing.plugin"]


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event a test opens to let blocked worker methods go on; opened at teardown."""
    event = threading.Event()
    yield event
    event.set()
