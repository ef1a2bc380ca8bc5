"""The `kefu` command: set-up, API keys, running locally, dead-letter queues."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from datetime import UTC, datetime

import httpx

from deploy import (
    broker,
    broker_users,
    database,
    dlq,
    keys,
    launcher,
    local_broker,
    seed,
    setup_wait,
)
from shared.auth import SCOPES, check_scopes
from shared.messaging.topology import CONSUMES
from shared.settings import DEFAULT_PORTS, RUNNABLE, SERVICES, get_settings


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _services(values: list[str] | None) -> tuple[str, ...]:
    return tuple(values) if values else SERVICES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kefu", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser(
        "setup",
        help="create database, roles and schemas, migrate, then declare the broker topology",
    )
    commands.add_parser(
        "topology", help="declare exchange, service queues and bindings, DLQs, archive"
    )
    commands.add_parser("bootstrap", help="create database, roles and schemas only")
    wait_setup = commands.add_parser(
        "wait-setup",
        help="wait until set-up has migrated a service's schema and made its broker user",
    )
    wait_setup.add_argument("service", choices=SERVICES)
    wait_setup.add_argument("--timeout", type=float, default=600.0, help="seconds")
    migrate = commands.add_parser(
        "migrate", help="apply migrations, each as the owner of its service's schema"
    )
    migrate.add_argument("--service", action="append", choices=SERVICES)

    run = commands.add_parser("run", help="run services in the foreground (Ctrl-C stops them)")
    run.add_argument("--service", action="append", choices=RUNNABLE)
    run.add_argument(
        "--seed", action="store_true", help="post the seed's two customers once ready (make run)"
    )

    seed_cmd = commands.add_parser(
        "seed", help="post the seed's two customers through intake (idempotent)"
    )
    seed_cmd.add_argument(
        "--intake-url", default=f"http://127.0.0.1:{DEFAULT_PORTS['intake']}", help="intake"
    )
    seed_cmd.add_argument("--api-key", help="a key with issues:write (default: the bootstrap key)")

    key_cmd = commands.add_parser("keys", help="API keys").add_subparsers(
        dest="action", required=True
    )
    create = key_cmd.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scopes", required=True, help=f"comma-separated, from: {', '.join(SCOPES)}"
    )
    create.add_argument(
        "--service",
        action="append",
        choices=SERVICES,
        help="services that accept the key (default: all)",
    )
    key_cmd.add_parser("list", help="list keys (never the keys themselves)")
    revoke = key_cmd.add_parser("revoke", help="revoke by key, key prefix or name")
    revoke.add_argument("key")

    reanalyze = commands.add_parser(
        "reanalyze", help="re-run stored issues through the current analyzer and publish them"
    )
    reanalyze.add_argument("--since", type=_aware, help="received at or after (ISO 8601)")
    reanalyze.add_argument("--until", type=_aware, help="received before (ISO 8601)")
    reanalyze.add_argument("--batch-size", type=int, default=200)

    dlq_cmd = commands.add_parser("dlq", help="dead-letter queues").add_subparsers(
        dest="action", required=True
    )
    show = dlq_cmd.add_parser("show", help="list what is in a service's DLQ")
    show.add_argument("service", choices=SERVICES)
    show.add_argument("--limit", type=int, default=20)
    replay = dlq_cmd.add_parser("replay", help="send a DLQ's messages back to the service")
    replay.add_argument("service", choices=SERVICES)
    replay.add_argument("--limit", type=int)
    scrub = dlq_cmd.add_parser(
        "scrub", help="strip erased customers' data from the events waiting in the DLQs"
    )
    scrub.add_argument("--service", action="append", choices=SERVICES)

    args = parser.parse_args(argv)
    settings = get_settings()
    admin = settings.admin_database_url
    if args.command in ("run", "dlq"):
        # After local set-up, every service and the CLI connect as their own broker users.
        settings = local_broker.use_own_users(settings, os.environ)

    if args.command in ("setup", "bootstrap"):
        database.bootstrap(admin, settings.db_passwords())
        if args.command == "setup":
            database.migrate(admin)
        print(f"database ready: {admin.rsplit('/', 1)[-1]}")
        if args.command == "setup":
            print(f"broker ready: {', '.join(broker.declare_sync(settings))}")
            if settings.amqp_user_prefix is not None:
                users = broker_users.create_users(
                    settings.management_url(),
                    settings.amqp_vhost(),
                    settings.amqp_user_prefix,
                    broker_users.passwords_from_env(settings.amqp_user_prefix),
                )
                print(f"broker users ready: {', '.join(users)}")
            elif local_broker.applies(settings):
                try:
                    users = local_broker.create_users(settings)
                except (httpx.HTTPError, RuntimeError) as exc:
                    parser.exit(
                        1,
                        f"cannot create the local broker users ({exc}); RabbitMQ's management "
                        "plugin must answer on port 15672 (deploy/local-services.sh enables it)\n",
                    )
                print(
                    f"broker users ready: {', '.join(users)} "
                    f"(local passwords in {local_broker.credentials_path()})"
                )
    elif args.command == "wait-setup":
        reason = setup_wait.wait(settings, args.service, args.timeout)
        if reason:
            print(f"kefu setup has not finished for {args.service}: {reason}", file=sys.stderr)
            return 1
        print(f"set-up done for {args.service}")
    elif args.command == "topology":
        print(f"broker ready: {', '.join(broker.declare_sync(settings))}")
    elif args.command == "migrate":
        database.migrate(admin, _services(args.service))
    elif args.command == "run":
        bootstrap_key = settings.bootstrap_api_key
        api_key = (
            bootstrap_key.get_secret_value()
            if bootstrap_key
            else ("kefu_dev_" + secrets.token_urlsafe(24))
        )
        services = tuple(args.service) if args.service else RUNNABLE
        return launcher.run_foreground(settings, services, api_key, seed=args.seed)
    elif args.command == "seed":
        bootstrap = settings.bootstrap_api_key
        key = args.api_key or (bootstrap.get_secret_value() if bootstrap else None)
        if not key:
            parser.error("give --api-key or set KEFU_BOOTSTRAP_API_KEY")
        for line in seed.post_seed(args.intake_url, key):
            print(line)
    elif args.command == "keys" and args.action == "create":
        try:
            scopes = check_scopes([s.strip() for s in args.scopes.split(",") if s.strip()])
        except ValueError as exc:
            parser.error(str(exc))
        print(keys.create(admin, args.name, scopes, _services(args.service)))
    elif args.command == "keys" and args.action == "list":
        for row in keys.list_keys(admin, SERVICES):
            row.pop("key_hash", None)
            print(json.dumps(row, default=str, ensure_ascii=False))
    elif args.command == "keys" and args.action == "revoke":
        count = keys.revoke(admin, args.key, SERVICES)
        print(f"revoked in {count} service(s)")
        return 0 if count else 1
    elif args.command == "reanalyze":
        # Imported here: it loads the analyzer's language models.
        from services.need_analyzer.entrypoints import cli as need_analyzer_cli

        done = need_analyzer_cli.run(args.since, args.until, args.batch_size)
        print(f"re-analysed {done} issue(s)")
    elif args.command == "dlq" and args.action == "show":
        for item in dlq.peek(settings.amqp_url, args.service, args.limit):
            print(json.dumps(item, ensure_ascii=False))
    elif args.command == "dlq" and args.action == "replay":
        print(f"replayed {dlq.replay(settings.amqp_url, args.service, args.limit)} message(s)")
    elif args.command == "dlq" and args.action == "scrub":
        consumers = tuple(args.service or (s for s, types in CONSUMES.items() if types))
        stripped = dlq.scrub(settings.amqp_url, admin, consumers, settings.amqp_user_prefix)
        for service, count in stripped.items():
            print(f"{service}: {count} event(s) stripped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
