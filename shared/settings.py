"""Settings from environment variables prefixed ``KEFU_`` (DESIGN.md, contract v1)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from shared.messaging.topology import DLQ_MAX_LENGTH

SERVICES = ("intake", "need_analyzer", "feedback", "improvement", "webhooks")
DEFAULT_PORTS = {
    "intake": 8000,
    "need_analyzer": 8001,
    "feedback": 8002,
    "improvement": 8003,
    "webhooks": 8005,
    "console": 8004,
}
# Guessing a key of 32 characters or more is out of reach even without a rate limit.
MIN_BOOTSTRAP_KEY_CHARS = 32
# What `kefu run` starts: the services above, and the console (no database, no queue: it only
# calls their HTTP APIs).
RUNNABLE = (*SERVICES, "console")
ADMIN_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/kefu"
# The local broker's guest user: what `kefu setup` logs in with in local development.
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEFU_", extra="ignore")

    # Where each service connects, as its own role. Unset: the local role kefu_<service>.
    database_url: str | None = None
    # Superuser connection used only by deploy tooling (roles, schemas, keys).
    admin_database_url: str = ADMIN_DATABASE_URL
    # Password given to the service roles by `kefu db bootstrap`; unset for trust auth.
    db_password: SecretStr | None = None
    amqp_url: str = DEFAULT_AMQP_URL
    # Set when every service has a broker user of its own, named <prefix><service> (`kefu
    # setup` creates them): consumers then accept an event type only from its owner's user.
    amqp_user_prefix: str | None = None
    # RabbitMQ's management API, used by `kefu setup` for users and permissions. Unset: port
    # 15672 on the broker's host, with the credentials of KEFU_AMQP_URL.
    amqp_management_url: str | None = None
    bootstrap_api_key: SecretStr | None = None

    host: str = "127.0.0.1"
    port: int | None = None
    # Where spans go (OTLP over HTTP, a base URL: spans to its /v1/traces). Unset: the standard
    # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT; neither: tracing is off (shared/tracing.py).
    otlp_endpoint: str | None = None
    log_level: str = "INFO"
    log_json: bool = True

    db_pool_size: int = 10
    db_timeout_seconds: float = 5.0
    # Longest a request waits for a free connection before it is refused as busy (503 with
    # Retry-After): back-pressure well before a client would time out.
    db_wait_seconds: float = 1.0
    # One log line per HTTP request: off by default, it costs as much as a hot request.
    access_log: bool = False
    # A consumer handles up to a batch per transaction; the prefetch window holds the next one.
    consumer_batch_size: int = 100
    prefetch: int = 200
    delivery_limit: int = 5
    # Messages a service's DLQ holds at most (then it refuses more; see topology.py).
    dlq_max_length: int = Field(default=DLQ_MAX_LENGTH, ge=1)
    publish_timeout_seconds: float = 10.0
    outbox_poll_seconds: float = 1.0
    outbox_batch_size: int = 100
    outbox_retention_days: int = 7
    # How often the gauges read from the database and the broker (outbox backlog, DLQ depth)
    # are refreshed: in the background, never per scrape.
    metrics_refresh_seconds: float = Field(default=5.0, gt=0)
    archive_max_age: str = "30D"
    archive_max_bytes: int = 5_000_000_000
    api_key_cache_seconds: float = 10.0
    # Requests per second each API key may make, with bursts up to rate_limit_burst; 0 turns
    # the limit off. Each process keeps its own buckets, so each gets 1/rate_limit_replicas of
    # the limit: set it to the number of replicas behind the service's address (`kefu run`
    # does).
    rate_limit_per_second: float = 200.0
    rate_limit_burst: int = 400
    rate_limit_replicas: int = Field(default=1, ge=1)
    # Lookups of unknown tokens (of a key's shape) each client address may cause: bursts of
    # failed_auth_burst, refilled at failed_auth_per_second; beyond, 429 without a query.
    failed_auth_per_second: float = Field(default=1.0, ge=0)
    failed_auth_burst: int = Field(default=30, ge=1)
    # While the database is away a consumer pauses; its back-off between tries is capped here,
    # so it resumes within this long of the database's return.
    consumer_retry_max_seconds: float = 5.0
    # Tries of a batch that meets a transient error while the database answers other queries
    # (a statement that always times out): then its message goes to the DLQ with the reason.
    consumer_transient_retries: int = 5
    # Longest a paused consumer holds unacked messages before it hands them back to the queue:
    # below RabbitMQ's consumer_timeout (30 min by default), which would close the channel.
    consumer_hold_seconds: float = 600.0
    # `kefu run` restarts a service that dies: after restart_backoff_seconds, doubling up to
    # restart_backoff_max_seconds, back to the start once it has stayed up
    # restart_stable_seconds; crash_loop_restarts exits within crash_loop_window_seconds stop
    # the whole run.
    restart_backoff_seconds: float = 1.0
    restart_backoff_max_seconds: float = 30.0
    restart_stable_seconds: float = 30.0
    crash_loop_restarts: int = 5
    crash_loop_window_seconds: float = 60.0

    # Where a service keeps what it may rebuild (need_analyzer: jieba's dictionary cache).
    cache_dir: Path = Path.home() / ".cache" / "kefu"
    default_phone_region: str = "CN"
    max_body_bytes: int = 1_048_576

    @field_validator("bootstrap_api_key", "db_password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("bootstrap_api_key")
    @classmethod
    def _key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_BOOTSTRAP_KEY_CHARS:
            raise ValueError(
                f"KEFU_BOOTSTRAP_API_KEY must be at least {MIN_BOOTSTRAP_KEY_CHARS} characters"
            )
        return value

    def service_database_url(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        return role_database_url(self.admin_database_url, service, self.db_password_for(service))

    def db_password_for(self, service: str) -> SecretStr | None:
        """``KEFU_DB_PASSWORD_<SERVICE>``: one secret per role. ``KEFU_DB_PASSWORD`` (one for
        all) remains for local development."""
        own = os.environ.get(f"KEFU_DB_PASSWORD_{service.upper()}")
        return SecretStr(own) if own else self.db_password

    def db_passwords(self) -> dict[str, SecretStr]:
        passwords = {service: self.db_password_for(service) for service in SERVICES}
        return {service: secret for service, secret in passwords.items() if secret is not None}

    def management_url(self) -> str:
        if self.amqp_management_url:
            return self.amqp_management_url
        amqp = urlsplit(self.amqp_url)
        scheme = "https" if amqp.scheme == "amqps" else "http"
        port = 15671 if scheme == "https" else 15672
        credentials = f"{amqp.username or 'guest'}:{amqp.password or 'guest'}@"
        return f"{scheme}://{credentials}{amqp.hostname or '127.0.0.1'}:{port}"

    def amqp_vhost(self) -> str:
        path = urlsplit(self.amqp_url).path
        return unquote(path[1:]) if len(path) > 1 else "/"

    def service_url(self, service: str) -> str:
        """Where another service answers HTTP: ``KEFU_URL_<SERVICE>``, else its local port."""
        given = os.environ.get(f"KEFU_URL_{service.upper()}")
        return given.rstrip("/") if given else f"http://127.0.0.1:{DEFAULT_PORTS[service]}"

    def service_port(self, service: str) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[service]


class WebhookSettings(BaseSettings):
    """``KEFU_WEBHOOKS_*``: read by the webhooks service and by `kefu setup`, which declares one
    delay queue per step of the retry schedule."""

    model_config = SettingsConfigDict(env_prefix="KEFU_WEBHOOKS_", extra="ignore")
    # Seconds to wait before each retry: seconds first (a receiver that restarts), then hours
    # (a receiver that is down for the night). The last step's failure fails the delivery.
    retry_schedule: str = "5,30,120,600,1800,3600,7200,14400,28800"
    # Private, loopback and link-local targets are refused (server-side request forgery)
    # unless an operator allows them (local tests, a developer's own receiver).
    allow_private_targets: bool = False
    # Every call is bounded: connecting, and the whole request with its answer.
    connect_timeout_seconds: float = 5.0
    timeout_seconds: float = 15.0
    # Consecutive failed attempts after which an endpoint is paused until someone resumes it.
    circuit_failures: int = Field(default=20, ge=1)
    # Calls in flight to one endpoint, at most (per process); a webhook may ask for fewer.
    max_in_flight: int = Field(default=8, ge=1, le=100)
    # Jobs the delivery worker takes from the broker at once (all endpoints together).
    prefetch: int = Field(default=100, ge=1)
    # How long a job for an endpoint that is at its limit waits before it is tried again.
    busy_delay_seconds: float = Field(default=1.0, gt=0)
    dispatch_poll_seconds: float = Field(default=0.5, gt=0)
    # How long the delivery log keeps what was delivered or failed for good.
    log_retention_days: float = Field(default=30, gt=0)

    @field_validator("retry_schedule")
    @classmethod
    def _schedule_is_seconds(cls, value: str) -> str:
        steps = [step.strip() for step in value.split(",") if step.strip()]
        if not steps or any(float(step) <= 0 for step in steps):
            raise ValueError("KEFU_WEBHOOKS_RETRY_SCHEDULE: positive seconds, comma-separated")
        return ",".join(steps)

    def retry_delays(self) -> list[float]:
        return [float(step) for step in self.retry_schedule.split(",")]


@lru_cache
def get_webhook_settings() -> WebhookSettings:
    return WebhookSettings()


def role_name(service: str) -> str:
    return f"kefu_{service}"


def owner_role_name(service: str) -> str:
    """The role that owns the service's schema; migrations run as it, nobody logs in as it."""
    return f"kefu_{service}_owner"


def role_database_url(admin_url: str, service: str, password: SecretStr | None) -> str:
    """The admin URL with the service's own role in place of the superuser."""
    url = make_url(admin_url).set(
        username=role_name(service),
        password=password.get_secret_value() if password else None,
    )
    return url.render_as_string(hide_password=False)


@lru_cache
def get_settings() -> Settings:
    return Settings()
