"""The worker's configuration and the shape of the worker package: one environment mapping
read once, every variable listed for ``worker --help``, light modules that stay light, and
no import cycle."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agentstream.worker.config import ENV_VARS, WorkerConfig
from agentstream.worker.errors import ConfigurationError

WORKER = Path(__file__).resolve().parents[2] / "worker"


class Recording(Mapping[str, str]):
    """An environment that remembers every name asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self.values[name]

    def get(self, name: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(name)
        return self.values.get(name, default)

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the configuration must ask for names, not list the environment")

    def __len__(self) -> int:
        return len(self.values)


def test_env_vars_list_exactly_what_the_worker_reads() -> None:
    env = Recording({})
    WorkerConfig.from_env(env)
    listed = [name for name, _ in ENV_VARS]
    assert len(listed) == len(set(listed))
    assert env.asked == set(listed)
    assert all(help_text and "\n" not in help_text for _, help_text in ENV_VARS)


def test_model_tools_and_app_come_from_the_mapping_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_BASE_URL", "AGENTSTREAM_MODEL", "AGENTSTREAM_HTTP_GET_ALLOW", "AGENTSTREAM_APP"):
        monkeypatch.setenv(name, "from-os-environ" if name != "AGENTSTREAM_APP" else "os:app")
    monkeypatch.setenv("AGENTSTREAM_MAX_JOBS", "7")
    config = WorkerConfig.from_env(
        {
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "AGENTSTREAM_MODEL": "m1",
            "AGENTSTREAM_HTTP_GET_ALLOW": "api.example.com",
            "AGENTSTREAM_APP": "myagents.main:app",
            "AGENTSTREAM_LOG_LEVEL": "debug",
        }
    )
    assert (config.model.base_url, config.model.model) == ("http://127.0.0.1:9/v1", "m1")
    assert config.tools.http_get_allow == ("api.example.com",)
    assert config.app == "myagents.main:app"
    assert config.log_level == "DEBUG"
    assert config.max_jobs == 50  # os.environ was not read
    defaults = WorkerConfig.from_env({})
    assert defaults.app is None and defaults.model.base_url is None and not defaults.tools.http_get_enabled


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AGENTSTREAM_APP": "myagents"}, "module:attr"),
        ({"AGENTSTREAM_APP": "my agents:app"}, "module:attr"),
        ({"AGENTSTREAM_LOG_LEVEL": "chatty"}, "log level"),
        ({"AGENTSTREAM_LEASE_S": "0.5"}, "at least 1 second"),
        ({"AGENTSTREAM_MAX_JOBS": "many"}, "AGENTSTREAM_MAX_JOBS"),
        ({"AGENTSTREAM_HTTP_GET_MAX_BYTES": "lots"}, "AGENTSTREAM_HTTP_GET_MAX_BYTES"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WorkerConfig.from_env(env)


# --------------------------------------------------------------------------- the package


def worker_modules() -> list[str]:
    names = []
    for path in sorted(WORKER.rglob("*.py")):
        parts = path.relative_to(WORKER).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        names.append(".".join(("agentstream.worker", *parts)))
    return names


def imports_of(module: str) -> set[str]:
    """The ``agentstream.worker`` modules ``module`` imports when it is imported (not those
    under ``TYPE_CHECKING`` or inside functions)."""
    relative = module.removeprefix("agentstream.worker").lstrip(".").replace(".", "/")
    path = WORKER / relative / "__init__.py" if (WORKER / relative).is_dir() else WORKER / f"{relative}.py"
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agentstream.worker"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("agentstream.worker"))
    return found


def test_the_worker_package_has_no_import_cycle() -> None:
    modules = set(worker_modules())
    graph = {m: {i for i in imports_of(m) if i in modules and i != m} for m in modules}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import cycle: " + " -> ".join((*path[path.index(module) :], module))
        if module in done:
            return
        for target in graph[module]:
            visit(target, (*path, module))
        done.add(module)

    for module in sorted(modules):
        visit(module, ())


HEAVY = ("arq", "openai", "agentstream.worker.agents", "agentstream.worker.llm")

#: imports each module with every ``agentstream.worker`` module forgotten first, so each
#: one runs from scratch (third-party packages stay loaded: one interpreter is enough)
ISOLATED = """
import importlib, json, sys
results = {}
for module in sys.argv[1:]:
    for name in [n for n in sys.modules if n.partition(".")[2].startswith("worker")]:
        del sys.modules[name]
    try:
        importlib.import_module(module)
        results[module] = "ok"
    except Exception as exc:
        results[module] = repr(exc)
print(json.dumps(results))
"""


def loads_heavy(module: str) -> str:
    """What of :data:`HEAVY` a fresh interpreter has loaded after importing ``module``."""
    code = f"import sys, {module}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=150, check=True
    )
    return done.stdout.strip()


@pytest.mark.timeout(300)
def test_every_worker_module_imports_on_its_own() -> None:
    """Each module imported from scratch: an import cycle, or a missing import that another
    module's earlier import would hide, shows up here."""
    modules = worker_modules()
    done = subprocess.run(
        [sys.executable, "-c", ISOLATED, *modules], capture_output=True, text=True, timeout=280, check=True
    )
    results = json.loads(done.stdout)
    assert results == dict.fromkeys(modules, "ok")


@pytest.mark.timeout(300)
def test_the_light_modules_stay_light() -> None:
    """What the API and the CLI import loads neither arq's worker side nor the model client."""
    light = ("agentstream.worker", "agentstream.worker.config", "agentstream.worker.payload")
    with ThreadPoolExecutor(4) as pool:
        loaded = dict(zip(light, pool.map(loads_heavy, light), strict=True))
        enqueue = pool.submit(loads_heavy, "agentstream.worker.enqueue").result()
    assert loaded == dict.fromkeys(light, "")
    assert enqueue == "arq"


def test_every_worker_subpackage_is_packaged() -> None:
    """A subpackage missing from ``[tool.setuptools] packages`` works in the editable install
    and is absent from the wheel."""
    import tomllib

    config = tomllib.loads((WORKER.parent / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    packages = {
        name
        for name in worker_modules()
        if (
            WORKER / name.replace("agentstream.worker", "").lstrip(".").replace(".", "/") / "__init__.py"
        ).exists()
    }
    assert packages <= listed, packages - listed
