"""The stock ``@ag-ui/client`` driven with node: ``tests/node`` (the version pinned in its
package-lock.json) installed when it is not yet, and its scripts run against an API. The
``node_modules`` fixture of ``tests/conftest.py`` installs it."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
NPM_TIMEOUT_S = 300.0
RUN_TIMEOUT_S = 50.0


def node() -> str:
    """The path of ``node``; the test fails if there is none."""
    found = shutil.which("node")
    if found is None:
        pytest.fail("node (>= 20) is not on PATH: the AG-UI client tests drive @ag-ui/client with it")
    return found


def install_node_modules() -> Path:
    """tests/node installed from its lockfile (``npm ci``) when it is not yet."""
    node()
    if not (NODE_DIR / "node_modules" / "@ag-ui" / "client" / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is not on PATH: it installs tests/node (npm ci)")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True,
            timeout=NPM_TIMEOUT_S, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.fail(f"npm ci in tests/node failed:\n{done.stdout}\n{done.stderr}")
    return NODE_DIR / "node_modules"


async def run_script(
    script: str,
    *args: str,
    api_url: str,
    key: str = "key-alice",
    timeout_s: float = RUN_TIMEOUT_S,
    **env: str,
) -> dict[str, Any]:
    """Run ``tests/node/<script>`` against the AG-UI route of ``api_url`` as ``key``
    (``env``: more of its environment); the JSON object of its last line of output."""
    node_path = node()
    env = {"AGUI_URL": f"{api_url}/v1/ag-ui", "AGUI_KEY": key, "PATH": str(Path(node_path).parent), **env}
    proc = await asyncio.create_subprocess_exec(
        node_path, script, *args, cwd=NODE_DIR, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    value = json.loads(out.decode().strip().splitlines()[-1])
    assert isinstance(value, dict)
    return value
