from services.need_analyzer.adapters.tables import metadata
from shared.migrations import run_migrations

run_migrations(metadata, "need_analyzer")
