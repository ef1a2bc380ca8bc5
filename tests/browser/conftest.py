"""The console in a real headless browser: Debian's chromium driven through chromium-driver by
selenium (nothing downloads a browser). The whole system runs as processes on an isolated
database and vhost, with the seed's customers and a theme that earns a proposal.

Screenshots of every page go to ``tests/browser/screenshots/`` (or ``KEFU_SCREENSHOTS``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from deploy import keys
from deploy.launcher import ServiceProcesses
from deploy.seed import post_seed
from shared.settings import RUNNABLE, SERVICES
from tests.conftest import _print_errors
from tests.support import BOOTSTRAP_KEY, free_port, isolated_stack

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = Path(os.environ.get("KEFU_SCREENSHOTS", Path(__file__).parent / "screenshots"))
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
DELIVERY_TEXTS = ("我的快递还没到，物流太慢了", "快递三天了还没发货", "包裹一直没有送到")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (make test installs them as root)",
)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check``; a page that is being swapped (htmx) or loaded only delays it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (StaleElementReferenceException, NoSuchElementException, StopIteration):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.2)


@dataclass
class ConsoleStack:
    group: ServiceProcesses
    admin_url: str
    seed: dict[str, str]  # customer name -> issue id

    def url(self, service: str) -> str:
        return self.group.url(service)

    def api(self, service: str) -> httpx.Client:
        return httpx.Client(base_url=self.url(service), headers=AUTH, timeout=10)

    def key(self, name: str, scopes: list[str]) -> str:
        return keys.create(self.admin_url, name, scopes, SERVICES)


def _delivery_theme(stack: ConsoleStack, count: int = 12) -> None:
    """Dissatisfied customers of one intent: enough for improvement to propose a change."""
    with stack.api("intake") as intake:
        items = [
            {
                "channel": "web",
                "external_id": f"delivery-{n}",
                "customer": {"name": f"客户{n}", "email": f"delivery{n}@example.com"},
                "text": DELIVERY_TEXTS[n % len(DELIVERY_TEXTS)],
            }
            for n in range(count)
        ]
        answer = intake.post("/v1/issues/batch", json={"items": items})
        assert answer.status_code == 200, answer.text
        for result in answer.json()["results"]:
            posted = intake.post(
                "/v1/feedback",
                json={"issue_id": result["issue_id"], "rating": {"scale": "csat5", "value": 1}},
            )
            assert posted.status_code == 202, posted.text


@pytest.fixture(scope="package")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    log_dir = tmp_path_factory.mktemp("console-logs")
    with isolated_stack() as settings:
        group = ServiceProcesses(
            settings,
            env={
                "KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY,
                "KEFU_OUTBOX_POLL_SECONDS": "0.5",
                "KEFU_LOG_JSON": "false",
                "KEFU_API_KEY_CACHE_SECONDS": "0",
                "KEFU_IMPROVEMENT_THEME_INTERVAL_SECONDS": "0.2",
            },
            ports={service: free_port() for service in RUNNABLE},
            services=RUNNABLE,
            log_dir=log_dir,
        )
        group.start_all()
        try:
            group.wait_ready(timeout=90)
            seeded = post_seed(group.url("intake"), BOOTSTRAP_KEY)
            ids = {line.split(":")[0]: line.split(": ")[1].split(" ")[0] for line in seeded}
            stack = ConsoleStack(group, settings.admin_database_url, ids)
            _delivery_theme(stack)
            with stack.api("improvement") as improvement:
                wait_for(
                    lambda: any(
                        (item["theme_kind"], item["theme_key"]) == ("intent", "delivery")
                        for item in improvement.get("/v1/improvements").json()["items"]
                    ),
                    "a proposal for the delivery theme",
                    timeout=60,
                )
                wait_for(
                    lambda: (
                        len(improvement.get("/v1/followups", params={"limit": 200}).json()["items"])
                        >= 13
                    ),
                    "every follow-up",
                )
            yield stack
        finally:
            group.stop_all()
            _print_errors(log_dir)


def _driver(width: int = 1280) -> webdriver.Chrome:
    options = Options()
    assert CHROMIUM and CHROMEDRIVER
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},1000",
    ):
        options.add_argument(argument)
    # The language a Chinese reader's browser asks for.
    options.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh,en"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    driver = _driver()
    try:
        yield driver
    finally:
        driver.quit()


PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}


@pytest.fixture
def phone() -> Iterator[webdriver.Chrome]:
    """A 390-pixel-wide phone viewport (Chrome's own window cannot be that narrow)."""
    driver = _driver(width=600)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """The whole page (the window grows to its height), saved under SCREENSHOTS."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    phone = driver.execute_script("return window.innerWidth") <= PHONE["width"]
    width = driver.get_window_size()["width"]
    if phone:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**PHONE, "height": 600})
    else:
        driver.set_window_size(width, 600)  # a page never looks shorter than the window
    height = min(int(driver.execute_script("return document.documentElement.scrollHeight")), 4000)
    if phone:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**PHONE, "height": height})
    else:
        driver.set_window_size(width, height + 120)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot of {name}"
    return path
