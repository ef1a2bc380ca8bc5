from services.improvement.bootstrap import definition
from shared.service import run

run(definition)
