"""agentstream's HTTP service: FastAPI routes over the streams core.

``create_app(settings)`` builds the app (nothing connects before its lifespan starts);
``ApiSettings.from_env()`` reads its settings once; ``check_bind(host, settings)`` refuses
to expose the open dev mode (no API keys) beyond loopback.
"""

from agentstream.api.app import create_app
from agentstream.api.auth import check_bind
from agentstream.api.settings import ApiSettings

__all__ = ["ApiSettings", "check_bind", "create_app"]
