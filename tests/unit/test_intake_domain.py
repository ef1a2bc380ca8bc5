import pytest
from pydantic import ValidationError

from services.intake.domain.commands import SubmitFeedback, SubmitIssue
from services.intake.domain.customers import normalize_email, normalize_phone
from shared.errors import InvalidInput

SEED = {
    "channel": "email",
    "external_id": "m-1",
    "customer": {"name": "张三", "phone": "13800138000", "email": "zhangsan@example.com"},
    "text": "需要更快的响应速度",
}


def test_phone_numbers_normalise_to_e164_with_the_default_region() -> None:
    assert normalize_phone("13800138000", "CN") == "+8613800138000"
    assert normalize_phone("+86 138-0013-8000", "US") == "+8613800138000"
    assert normalize_phone("(650) 253-0000", "US") == "+16502530000"


@pytest.mark.parametrize("raw", ["123", "not a phone", "+86 1"])
def test_bad_phone_names_the_field(raw: str) -> None:
    with pytest.raises(InvalidInput) as err:
        normalize_phone(raw, "CN")
    assert err.value.field == "customer.phone"


def test_email_normalised_and_checked() -> None:
    assert normalize_email(" ZhangSan@Example.COM ") == "zhangsan@example.com"
    with pytest.raises(InvalidInput) as err:
        normalize_email("zhangsan@")
    assert err.value.field == "customer.email"


def test_fingerprint_tells_retries_from_changed_bodies() -> None:
    first = SubmitIssue.model_validate(SEED)
    assert first.fingerprint() == SubmitIssue.model_validate(dict(SEED)).fingerprint()
    changed = SubmitIssue.model_validate({**SEED, "text": "需要退款"})
    assert changed.fingerprint() != first.fingerprint()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"extra": 1}, "extra"),
        ({"text": ""}, "text"),
        ({"text": "x" * 20_001}, "text"),
        ({"channel": "fax"}, "channel"),
        ({"customer": {"name": "无联系方式"}}, "customer"),
    ],
)
def test_commands_refuse_bad_bodies(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        SubmitIssue.model_validate({**SEED, **change})
    assert err.value.errors()[0]["loc"][0] == field


def test_feedback_needs_a_target_and_content() -> None:
    with pytest.raises(ValidationError):
        SubmitFeedback.model_validate({"comment": "ok"})
    with pytest.raises(ValidationError):
        SubmitFeedback.model_validate({"issue_id": "6f1c1f9e-0000-4000-8000-000000000000"})
