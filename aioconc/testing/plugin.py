"""pytest plugin: the ``worker_mode`` fixture, one parameter per available mode.

Enable it with ``pytest_plugins = ["aioconc.testing.plugin"]``.  Set
``AIOCONC_TEST_MODES=sync,thread`` to test fewer modes.
"""

from __future__ import annotations

import os

import pytest

from .._backends import available_modes


def _modes() -> list[str]:
    modes = [m.name.lower() for m in available_modes()]
    only = os.environ.get("AIOCONC_TEST_MODES")
    if only:
        wanted = {m.strip().lower() for m in only.split(",")}
        modes = [m for m in modes if m in wanted]
    return modes


@pytest.fixture(params=_modes())
def worker_mode(request: pytest.FixtureRequest) -> str:
    """Each execution mode available here, by name ("sync", "asyncio", "threads", ...)."""
    return str(request.param)
