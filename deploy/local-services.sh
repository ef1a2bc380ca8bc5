#!/usr/bin/env bash
# Starts this machine's PostgreSQL and RabbitMQ if they are installed here and not answering.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 1; done
  echo "port $1 did not open" >&2; return 1
}

if ! port_open 5432 && command -v pg_ctlcluster >/dev/null; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_port 5432
fi
if ! port_open 5672 && command -v rabbitmq-server >/dev/null; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached
  wait_port 5672
fi
# The tests run several services, each with its own pools, beside their own clients: Debian's
# default of 100 connections is too few. Raised once (ALTER SYSTEM persists it), then restarted.
if port_open 5432 && command -v pg_ctlcluster >/dev/null; then
  connections="$(psql -h 127.0.0.1 -U postgres -Atc 'SHOW max_connections' 2>/dev/null || echo 0)"
  if [ "${connections:-0}" -lt 400 ] 2>/dev/null; then
    echo "raising PostgreSQL's max_connections from ${connections} to 400"
    psql -h 127.0.0.1 -U postgres -qc 'ALTER SYSTEM SET max_connections = 400'
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main restart
    wait_port 5432
  fi
fi
# The management HTTP API: `kefu setup` creates the broker users and permissions through it.
if port_open 5672 && ! port_open 15672 && command -v rabbitmq-plugins >/dev/null; then
  echo "enabling RabbitMQ's management plugin"
  rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null
  wait_port 15672
fi
