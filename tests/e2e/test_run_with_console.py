"""What a new user does: `kefu run --seed` (make run) prints the console's URL and the key, the
seed's customers are posted, and signed in with that key the console shows 张三's need and
李四's follow-up. `kefu seed` again changes nothing."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from deploy.launcher import ROOT
from shared.settings import RUNNABLE, Settings
from tests.e2e.test_supervisor import kefu_run, stack  # noqa: F401 (the module's stack)
from tests.support import BOOTSTRAP_KEY, free_port

pytestmark = pytest.mark.e2e


def signed_in(console: str) -> httpx.Client:
    client = httpx.Client(base_url=console, timeout=10)
    form = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post(
        "/login", data={"api_key": BOOTSTRAP_KEY, "login_token": token.group(1), "next": "/"}
    )
    assert answer.status_code == 303, answer.text
    return client


def wait_for_text(client: httpx.Client, path: str, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in (page := client.get(path)).text:
        assert time.monotonic() < deadline, f"{text!r} not on {path}: {page.status_code}"
        time.sleep(0.5)


def test_make_run_shows_the_seed_in_the_console(stack: Settings, tmp_path: Path) -> None:  # noqa: F811
    ports = {service: free_port() for service in RUNNABLE}
    log = tmp_path / "run.log"
    run = kefu_run(stack, ports, log, "--seed")
    try:
        console = f"http://127.0.0.1:{ports['console']}"
        deadline = time.monotonic() + 120
        while f"Console: {console}" not in log.read_text(errors="replace"):
            assert run.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.5)
        printed = log.read_text(errors="replace")
        assert f"API key: {BOOTSTRAP_KEY}" in printed
        assert re.search(r"张三: [0-9a-f-]{36} \(posted\)", printed), printed
        assert re.search(r"李四: [0-9a-f-]{36} \(posted\)", printed), printed

        with contextlib.closing(signed_in(console)) as client:
            wait_for_text(client, "/needs", "更快的响应速度")
            wait_for_text(client, "/followups", "李四")
            assert "lisi@example.com" in client.get("/followups").text

        again = subprocess.run(
            [
                sys.executable,
                "-m",
                "deploy.cli",
                "seed",
                "--intake-url",
                f"http://127.0.0.1:{ports['intake']}",
                "--api-key",
                BOOTSTRAP_KEY,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("(already there)") == 2, again.stdout
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(30)
