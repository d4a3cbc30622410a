# syntax=docker/dockerfile:1
# Build stage: compile every dependency into wheels once.
FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements.txt .
RUN pip wheel --wheel-dir /wheels -r requirements.txt

# Runtime stage: the wheels, the code, collected static files, a non-root user.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/app/var \
    PORT=8000 \
    SIGNALSERVER_ROLE=all
RUN useradd --system --create-home --uid 10001 signal
COPY --from=builder /wheels /wheels
RUN pip install --no-index /wheels/* && rm -rf /wheels
WORKDIR /app
COPY . .
RUN DEBUG=false SECRET_KEY=build-only ALLOWED_HOSTS=build python manage.py collectstatic --noinput -v0 \
    && mkdir -p /app/var && chown signal: /app/var
USER signal
EXPOSE 8000
VOLUME ["/app/var"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8000'), timeout=4)"
# `serve` migrates, then runs Gunicorn and/or the job cluster per SIGNALSERVER_ROLE.
CMD ["python", "manage.py", "serve"]
