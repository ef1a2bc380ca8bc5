from services.need_analyzer.bootstrap import definition
from shared.service import run

run(definition)
