"""The fault suite (`make chaos`): Kefu under load meets the faults of a real deployment.

Each scenario posts issues at a steady rate through intake while a fault is injected, then
waits for every accepted issue's `kefu.improvement.followup_required` and writes a ledger row:
attempted, accepted, lost, duplicate effects, 5xx answers, DLQ, time to recover. The suite runs
its own PostgreSQL cluster and RabbitMQ node (tests/chaos/stack.py), so stopping them never
touches the machine's shared ones. See docs/reliability.md.
"""
