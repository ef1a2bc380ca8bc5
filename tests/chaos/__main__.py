"""`make chaos` (python -m tests.chaos): run the scenarios, print and write the ledger."""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from tests.chaos.harness import Kefu, Ledger, Tap, markdown, run_scenario, running_kefu, say
from tests.chaos.scenarios import SCENARIOS

RESULTS = Path(__file__).resolve().parent / "results"


async def run(args: argparse.Namespace, kefu: Kefu) -> list[Ledger]:
    chosen = [
        s
        for s in SCENARIOS
        if (not args.only or any(o in s.name for o in args.only))
        and not any(skipped in s.name for skipped in args.skip or ())
    ]
    ledgers = []
    tap = Tap(kefu.settings.amqp_url)
    await tap.start()
    try:
        for scenario in chosen:
            ledger = await run_scenario(
                kefu,
                tap,
                scenario.name,
                scenario.fault,
                rate=args.rate,
                seconds=args.seconds,
                fault_at=scenario.fault_at,
                allow_503=scenario.allow_503,
                copies_expected=scenario.copies_expected,
            )
            row = json.dumps(ledger.row(), ensure_ascii=False)
            say(f"{'pass' if ledger.passed else 'FAIL'}: {row}")
            ledgers.append(ledger)
    finally:
        await tap.close()
    return ledgers


def main() -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__)
    parser.add_argument("--rate", type=float, default=50.0, help="issues posted per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="posting time per scenario")
    parser.add_argument("--only", nargs="*", help="run the scenarios whose name contains these")
    parser.add_argument("--skip", nargs="*", help="leave out the scenarios whose name has these")
    parser.add_argument("--keep", action="store_true", help="keep the stack's folder (logs)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="kefu-chaos-"))
    home.chmod(0o755)
    try:
        with running_kefu(home) as kefu:
            ledgers = asyncio.run(run(args, kefu))
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            say(f"kept {home}")
    table = markdown(ledgers)
    print(f"\n{table}\n")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = {
        "when": stamp,
        "machine": {"cpus": platform.machine(), "python": platform.python_version()},
        "rate": args.rate,
        "seconds": args.seconds,
        "scenarios": [ledger.row() for ledger in ledgers],
    }
    (RESULTS / f"ledger-{stamp}.json").write_text(json.dumps(record, indent=2, ensure_ascii=False))
    (RESULTS / f"ledger-{stamp}.md").write_text(table + "\n")
    failed = [ledger.scenario for ledger in ledgers if not ledger.passed]
    say(f"ledger written to {RESULTS}/ledger-{stamp}.md")
    if failed:
        say(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
