from services.feedback.bootstrap import definition
from shared.service import run

run(definition)
