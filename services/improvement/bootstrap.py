"""Composition root of improvement."""

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.improvement.adapters import tables
from services.improvement.domain.themes import Thresholds
from services.improvement.entrypoints.http import router
from services.improvement.handlers import make_subscriptions
from services.improvement.handlers.themes import theme_worker
from shared.privacy import by_customer_column
from shared.service import ServiceDefinition


class ThemeSettings(BaseSettings):
    """``KEFU_IMPROVEMENT_*``: when a theme earns a proposal (README, "Improvement")."""

    model_config = SettingsConfigDict(env_prefix="KEFU_IMPROVEMENT_", extra="ignore")
    window_days: float = 7
    baseline_days: float = 28
    min_issues: int = 10
    min_rated: int = 5
    dissatisfied_share: float = 0.4
    volume_ratio: float = 3.0
    # How often the theme worker evaluates the themes that changed: proposals follow the
    # traffic within about this long, and a hot theme costs one evaluation per interval.
    theme_interval_seconds: float = Field(default=0.5, gt=0, le=60)

    def thresholds(self) -> Thresholds:
        return Thresholds(
            window=timedelta(days=self.window_days),
            baseline=timedelta(days=self.baseline_days),
            min_issues=self.min_issues,
            min_rated=self.min_rated,
            dissatisfied_share=self.dissatisfied_share,
            volume_ratio=self.volume_ratio,
        )


settings = ThemeSettings()
definition = ServiceDefinition(
    name="improvement",
    outbox=tables.outbox,
    inbox=tables.inbox,
    api_keys=tables.api_keys,
    erasures=tables.erasures,
    customer_tables=[by_customer_column(tables.issues), by_customer_column(tables.followups)],
    routers=[router],
    subscriptions=make_subscriptions(),
    workers=[theme_worker(settings.thresholds(), settings.theme_interval_seconds)],
)
