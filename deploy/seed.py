"""The seed document's two customers, posted through intake's API: `kefu seed`, and `make run`
(`kefu run --seed`) once the services are ready.

Idempotent: each issue has a fixed channel key, so posting again is answered as a duplicate and
changes nothing. The loop then does the rest: 张三's need is analysed, 李四's "满意度为中" is
evaluated as neutral and opens a follow-up.
"""

from __future__ import annotations

from typing import Any

import httpx

SEED_ISSUES: tuple[dict[str, Any], ...] = (
    {
        "channel": "email",
        "external_id": "seed-zhangsan",
        "customer": {"name": "张三", "phone": "13800138000", "email": "zhangsan@example.com"},
        "text": "需要更快的响应速度",
    },
    {
        "channel": "chat",
        "external_id": "seed-lisi",
        "customer": {"name": "李四", "phone": "13900139000", "email": "lisi@example.com"},
        "text": "满意度为中",
    },
)


def post_seed(intake_url: str, api_key: str, *, timeout: float = 10.0) -> list[str]:
    """Post the seed's issues; one line per issue: its customer, id and whether it was new."""
    lines = []
    with httpx.Client(
        base_url=intake_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout
    ) as client:
        for issue in SEED_ISSUES:
            response = client.post("/v1/issues", json=issue)
            if response.status_code not in (200, 202):
                raise RuntimeError(
                    f"intake refused the seed issue {issue['external_id']}: "
                    f"{response.status_code} {response.text[:300]}"
                )
            answer = response.json()
            state = "already there" if answer.get("duplicate") else "posted"
            lines.append(f"{issue['customer']['name']}: {answer['issue_id']} ({state})")
    return lines
