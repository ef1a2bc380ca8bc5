"""Composition root of need_analyzer. The language models load here, once, at start-up."""

from services.need_analyzer.adapters import tables
from services.need_analyzer.adapters.models import OfflineModels, load_linear_model
from services.need_analyzer.domain.analyzer import TextAnalyzer
from services.need_analyzer.entrypoints.http import router
from services.need_analyzer.handlers import make_subscriptions
from shared.privacy import by_customer_column
from shared.service import ServiceDefinition
from shared.settings import get_settings

analyzer = TextAnalyzer(
    OfflineModels(get_settings().cache_dir / "need_analyzer"), load_linear_model()
)

definition = ServiceDefinition(
    name="need_analyzer",
    outbox=tables.outbox,
    inbox=tables.inbox,
    api_keys=tables.api_keys,
    erasures=tables.erasures,
    customer_tables=[by_customer_column(tables.analyses)],
    routers=[router],
    subscriptions=make_subscriptions(analyzer),
)
