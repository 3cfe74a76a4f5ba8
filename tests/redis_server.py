"""Real Redis servers for the test suite: a single node and a 3-master cluster, each on
free loopback ports. Starting and stopping a server is the package's own launcher
(:mod:`agentstream.cli.embedded`); this module only adds the throwaway settings and the
cluster harness, which the package has no use for."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

from agentstream.cli.embedded import EmbeddedRedis, find_redis_cli, free_port, stop_redis
from agentstream.cli.embedded import start_redis as _launch

__all__ = ["free_cluster_port", "free_port", "redis_cluster", "redis_node", "start_redis", "stop"]

#: a test server keeps nothing on disk
THROWAWAY = ("--save", "", "--appendonly", "no")


def start_redis(port: int, workdir: str, *extra: str) -> subprocess.Popen[bytes]:
    """A throwaway ``redis-server`` on ``port`` (``extra`` arguments win), ready for PING."""
    return _launch(port, workdir, *THROWAWAY, *extra)


stop = stop_redis


@contextlib.contextmanager
def redis_node(*extra: str) -> Iterator[str]:
    """A throwaway Redis on a free port; yields its URL."""
    with (
        tempfile.TemporaryDirectory(prefix="agentstream-redis-") as workdir,
        EmbeddedRedis(workdir, None, *extra, persistent=False) as url,
    ):
        yield url


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(1000):
        port = random.randint(20_000, 50_000)
        if _bindable(port) and _bindable(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


@contextlib.contextmanager
def redis_cluster(masters: int = 3) -> Iterator[str]:
    """A local cluster of ``masters`` nodes; yields the URL of one node."""
    cli = find_redis_cli()
    if cli is None:
        raise RuntimeError("redis-cli is needed to create a cluster")
    with tempfile.TemporaryDirectory(prefix="agentstream-cluster-") as workdir:
        ports = [free_cluster_port() for _ in range(masters)]
        procs = []
        try:
            for port in ports:
                node_dir = os.path.join(workdir, str(port))
                procs.append(start_redis(port, node_dir, "--cluster-enabled", "yes",
                                         "--cluster-config-file", "nodes.conf",
                                         "--cluster-node-timeout", "2000"))  # fmt: skip
            subprocess.run(
                [cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            _wait_cluster_ok(cli, ports[0])
            yield f"redis://127.0.0.1:{ports[0]}/0"
        finally:
            for proc in procs:
                stop_redis(proc)


def _wait_cluster_ok(cli: str, port: int, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        out = subprocess.run([cli, "-p", str(port), "cluster", "info"], capture_output=True, timeout=5)
        if b"cluster_state:ok" in out.stdout:
            return
        time.sleep(0.1)
    raise TimeoutError("cluster did not reach cluster_state:ok")
