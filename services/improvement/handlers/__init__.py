"""improvement's use cases: ``followups`` (a follow-up for every customer who is not satisfied,
immediately, in the message's transaction) and ``themes`` (improvement proposals for themes that
go bad, evaluated by a worker beside the consumer)."""

from services.improvement.handlers.followups import make_subscriptions

__all__ = ["make_subscriptions"]
