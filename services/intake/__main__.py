from services.intake.bootstrap import definition
from shared.service import run

run(definition)
