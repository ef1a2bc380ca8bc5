"""Contacts as a key without customers:read sees them."""

from __future__ import annotations

import uuid

from shared.contracts import CustomerRef
from shared.privacy import mask_email, mask_phone, shown_to


def test_the_issues_examples() -> None:
    assert mask_email("zhangsan@example.com") == "z***@example.com"
    assert mask_phone("13800138000") == "138****8000"
    assert mask_phone("+8613800138004") == "+86138****8004"
    assert mask_phone("12345") == "***45"


def test_a_customer_is_masked_unless_the_key_reads_customers() -> None:
    customer = CustomerRef(
        customer_id=uuid.uuid4(),
        name="张三",
        email="zhangsan@example.com",
        phone="+8613800138000",
        external_id="wx-123456",
    )
    shown = shown_to(customer, frozenset({"improvements:read"}))
    assert shown is not None
    assert (shown.name, shown.email, shown.phone, shown.external_id) == (
        "张*",
        "z***@example.com",
        "+86138****8000",
        "w***",
    )
    assert shown.customer_id == customer.customer_id
    assert shown_to(customer, frozenset({"customers:read"})) == customer
    assert shown_to(None, frozenset()) is None
