from services.webhooks.bootstrap import definition
from shared.service import run

run(definition)
