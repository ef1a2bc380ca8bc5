# One image for every Kefu service; the command picks the service:
#   python -m services.intake | services.need_analyzer | services.feedback | services.improvement
#   | services.webhooks | services.console
#   kefu setup   (database roles, schemas, migrations and the broker topology; once per release)
# An exact base tag, and every dependency from requirements.lock with its hashes (`make lock`
# regenerates it): the same sources build the same image.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KEFU_HOST=0.0.0.0 \
    KEFU_CACHE_DIR=/tmp/kefu-cache \
    PATH=/opt/kefu/bin:$PATH

WORKDIR /src
COPY requirements.lock ./
# The locked setuptools first: jieba and snownlp come as source only and are built with it.
RUN python -m venv /opt/kefu \
    && sed -n '/^setuptools==/,/^[^ ]/{/^setuptools==/p;/^ /p}' requirements.lock > setuptools.lock \
    && pip install --require-hashes --no-deps -r setuptools.lock \
    && pip install --require-hashes --no-deps --no-build-isolation -r requirements.lock
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY deploy ./deploy
# A regular install: migrations/ and alembic.ini travel as package data, so the source tree
# is not needed at run time. Built with the locked setuptools, no download.
RUN pip install --no-deps --no-build-isolation . \
    && cd / && rm -rf /src \
    && useradd --system --uid 10001 --no-create-home kefu

WORKDIR /
USER 10001
EXPOSE 8000 8001 8002 8003 8004 8005
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('KEFU_PORT', '8000'), timeout=2)"
CMD ["python", "-m", "services.intake"]
