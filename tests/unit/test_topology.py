"""One list of what each service consumes (shared/messaging/topology.py CONSUMES): set-up binds
from it, and every service's subscriptions must equal it."""

from __future__ import annotations

import pytest

from shared.messaging.topology import CONSUMES, binding_keys, check_subscriptions
from shared.settings import SERVICES


def _subscribed(service: str) -> set[str]:
    if service == "intake":
        from services.intake.bootstrap import definition

        return {s.type for s in definition.subscriptions}
    if service == "feedback":
        from services.feedback.handlers import subscriptions

        return {s.type for s in subscriptions}
    if service == "webhooks":
        from services.webhooks.handlers import make_subscriptions as webhook_subscriptions

        return {s.type for s in webhook_subscriptions()}
    if service == "improvement":
        from services.improvement.handlers import make_subscriptions

        return {s.type for s in make_subscriptions()}
    from services.need_analyzer.handlers import make_subscriptions as analyzer_subscriptions

    # The analyzer itself is not needed to know what is subscribed (and loads models).
    return {s.type for s in analyzer_subscriptions(None)}  # type: ignore[arg-type]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_subscribes_to_exactly_what_set_up_binds(service: str) -> None:
    assert _subscribed(service) == set(CONSUMES[service])
    check_subscriptions(service, _subscribed(service))


def test_every_service_is_listed() -> None:
    assert set(CONSUMES) == set(SERVICES)


def test_a_service_that_disagrees_refuses_to_start() -> None:
    with pytest.raises(RuntimeError, match="CONSUMES lists"):
        check_subscriptions("need_analyzer", ["kefu.issue.received", "kefu.issue.resolved"])


def test_binding_keys_are_the_types_without_the_prefix() -> None:
    assert binding_keys(CONSUMES["feedback"]) == [
        "customer.erased",
        "feedback.submitted",
        "issue.analyzed",
        "issue.received",
    ]
