"""Whatever a channel sends, intake answers with a 2xx or a 4xx problem, never a 5xx."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy.launcher import ServiceProcesses
from tests.support import BOOTSTRAP_KEY

pytestmark = pytest.mark.e2e

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
customers = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=30) | st.integers(),
        "email": st.emails().map(str) | st.text(max_size=30),
        "phone": st.from_regex(r"\+?[0-9 ()-]{0,20}", fullmatch=True),
        "external_id": st.text(max_size=20),
    },
)
issues = st.fixed_dictionaries(
    {},
    optional={
        "channel": st.sampled_from(["email", "chat", "fax", ""]) | json_values,
        "external_id": st.text(max_size=30) | json_values,
        "customer": customers | json_values,
        "text": st.text(max_size=200) | json_values,
        "subject": st.text(max_size=30) | st.none(),
        "occurred_at": st.datetimes().map(str) | st.text(max_size=20),
        "language": st.sampled_from(["zh", "en-US", "x", "中文"]),
        "metadata": json_values,
    },
)
PATHS = ["/v1/issues", "/v1/feedback", "/v1/issues/batch"]


@pytest.fixture(scope="module")
def client(services: ServiceProcesses) -> Any:
    with httpx.Client(
        base_url=services.url("intake"), headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
    ) as client:
        yield client


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=issues | json_values, path=st.sampled_from(PATHS))
def test_no_body_gives_a_server_error(client: httpx.Client, body: Any, path: str) -> None:
    if path.endswith("batch") and isinstance(body, dict):
        body = {"items": [body]}
    response = client.post(path, json=body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
