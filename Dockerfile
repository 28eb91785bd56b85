# syntax=docker/dockerfile:1
# The user-sessions service: gunicorn on port 8000, as a non-root user.
#   docker build -t user-sessions .
#   docker run -e DATABASE_URL=postgresql://… -e SECRET_KEY=… -e API_KEYS=… -p 8000:8000 user-sessions

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build: install the service and its dependencies (from pyproject.toml) into a virtualenv.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install --no-cache-dir .

# Run: the virtualenv, the entry points, nothing else.
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    INSTANCE_PATH=/app/instance
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY wsgi.py gunicorn.conf.py ./
COPY docker/entrypoint.sh /usr/local/bin/entrypoint
RUN mkdir -p /app/instance && chown app:app /app/instance
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]
ENTRYPOINT ["entrypoint"]
CMD ["gunicorn", "wsgi:app"]
