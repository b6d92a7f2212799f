"""docs/guides/web-app.md's FastAPI recipe, served by uvicorn on loopback and driven by httpx."""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import types
from pathlib import Path
from typing import Any

import psutil
import pytest

from aioconc._backends.process._launch import ForkServer

fastapi = pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

RECIPE = Path(__file__).resolve().parent.parent / "docs" / "guides" / "web-app.md"
REQUESTS = 2_000
AT_ONCE = 100


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # uvicorn serves on asyncio


def recipe_app() -> Any:
    """The app of the recipe's python block, built as a module of its own (not
    importable by name: process workers get its classes by value)."""
    text = RECIPE.read_text(encoding="utf-8")
    (code,) = re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    module = types.ModuleType("web_recipe")
    exec(compile(code, str(RECIPE), "exec"), module.__dict__)
    return module.app


def expected_digest(text: str, rounds: int) -> str:
    data = text.encode()
    for _ in range(rounds):
        data = hashlib.sha256(data).digest()
    return data.hex()


async def test_the_recipe_serves_2000_requests_100_at_a_time() -> None:
    me = psutil.Process()
    children_before = {p.pid for p in me.children(recursive=True)}
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # Keep-alive longer than the test: a connection the server drops as idle
    # while the client reuses it would fail a request on a slow machine.
    config = uvicorn.Config(
        recipe_app(), lifespan="on", log_level="warning", timeout_keep_alive=120
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not serving.done(), "the server stopped while starting"
            await asyncio.sleep(0.01)  # uvicorn offers no event for "started"
        slots = asyncio.Semaphore(AT_ONCE)
        pids: set[int] = set()
        limits = httpx.Limits(max_connections=AT_ONCE)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:

            async def one(i: int) -> None:
                async with slots:
                    if i % 2:
                        reply = await client.get(f"/lookup/key{i}")
                        assert reply.status_code == 200
                        assert reply.json() == {"value": f"KEY{i}"}
                    else:
                        reply = await client.get(f"/digest/text{i}", params={"rounds": 10})
                        assert reply.status_code == 200
                        body = reply.json()
                        assert body["digest"] == expected_digest(f"text{i}", 10)
                        pids.add(body["pid"])

            await asyncio.gather(*(one(i) for i in range(REQUESTS)))
        assert len(pids) == 2  # both processes of the pool served
        assert not pids & {me.pid}
    finally:
        server.should_exit = True
        await serving
        for _ in range(3):  # closed connections finish closing on the next loop turns
            await asyncio.sleep(0)
    left = {p.pid for p in me.children(recursive=True) if p.is_running()} - children_before
    assert not left & pids  # the pool's processes are gone
    fork_server = ForkServer._instance  # aioconc's helper that forks workers stays
    assert not left - ({fork_server.pid} if fork_server is not None else set())
