"""The deployment files: ``docker-compose.yml`` as docker-compose itself reads it, and as
plain YAML (every service has a healthcheck, the worker can be scaled)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SERVICES = {"redis", "api", "worker", "scripted-llm"}
_TO_JSON = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"


def _load_yaml(text: str) -> dict[str, Any]:
    """Parse YAML with PyYAML: this interpreter's if it has it, else the system python3's
    (docker-compose itself depends on it); skip when neither has it."""
    try:
        import yaml
    except ImportError:
        pass
    else:
        loaded = yaml.safe_load(text)
        assert isinstance(loaded, dict)
        return loaded
    for python in ("/usr/bin/python3", shutil.which("python3")):
        if python and python != sys.executable and Path(python).exists():
            proc = subprocess.run(
                [python, "-c", _TO_JSON], input=text, capture_output=True, text=True, timeout=30
            )
            if proc.returncode == 0:
                loaded = json.loads(proc.stdout)
                assert isinstance(loaded, dict)
                return loaded
    pytest.skip("no YAML parser: install PyYAML (pip install pyyaml) to check docker-compose.yml")


def _compose_config(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install -y docker-compose)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTSTREAM_", "OPENAI_"))}
    env.update(extra_env)
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


# ------------------------------------------------------------------- as docker-compose reads it


def test_docker_compose_accepts_the_file_and_resolves_every_service() -> None:
    proc = _compose_config({"AGENTSTREAM_API_KEYS": "me:secret"})
    assert proc.returncode == 0, proc.stderr
    config = _load_yaml(proc.stdout)
    services = config["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ("api", "worker", "scripted-llm"):
        env = services[name]["environment"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["OPENAI_BASE_URL"] == "http://scripted-llm:8900/v1"
        assert env["AGENTSTREAM_QUEUE"]  # API and worker read the same one setting
        assert {"AGENTSTREAM_PREFIX", "AGENTSTREAM_RETENTION_S", "AGENTSTREAM_MAXLEN"} <= set(env)
    assert services["api"]["environment"]["AGENTSTREAM_API_KEYS"] == "me:secret"
    assert services["api"]["command"] == ["agentstream", "api", "--host", "0.0.0.0", "--port", "8000"]
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["worker"]["command"] == ["agentstream", "worker"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "--appendonly" in services["redis"]["command"]


def test_the_api_key_is_required_to_bring_the_api_up() -> None:
    proc = _compose_config({})
    assert proc.returncode != 0
    assert "set AGENTSTREAM_API_KEYS" in proc.stderr


def test_a_real_model_replaces_the_scripted_one() -> None:
    proc = _compose_config(
        {"AGENTSTREAM_API_KEYS": "me:secret", "OPENAI_BASE_URL": "https://api.openai.com/v1"}
    )
    assert proc.returncode == 0, proc.stderr
    worker_env = _load_yaml(proc.stdout)["services"]["worker"]["environment"]
    assert worker_env["OPENAI_BASE_URL"] == "https://api.openai.com/v1"


# ----------------------------------------------------------------------------- as plain YAML


def test_every_service_has_a_healthcheck_and_the_worker_scales() -> None:
    config = _load_yaml(COMPOSE_FILE.read_text())
    services = config["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        assert "container_name" not in service, f"{name} has a fixed container name"
    worker = services["worker"]
    assert "ports" not in worker, "a scaled worker cannot publish fixed ports"
    assert worker["healthcheck"]["test"] == ["CMD", "agentstream", "worker", "--check"]
    shared = config["x-agentstream-env"]
    assert shared["REDIS_URL"] == "redis://redis:6379/0"
    assert shared["OPENAI_BASE_URL"] == "${OPENAI_BASE_URL:-http://scripted-llm:8900/v1}"
    for name in ("api", "worker", "scripted-llm"):
        assert shared.items() <= services[name]["environment"].items(), f"{name} misses the shared env"


def test_published_ports_are_loopback_by_default() -> None:
    services = _load_yaml(COMPOSE_FILE.read_text())["services"]
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published == ["${AGENTSTREAM_API_BIND:-127.0.0.1}:${AGENTSTREAM_API_PORT:-8000}:8000"]


def test_the_image_installs_the_package_on_python_311_slim() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "pip install" in dockerfile and "USER agentstream" in dockerfile


def test_nothing_waits_for_the_scripted_model_which_runs_in_its_profile() -> None:
    proc = _compose_config(
        {"AGENTSTREAM_API_KEYS": "me:secret", "OPENAI_BASE_URL": "https://api.openai.com/v1"}
    )
    assert proc.returncode == 0, proc.stderr
    services = _load_yaml(proc.stdout)["services"]
    assert services["scripted-llm"]["profiles"] == ["scripted"]
    for name in ("api", "worker"):
        assert "profiles" not in services[name]
        assert set(services[name].get("depends_on", {})) == {"redis"}, name


def test_redis_fsyncs_every_write_and_workers_serve_their_metrics() -> None:
    services = _load_yaml(COMPOSE_FILE.read_text())["services"]
    command = services["redis"]["command"]
    assert command[command.index("--appendfsync") + 1] == "always"
    worker = services["worker"]
    assert worker["environment"]["AGENTSTREAM_WORKER_METRICS_PORT"] == "9100"
    assert worker["expose"] == ["9100"] and "ports" not in worker


def test_the_build_context_leaves_local_state_out_and_the_image_checks_its_health() -> None:
    ignored = {
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"
    }
    assert {".git", ".venv", ".agentstream", "**/__pycache__", "**/node_modules", ".mypy_cache"} <= ignored
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = {
        line.split()[1]
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from" not in line
    }
    assert {"streams", "worker", "api", "agentstream"} <= copied
    assert not copied & ignored, "the Dockerfile copies something .dockerignore leaves out"
    assert "HEALTHCHECK" in dockerfile and '"-m", "agentstream.cli.probe"' in dockerfile


# ------------------------------------------------------------------ the image's health probe


def test_the_probe_reads_the_role_from_the_main_command() -> None:
    from agentstream.cli.probe import role_of

    assert role_of(["agentstream", "api", "--host", "0.0.0.0", "--port", "8000"]) == ("api", 8000)
    assert role_of(["/usr/bin/docker-init", "--", "agentstream", "api", "--port", "9000"]) == ("api", 9000)
    assert role_of(["agentstream", "worker"]) == ("worker", None)
    assert role_of(["agentstream", "scripted-llm", "--allow-remote"]) == ("scripted-llm", 8900)


def test_the_probe_checks_what_each_role_serves(redis_url: str) -> None:
    from agentstream.cli.probe import check, main
    from tests.redis_server import free_port

    assert check("worker", None, redis_url) is None
    dead = f"redis://127.0.0.1:{free_port()}/0"
    assert "unreachable" in (check("worker", None, dead) or "")
    assert main(["api", "--port", str(free_port())]) == 1  # nothing listens there
    proc = subprocess.run(
        [sys.executable, "-m", "agentstream.cli.probe", "worker"],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


async def test_the_probe_finds_a_serving_role_healthy() -> None:
    import asyncio
    from urllib.parse import urlsplit

    from agentstream.cli.probe import check
    from agentstream.worker.scripted_llm import ScriptedLLMServer

    async with ScriptedLLMServer() as server:
        port = urlsplit(server.base_url).port
        # the probe blocks (as it does in its own process): off the loop serving the model
        assert await asyncio.to_thread(check, "scripted-llm", port, "") is None
