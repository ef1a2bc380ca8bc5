"""The seed's last step: improve product and service for every customer who is not satisfied."""

from __future__ import annotations

import re

from shared.contracts import Verdict

_CJK = re.compile(r"[\u3400-\u9fff]")


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
