"""The seed's last step: improve product and service for every customer who is not satisfied."""

from __future__ import annotations

import re

from shared.contracts import FollowupStatus, ProposalStatus, Verdict

_CJK = re.compile(r"[\u3400-\u9fff]")

# What people may do with a follow-up; a satisfied verdict also resolves an open one.
FOLLOWUP_MOVES: dict[FollowupStatus, frozenset[FollowupStatus]] = {
    "open": frozenset({"contacted", "resolved", "dismissed"}),
    "contacted": frozenset({"resolved", "dismissed", "open"}),
    "resolved": frozenset({"open"}),
    "dismissed": frozenset({"open"}),
}
PROPOSAL_MOVES: dict[ProposalStatus, frozenset[ProposalStatus]] = {
    "open": frozenset({"accepted", "rejected"}),
    "accepted": frozenset({"in_progress", "rejected"}),
    "in_progress": frozenset({"done", "rejected"}),
    "done": frozenset(),
    "rejected": frozenset(),
}
ACTIVE_PROPOSAL: frozenset[ProposalStatus] = frozenset({"open", "accepted", "in_progress"})


def needs_followup(verdict: Verdict) -> bool:
    """Only "satisfied" is satisfied (the seed): neutral and dissatisfied both get a follow-up."""
    return verdict != "satisfied"


def summary(name: str | None, language: str | None) -> str:
    """The seed's sentence, in the customer's language when it is known to be Chinese."""
    chinese = (
        language == "zh" if language and language != "und" else bool(name and _CJK.search(name))
    )
    if chinese:
        return f"改进企业产品和服务，满足{name or '该客户'}的需求"
    return f"Improve our product and service to meet the needs of {name or 'this customer'}"
