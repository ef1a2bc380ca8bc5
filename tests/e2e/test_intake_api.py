"""intake's contract at the HTTP boundary of the running process: every bad input is a 4xx."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from deploy import keys
from deploy.launcher import ServiceProcesses
from shared.settings import SERVICES, Settings
from tests.support import BOOTSTRAP_KEY, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


def issue(**change: Any) -> dict[str, Any]:
    body = {
        "channel": "web",
        "external_id": f"api-{uuid.uuid4()}",
        "customer": {"name": "王五", "email": "wangwu@example.com"},
        "text": "How do I change my password?",
    }
    body.update(change)
    return body


@pytest_asyncio.fixture(loop_scope="session")
async def client(services: ServiceProcesses) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=services.url("intake"), headers=AUTH) as client:
        yield client


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        assert body["field"] == field, body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in issue().items() if k != "text"}, "text"),
        ({k: v for k, v in issue().items() if k != "external_id"}, "external_id"),
        ({k: v for k, v in issue().items() if k != "customer"}, "customer"),
        (issue(priority="high"), "priority"),
        (issue(channel="fax"), "channel"),
        (issue(text=42), "text"),
        (issue(text="   "), "text"),
        (issue(text="长" * 20_001), "text"),
        (issue(customer={"name": "无联系方式"}), "customer"),
        (issue(customer={"email": "not-an-email"}), "customer.email"),
        (issue(customer={"phone": "12345"}), "customer.phone"),
        (issue(customer={"email": "a@example.com", "age": 3}), "customer.age"),
        (issue(occurred_at="yesterday"), "occurred_at"),
        (issue(occurred_at="2026-01-01T10:00:00"), "occurred_at"),
        (issue(language="not a tag!"), "language"),
        (issue(language="en-" + "-".join(["abcdefgh"] * 5)), "language"),
        (issue(text="null\x00byte"), "text"),
        (issue(customer={"email": "a@example.com", "name": "x\x00"}), "customer.name"),
        (issue(metadata={"k\x00": 1}), "metadata"),
        (issue(occurred_at="0001-01-01T00:00:00+01:00"), "occurred_at"),
        ([1, 2], "body"),
    ],
)
async def test_bad_issue_bodies_name_the_field(
    client: httpx.AsyncClient, body: Any, field: str
) -> None:
    assert_problem(await client.post("/v1/issues", json=body), 422, field)


async def test_malformed_json_and_oversized_body(client: httpx.AsyncClient) -> None:
    json_type = {"content-type": "application/json"}
    assert_problem(await client.post("/v1/issues", content=b"{not json", headers=json_type), 422)
    # Python's JSON reader takes NaN and Infinity; PostgreSQL's jsonb does not.
    body = json.dumps(issue(metadata={"score": 1})).replace('"score": 1', '"score": NaN')
    assert_problem(
        await client.post("/v1/issues", content=body, headers=json_type), 422, "metadata"
    )
    assert_problem(await client.post("/v1/issues", json=issue(text="x" * 1_100_000)), 413)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b" " * 100_000
        yield json.dumps(issue()).encode()

    assert_problem(await client.post("/v1/issues", content=chunked(), headers=json_type), 413)


async def test_same_key_different_body_is_a_conflict(client: httpx.AsyncClient) -> None:
    body = issue()
    assert (await client.post("/v1/issues", json=body)).status_code == 202
    assert_problem(
        await client.post("/v1/issues", json={**body, "text": "other"}), 409, "external_id"
    )


async def test_customers_match_across_channels(client: httpx.AsyncClient) -> None:
    email = f"zhao-{uuid.uuid4().hex[:6]}@example.com"
    first = await client.post("/v1/issues", json=issue(customer={"email": email}))
    second = await client.post(
        "/v1/issues",
        json=issue(
            channel="phone",
            customer={"email": email.upper(), "phone": "13700137000", "name": "赵六"},
        ),
    )
    a = (await client.get(f"/v1/issues/{first.json()['issue_id']}")).json()["customer"]
    b = (await client.get(f"/v1/issues/{second.json()['issue_id']}")).json()["customer"]
    assert a["customer_id"] == b["customer_id"]
    assert b["phone"] == "+8613700137000" and b["name"] == "赵六"


async def test_batch_reports_each_item(client: httpx.AsyncClient) -> None:
    good = issue()
    response = await client.post(
        "/v1/issues/batch",
        json={
            "items": [
                good,
                issue(text=""),
                good,
                {**good, "text": "changed"},
                issue(customer={"phone": "1"}),
            ]
        },
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202, 422, 200, 409, 422]
    assert results[1]["problem"]["field"] == "items[1].text"
    assert results[4]["problem"]["field"] == "items[4].customer.phone"
    assert results[0]["issue_id"] == results[2]["issue_id"]
    assert_problem(await client.post("/v1/issues/batch", json={"items": []}), 422, "items")
    assert_problem(
        await client.post("/v1/issues/batch", json={"items": [good] * 101}), 422, "items"
    )


async def test_feedback_validation(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/v1/feedback", json={"comment": "ok"}), 422)
    assert_problem(
        await client.post("/v1/feedback", json={"issue_id": str(uuid.uuid4()), "comment": "ok"}),
        422,
        "issue_id",
    )
    for bad in (
        {"scale": "csat5", "value": 3, "comment": "unknown field"},
        {"scale": "csat5", "value": 6},
        {"scale": "nps10", "value": -1},
        {"scale": "stars", "value": 3},
    ):
        response = await client.post(
            "/v1/feedback", json={"customer": {"email": "a@example.com"}, "rating": bad}
        )
        assert_problem(response, 422)
        assert response.json()["field"].startswith("rating")
    body = {
        "customer": {"email": "a@example.com"},
        "comment": "满意度为中",
        "channel": "sms",
        "external_id": f"fb-{uuid.uuid4()}",
    }
    first = await client.post("/v1/feedback", json=body)
    assert first.status_code == 202
    again = await client.post("/v1/feedback", json=body)
    assert again.status_code == 200 and again.json()["feedback_id"] == first.json()["feedback_id"]
    assert_problem(await client.post("/v1/feedback", json={**body, "comment": "x"}), 409)


async def test_unknown_issue_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/v1/issues/{uuid.uuid4()}"), 404)
    assert_problem(await client.get("/v1/issues/not-a-uuid"), 422, "issue_id")
    assert_problem(
        await client.post(
            f"/v1/issues/{uuid.uuid4()}/resolution", json={"resolved_by": "a", "summary": "b"}
        ),
        404,
    )


async def test_keys_and_scopes(services: ServiceProcesses, stack: Settings) -> None:
    url = services.url("intake")
    async with httpx.AsyncClient(base_url=url) as anonymous:
        assert_problem(await anonymous.post("/v1/issues", json=issue()), 401)
        assert_problem(
            await anonymous.post(
                "/v1/issues", json=issue(), headers={"Authorization": "Bearer wrong"}
            ),
            401,
        )
        assert_problem(
            await anonymous.get(
                f"/v1/issues/{uuid.uuid4()}", headers={"Authorization": "Basic abc"}
            ),
            401,
        )
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await anonymous.get(path)).status_code == 200
    reader = await asyncio.to_thread(
        keys.create, stack.admin_database_url, "reader", ["issues:read"], SERVICES
    )
    headers = {"Authorization": f"Bearer {reader}"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        assert_problem(await client.post("/v1/issues", json=issue()), 403)
        assert_problem(await client.get(f"/v1/issues/{uuid.uuid4()}"), 404)
        assert await asyncio.to_thread(keys.revoke, stack.admin_database_url, reader, SERVICES)
        assert_problem(await client.get(f"/v1/issues/{uuid.uuid4()}"), 401)


async def test_database_down_gives_503_never_2xx(stack: Settings) -> None:
    """An intake whose database is unreachable refuses with 503 (and says it is not ready)."""
    group = ServiceProcesses(
        stack,
        env={
            "KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY,
            "KEFU_DB_TIMEOUT_SECONDS": "1",
            "KEFU_DATABASE_URL": "postgresql+asyncpg://kefu_intake@127.0.0.1:1/kefu",
        },
        ports={"intake": free_port()},
        services=("intake",),
    )
    group.start("intake")
    try:
        async with httpx.AsyncClient(base_url=group.url("intake"), headers=AUTH) as client:
            await wait_until(lambda: _answers(client), what="intake answering")
            assert_problem(await client.post("/v1/issues", json=issue()), 503)
            assert (await client.get("/readyz")).status_code == 503
    finally:
        group.stop_all()


async def test_overload_is_refused_quickly_as_busy_never_a_timeout(stack: Settings) -> None:
    """One connection and a 20 ms wait: a burst gets 202s and 503 'busy' with Retry-After."""
    group = ServiceProcesses(
        stack,
        env={
            "KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY,
            "KEFU_DB_POOL_SIZE": "1",
            "KEFU_DB_WAIT_SECONDS": "0.02",
        },
        ports={"intake": free_port()},
        services=("intake",),
    )
    group.start("intake")
    try:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(
            base_url=group.url("intake"), headers=AUTH, limits=limits, timeout=10
        ) as client:
            await wait_until(lambda: _answers(client), what="intake answering")
            responses = await asyncio.gather(
                *(client.post("/v1/issues", json=issue()) for _ in range(200))
            )
    finally:
        group.stop_all()
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {202, 503}, statuses
    assert 202 in statuses
    busy = [response for response in responses if response.status_code == 503]
    assert busy, "200 requests at once on one connection: some must wait too long"
    for response in busy:
        assert_problem(response, 503)
        assert response.headers["retry-after"] == "1"
        assert response.json()["title"] == "Service busy"
        assert "busy" in response.json()["detail"]


async def _answers(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def test_the_lean_issue_route_keeps_the_documented_contract(
    client: httpx.AsyncClient,
) -> None:
    """POST /v1/issues is served by a plain ASGI endpoint (SubmitIssueRoute); the FastAPI
    route behind it documents it. The two must not drift apart."""
    spec = (await client.get("/openapi.json")).json()
    documented = spec["paths"]["/v1/issues"]["post"]
    assert {"200", "202", "401", "403", "409", "413", "422", "503"} <= set(documented["responses"])
    accepted = await client.post("/v1/issues", json=issue())
    assert accepted.status_code == 202
    assert accepted.headers["content-type"] == "application/json"
    assert set(accepted.json()) == {"issue_id", "status", "duplicate"}
    refused = await client.post("/v1/issues", json=issue(channel="fax"))
    assert_problem(refused, 422, "channel")
    assert refused.json()["instance"] == "/v1/issues"
    metrics = (await client.get("/metrics")).text
    assert 'handler="/v1/issues",method="POST",status="2xx"' in metrics
    assert 'handler="/v1/issues",method="POST",status="4xx"' in metrics


async def test_issues_are_listed_filtered_and_paged(client: httpx.AsyncClient) -> None:
    word = f"paging{uuid.uuid4().hex[:8]}"
    posted = []
    for index in range(3):
        answer = await client.post(
            "/v1/issues", json=issue(text=f"{word} 退款 {index}", channel="sms")
        )
        posted.append(answer.json()["issue_id"])
    first = await client.get("/v1/issues", params={"q": word, "limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert [item["issue_id"] for item in page["items"]] == posted[::-1][:2]
    assert page["items"][0]["customer"]["name"] == "王五" and page["next_cursor"]
    rest = (
        await client.get(
            "/v1/issues", params={"q": word, "limit": 2, "cursor": page["next_cursor"]}
        )
    ).json()
    assert [item["issue_id"] for item in rest["items"]] == [posted[0]] and not rest["next_cursor"]
    chinese = (await client.get("/v1/issues", params={"q": "退款", "channel": "sms"})).json()
    assert set(posted) <= {item["issue_id"] for item in chinese["items"]}
    resolved = (await client.get("/v1/issues", params={"q": word, "status": "resolved"})).json()
    assert resolved["items"] == []
    assert_problem(await client.get("/v1/issues", params={"cursor": "x"}), 422, "cursor")
    assert_problem(await client.get("/v1/issues", params={"channel": "fax"}), 422, "channel")
    assert_problem(
        await client.get("/v1/issues", params={"received_since": "2026-11-01T00:00:00"}),
        422,
        "received_since",
    )
    assert_problem(
        await client.get(
            "/v1/issues",
            params={
                "received_since": "2026-11-02T00:00:00Z",
                "received_until": "2026-11-01T00:00:00Z",
            },
        ),
        422,
        "received_until",
    )
    async with httpx.AsyncClient(base_url=str(client.base_url)) as anonymous:
        assert (await anonymous.get("/v1/issues")).status_code == 401
