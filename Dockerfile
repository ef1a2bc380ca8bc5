# One image for every Kefu service; the command picks the service:
#   python -m services.intake | services.need_analyzer | services.feedback | services.improvement
#   | services.console
#   kefu setup   (database roles, schemas, migrations and the broker topology; once per release)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KEFU_HOST=0.0.0.0 \
    KEFU_CACHE_DIR=/tmp/kefu-cache

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY deploy ./deploy
# Editable, so that each service's migrations/ and alembic.ini stay where deploy/ looks for them.
RUN pip install -e . \
    && useradd --system --uid 10001 --no-create-home kefu

USER kefu
EXPOSE 8000 8001 8002 8003 8004
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('KEFU_PORT', '8000'), timeout=2)"
CMD ["python", "-m", "services.intake"]
