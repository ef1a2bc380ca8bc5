from services.console.bootstrap import run

run()
