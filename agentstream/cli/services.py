"""The server commands: ``api`` (the HTTP service), ``worker`` (an arq worker, or its
healthcheck) and ``scripted-llm`` (the offline model). Each imports its server only when
it runs, so ``agentstream --help`` stays light."""

from __future__ import annotations

import argparse
import os

from agentstream.cli.environment import with_app

__all__ = ["run_worker", "scripted_llm", "serve_api"]


def serve_api(args: argparse.Namespace) -> int:
    """Serve the API on ``args.host:args.port`` until SIGINT/SIGTERM."""
    import uvicorn

    from agentstream.api.app import create_app
    from agentstream.api.auth import check_bind
    from agentstream.api.serving import uvicorn_options
    from agentstream.api.settings import ApiSettings
    from agentstream.telemetry.logs import configure_logging
    from agentstream.telemetry.tracing import configure_tracing

    settings = ApiSettings.from_env()
    check_bind(args.host, settings)
    configure_logging()  # uvicorn's loggers too (log_config=None below leaves them to it)
    configure_tracing("agentstream-api")
    # Open SSE streams would hold a plain shutdown forever; give them a grace period.
    uvicorn.run(
        create_app(settings),
        **uvicorn_options(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    return 0


def run_worker(args: argparse.Namespace) -> int:
    """Run a worker until SIGINT/SIGTERM, or with ``--check`` only ping its Redis."""
    env = with_app(os.environ, args.app)
    if args.check:
        from agentstream.cli.healthcheck import check_redis

        return check_redis(env)
    from agentstream.worker.__main__ import main as worker_main

    worker_main(env)
    return 0


def scripted_llm(args: argparse.Namespace) -> int:
    """Serve the scripted OpenAI-compatible model until SIGINT/SIGTERM."""
    from agentstream.worker.scripted_llm import main as scripted_main

    argv = ["--host", args.host, "--port", str(args.port), "--token-delay", str(args.token_delay)]
    scripted_main([*argv, "--allow-remote"] if args.allow_remote else argv)
    return 0
