"""Loading the worker's :class:`~agentstream.worker.app.core.App` from ``module:attr``.

``AGENTSTREAM_APP=myagents:app`` imports ``myagents`` from the working directory (or
``PYTHONPATH``) and serves its ``app``; unset, the worker serves a plain ``App()`` (the
built-in kinds and tools). Every failure is a ``ConfigurationError`` naming the reference.
"""

from __future__ import annotations

import importlib
import os
import sys

from agentstream.worker.app.core import App
from agentstream.worker.errors import ConfigurationError

__all__ = ["APP_ENV", "load_app"]

#: the environment variable naming the worker's app
APP_ENV = "AGENTSTREAM_APP"


def load_app(reference: str) -> App:
    """Import ``module:attr`` (``attr`` may be dotted) and return the :class:`App` it names.

    The working directory is searched first, as ``python -m`` and uvicorn do, so a worker
    started in the project folder finds the project's module.
    """
    module_name, sep, attr = reference.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"{APP_ENV}={reference!r}: expected 'module:attr', e.g. 'myagents:app'")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"{APP_ENV}={reference!r}: cannot import module {module_name!r} ({exc}); run the worker "
            f"in the folder holding it or add that folder to PYTHONPATH"
        ) from exc
    value: object = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ConfigurationError(
                f"{APP_ENV}={reference!r}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    if not isinstance(value, App):
        raise ConfigurationError(
            f"{APP_ENV}={reference!r}: {attr!r} is a {type(value).__name__}, not an "
            "agentstream App (app = App())"
        )
    return value
