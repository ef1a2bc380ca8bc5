"""What an erased customer's events keep: ids, times, ratings and analysis, none of their words."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.contracts import (
    ERASED_TEXT,
    Analysis,
    CustomerRef,
    FeedbackSubmitted,
    IssueAnalyzed,
    Sentiment,
    without_personal_data,
)

CUSTOMER = CustomerRef(customer_id=uuid.uuid4(), name="张三", email="zs@example.com", phone="+86")


def test_an_analysis_keeps_its_verdicts_not_the_words() -> None:
    analyzed = IssueAnalyzed(
        issue_id=uuid.uuid4(),
        channel="web",
        customer=CUSTOMER,
        subject="张三的订单",
        text="我是张三，我要退款",
        analysis=Analysis(
            language="zh",
            need="退款",
            intent="refund",
            sentiment=Sentiment(label="negative", score=-0.5),
            urgency="normal",
            keywords=["张三", "退款"],
        ),
        analyzer_version="v",
        analyzed_at=datetime.now(UTC),
    )
    stripped = without_personal_data(analyzed)
    assert stripped.customer == CustomerRef(customer_id=CUSTOMER.customer_id)
    assert (stripped.text, stripped.subject, stripped.analysis.keywords) == (ERASED_TEXT, None, [])
    assert stripped.analysis.intent == "refund" and stripped.issue_id == analyzed.issue_id


def test_feedback_keeps_its_rating_not_its_comment() -> None:
    feedback = FeedbackSubmitted.model_validate(
        {
            "feedback_id": str(uuid.uuid4()),
            "customer": CUSTOMER.model_dump(mode="json"),
            "rating": {"scale": "csat5", "value": 2},
            "comment": "张三不满意",
            "submitted_at": datetime.now(UTC).isoformat(),
        }
    )
    stripped = without_personal_data(feedback)
    assert stripped.comment is None and stripped.rating == feedback.rating
    assert stripped.customer is not None and stripped.customer.name is None
