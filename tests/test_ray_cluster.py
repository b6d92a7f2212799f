"""A real two-node Ray cluster on this machine: placement, a shared limit, a node lost.

The cluster (``ray start --head`` and a second ``ray start --address``, on
loopback, with their own ports and temp dir) is this module's own, and so is its
driver: a subprocess, so that the test session's local Ray (``_ray_session``)
and this cluster never meet in one process.  The test kills the second node's
raylet while a batch runs, and tears the whole cluster down at the end, checking
that no process of it is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

psutil = pytest.importorskip("psutil")
pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent
RAY = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _own_ports(*names: str) -> list[str]:
    # Ports of our own for what Ray would otherwise give a fixed default (the
    # agents, the Ray Client server): the session's Ray or another cluster on
    # this machine may hold those.
    return [f"--{name}={_free_port()}" for name in names]


_NODE_PORTS = (
    "node-manager-port",
    "object-manager-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "metrics-export-port",
    "runtime-env-agent-port",
)


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)  # never the session's Ray
    return env


class Node:
    """One ``ray start --block`` in a process group of its own, started and ready."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [RAY, "start", "--block", "--disable-usage-stats", "--num-cpus=1", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(),
            cwd=ROOT,
            start_new_session=True,
        )
        # `ray start` says so once its node runs (a second node: once it joined).
        assert self.proc.stdout is not None
        said: list[str] = []
        for line in self.proc.stdout:
            said.append(line)
            if "Ray runtime started" in line:
                return
        self.stop()  # whatever it started before it failed goes too
        raise RuntimeError("ray start failed:\n" + "".join(said[-30:]))

    def processes(self) -> list[Any]:
        """This node's processes now: ``ray start`` and everything under it."""
        try:
            me = psutil.Process(self.proc.pid)
            return [me, *me.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def raylet(self) -> Any:
        return next(p for p in self.processes() if p.name() == "raylet")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(60)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def cluster() -> Iterator[dict[str, Any]]:
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="rayc", dir="/tmp")
    common = ["--node-ip-address=127.0.0.1"]
    nodes: list[Node] = []
    seen: dict[int, Any] = {}
    info: dict[str, Any] = {"port": port, "seen": seen}
    try:
        head = Node(
            [
                "--head",
                f"--port={port}",
                f"--temp-dir={temp_dir}",
                "--resources=" + json.dumps({"slot": 1}),
                "--include-dashboard=false",
                *_own_ports("ray-client-server-port", *_NODE_PORTS),
                *common,
            ]
        )
        nodes.append(head)
        # The second node joins the head's GCS (it is up: its `ray start` said so).
        second = Node(
            [
                f"--address=127.0.0.1:{port}",
                "--resources=" + json.dumps({"slot": 1, "node_b": 1}),
                *_own_ports(*_NODE_PORTS),
                *common,
            ]
        )
        nodes.append(second)
        info.update(head=head, second=second)
        yield info
    finally:
        for node in nodes:
            seen.update((p.pid, p) for p in node.processes())
        for node in nodes:
            node.stop()
        _, alive = psutil.wait_procs(list(seen.values()), timeout=60)
        for proc in alive:  # never leave them running, even when the test fails
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not alive, f"Ray processes left behind: {[p.pid for p in alive]}"


DRIVER = """
import sys, time, ray
from aioconc import LimitSet, RateLimit, Worker, gather
from aioconc._exceptions import WorkerCrashedError

ray.init(address="127.0.0.1:{port}", logging_level="ERROR")
limits = LimitSet([RateLimit(key="calls", window=1, capacity={capacity})], shared=True, mode="ray")


class Job(Worker):
    def node(self):
        return ray.get_runtime_context().get_node_id()

    def wait(self):
        time.sleep(600)

    def work(self, i):
        with self.limits.acquire({{"calls": 1}}) as acquisition:
            acquisition.update(usage={{"calls": 1}})
            return i, ray.get_runtime_context().get_node_id(), time.time()


# The probe is placed on the second node by its resource (so it starts once that
# node has joined), and is busy when that node goes.
probe = Job.options(
    mode="ray", start_timeout=120, actor_options={{"num_cpus": 0, "resources": {{"node_b": 1}}}}
).init()
node_b = probe.node().result(120)
assert "node_b" in next(n["Resources"] for n in ray.nodes() if n["NodeID"] == node_b)
# One worker per node: each node has one "slot".
pool = Job.options(
    mode="ray",
    max_workers=2,
    max_queued_tasks=None,
    actor_options={{"num_cpus": 0, "resources": {{"slot": 1}}}},
    limits=limits,
    num_retries=6,
    retry_wait=0.1,
    start_timeout=20,  # a busy machine starts a worker process slowly
).init()
nodes = {{pool.node().result(120) for _ in range(2)}}
assert node_b in nodes and len(nodes) == 2, nodes
busy = probe.wait()
futures = [pool.work(i) for i in range({n})]
for fut in futures[:{before}]:
    fut.result(120)
print("KILL", flush=True)           # the test kills the second node's raylet now
sys.stdin.readline()
try:
    busy.result(60)
except WorkerCrashedError as exc:
    print("probe", type(exc).__name__, flush=True)
results = gather(futures, timeout=120)
print("done", sorted(i for i, _, _ in results) == list(range({n})), flush=True)
print("retried", sum(f.attempts > 1 for f in futures), flush=True)
on_b = sum(node == node_b for _, node, _ in results)
print("on_b", on_b, "after", sum(node != node_b for _, node, _ in results[{before}:]), flush=True)
stamps = sorted(t for _, _, t in results)
print("max_in_window", max(sum(1 for u in stamps if t <= u < t + 0.95) for t in stamps), flush=True)
pool.stop()
probe.stop(timeout=5)
"""


@pytest.mark.slow
@pytest.mark.timeout(400)  # two nodes to start on a busy 2-core machine, and a node lost
def test_a_pool_across_two_nodes_survives_losing_one(cluster: dict[str, Any]) -> None:
    capacity, n, before = 10, 40, 6
    script = DRIVER.format(port=cluster["port"], capacity=capacity, n=n, before=before)
    out: list[str] = []
    with (
        tempfile.TemporaryFile("w+") as errors,  # a file, not a pipe: logs never block it
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=_env(),
            cwd=ROOT,
        ) as driver,
    ):
        try:
            assert driver.stdout is not None and driver.stdin is not None
            for line in driver.stdout:
                out.append(line.strip())
                if line.startswith("KILL"):
                    second = cluster["second"]
                    cluster["seen"].update((p.pid, p) for p in second.processes())
                    second.raylet().kill()  # the node is lost mid-batch
                    driver.stdin.write("go\n")
                    driver.stdin.flush()
            driver.wait(timeout=240)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
        errors.seek(0)
        stderr = errors.read()
    assert driver.returncode == 0, "\n".join(out) + stderr[-3000:]
    assert "probe WorkerCrashedError" in out
    assert "done True" in out
    retried = next(int(line.split()[1]) for line in out if line.startswith("retried"))
    assert retried >= 1  # calls on the lost node failed, and were retried
    window = next(int(line.split()[1]) for line in out if line.startswith("max_in_window"))
    assert window <= capacity  # one rate limit across both nodes
