"""Fixtures: a real API server per test, against the session's real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentstream.streams import StreamsSettings
from tests.api.server import ALICE, BOB, Api, api_settings, serve


@pytest.fixture
async def api(settings: StreamsSettings, redis: Any) -> AsyncIterator[Api]:
    async with serve(api_settings(settings)) as running:
        yield running


@pytest.fixture
async def alice(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with api.client(ALICE) as client:
        yield client


@pytest.fixture
async def bob(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with api.client(BOB) as client:
        yield client
