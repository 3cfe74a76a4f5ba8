"""The README's Backend-service snippet is complete (its imports included) and is the code
that ``examples/backend_service.py`` runs (``tests/test_examples.py`` checks its output)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def backend_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Backend service", 1)[1].split("\n### ", 1)[0]  # its subsections too
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    (sdk,) = [block for block in blocks if "AgentStreamClient" in block]
    return str(sdk)


def test_the_snippet_runs_as_written() -> None:
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(backend_block(), "README.md", "exec"), namespace)
    functions = [value for value in namespace.values() if inspect.iscoroutinefunction(value)]
    assert {f.__name__ for f in functions} == {"follow_one_task", "typewriter"}


def test_every_function_of_the_snippet_is_the_example_s_own() -> None:
    block = backend_block()
    example = (ROOT / "examples" / "backend_service.py").read_text()
    tree = ast.parse(block)
    defined = [node for node in tree.body if isinstance(node, ast.AsyncFunctionDef)]
    assert defined
    for node in defined:
        source = ast.get_source_segment(block, node)
        assert source is not None and source in example, f"{node.name} differs from the example's"
    imports = [ast.get_source_segment(block, n) for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert all(line in example for line in imports if line), "the example imports the same names"
