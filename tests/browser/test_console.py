"""A manager's morning in the console, in a real browser: sign in, read the overview, the needs,
call a customer back, accept a proposal, read an issue's story, switch the language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from tests.browser.conftest import ConsoleStack, screenshot, wait_for
from tests.support import BOOTSTRAP_KEY


def sign_in(driver: webdriver.Chrome, stack: ConsoleStack, key: str = BOOTSTRAP_KEY) -> None:
    driver.get(f"{stack.url('console')}/login")
    driver.find_element(By.ID, "api_key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]").click()
    wait_for(
        lambda: (
            "/login" not in driver.current_url and driver.find_elements(By.CSS_SELECTOR, "nav.main")
        ),
        "a signed-in page",
    )


def heading(driver: webdriver.Chrome) -> str:
    return str(driver.find_element(By.TAG_NAME, "h1").text)


def row_of(driver: webdriver.Chrome, name: str) -> WebElement:
    rows = driver.find_elements(By.CSS_SELECTOR, "#followups tbody tr")
    return next(row for row in rows if name in row.text)


def test_sign_in_page_refuses_an_unknown_key(
    browser: webdriver.Chrome, console_stack: ConsoleStack
) -> None:
    browser.get(f"{console_stack.url('console')}/followups")
    assert "/login" in browser.current_url  # every page needs a session
    screenshot(browser, "login")
    browser.find_element(By.ID, "api_key").send_keys("kefu_not_a_key_at_all_000000")
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    alert = wait_for(lambda: browser.find_elements(By.ID, "login-error"), "the refusal")
    assert alert[0].text == "密钥无效或已被吊销。"
    cookies = {cookie["name"]: cookie for cookie in browser.get_cookies()}
    assert "kefu_session" not in cookies


def test_overview_csat_is_the_satisfaction_summary(
    browser: webdriver.Chrome, console_stack: ConsoleStack
) -> None:
    sign_in(browser, console_stack)
    session = {c["name"]: c for c in browser.get_cookies()}["kefu_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"  # the key stays server-side
    assert BOOTSTRAP_KEY not in str(browser.get_cookies())
    assert heading(browser) == "满意度概览"
    shown = browser.find_element(By.CSS_SELECTOR, "#kpi-csat .value")
    now = datetime.now(UTC)
    with console_stack.api("feedback") as feedback:
        summary = feedback.get(
            "/v1/satisfaction/summary",
            params={"since": (now - timedelta(days=7)).isoformat(), "until": now.isoformat()},
        ).json()
    csat = summary["total"]["csat_percent"]
    assert csat is not None and summary["total"]["rated"] == 13  # 李四 and the 12 ratings
    assert float(shown.get_attribute("data-value") or "nan") == csat
    assert shown.text == f"{csat:.1f}%"
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#trend canvas"), "the trend chart")
    screenshot(browser, "overview")

    # Filters: only the chat channel (李四, neutral): no one satisfied, one rated.
    browser.get(f"{console_stack.url('console')}/?days=7&channel=chat")
    assert browser.find_element(By.CSS_SELECTOR, "#kpi-rated .value").text == "1"


def test_needs_show_zhang_sans_need_with_its_example(
    browser: webdriver.Chrome, console_stack: ConsoleStack
) -> None:
    sign_in(browser, console_stack)
    browser.find_element(By.LINK_TEXT, "客户需求").click()
    wait_for(lambda: heading(browser) == "客户需求", "the needs page")
    needs = browser.find_element(By.ID, "needs-table").text
    assert "更快的响应速度" in needs and "响应速度" in needs
    intents = browser.find_element(By.ID, "intents-table").text
    assert "物流配送" in intents and "12" in intents
    screenshot(browser, "needs")

    rows = browser.find_elements(By.CSS_SELECTOR, "#needs-table tbody tr")
    zhang_san = next(row for row in rows if "更快的响应速度" in row.text)
    example = zhang_san.find_element(By.CSS_SELECTOR, "a[href^='/issues/']")
    assert example.text == "需要更快的响应速度"
    example.click()
    wait_for(lambda: "/issues/" in browser.current_url, "张三's issue")
    assert console_stack.seed["张三"] in browser.current_url
    timeline = browser.find_element(By.CSS_SELECTOR, "ol.timeline").text
    assert "收到问题" in timeline and "已分析" in timeline and "更快的响应速度" in timeline
    screenshot(browser, "issue-zhangsan")


def test_a_follow_up_is_moved_to_contacted_in_one_click(
    browser: webdriver.Chrome, console_stack: ConsoleStack
) -> None:
    sign_in(browser, console_stack)
    browser.get(f"{console_stack.url('console')}/followups")
    li_si = row_of(browser, "李四")
    assert "13900139000" in li_si.text and "lisi@example.com" in li_si.text
    screenshot(browser, "followups")
    li_si.find_element(By.CSS_SELECTOR, "button[value=contacted]").click()
    wait_for(
        lambda: row_of(browser, "李四").get_attribute("data-status") == "contacted",
        "李四's row showing contacted",
    )
    wait_for(lambda: "已更新" in row_of(browser, "李四").text, "the row's notice")
    with console_stack.api("improvement") as improvement:
        stored = improvement.get(
            "/v1/followups", params={"issue_id": console_stack.seed["李四"]}
        ).json()["items"][0]
    assert stored["status"] == "contacted"

    # The filter by status finds it; the issue page tells the whole story.
    browser.get(f"{console_stack.url('console')}/followups?status=contacted")
    row_of(browser, "李四").find_element(By.CSS_SELECTOR, "a[href^='/issues/']").click()
    wait_for(lambda: "/issues/" in browser.current_url, "李四's issue")
    timeline = browser.find_element(By.CSS_SELECTOR, "ol.timeline").text
    for step in ("收到问题", "满意度判定", "创建回访", "回访更新"):
        assert step in timeline
    screenshot(browser, "issue-lisi")


def test_a_proposal_is_accepted(browser: webdriver.Chrome, console_stack: ConsoleStack) -> None:
    sign_in(browser, console_stack)
    browser.find_element(By.LINK_TEXT, "改进建议").click()
    wait_for(lambda: heading(browser) == "改进建议", "the improvements page")
    proposals = browser.find_elements(By.CSS_SELECTOR, "article.proposal[data-status=open]")
    proposal = next(p for p in proposals if "物流配送" in p.find_element(By.TAG_NAME, "h2").text)
    proposal_id = (proposal.get_attribute("id") or "").removeprefix("proposal-")
    screenshot(browser, "improvements")
    proposal.find_element(By.CSS_SELECTOR, "button[value=accepted]").click()
    wait_for(
        lambda: (
            browser.find_element(By.ID, f"proposal-{proposal_id}").get_attribute("data-status")
            == "accepted"
        ),
        "the proposal showing accepted",
    )
    with console_stack.api("improvement") as improvement:
        stored = improvement.get("/v1/improvements", params={"status": "accepted"}).json()
    assert [item["proposal_id"] for item in stored["items"]] == [proposal_id]


def test_language_switch_and_keyboard(
    browser: webdriver.Chrome, console_stack: ConsoleStack
) -> None:
    sign_in(browser, console_stack)
    browser.get(f"{console_stack.url('console')}/followups")
    assert heading(browser) == "待回访客户"  # Accept-Language: zh-CN
    browser.find_element(By.LINK_TEXT, "English").click()
    wait_for(lambda: heading(browser) == "Customers to call back", "the English page")
    assert (browser.find_element(By.TAG_NAME, "html").get_attribute("lang") or "").startswith("en")
    browser.find_element(By.LINK_TEXT, "Overview").click()  # the choice sticks
    wait_for(lambda: heading(browser) == "Satisfaction overview", "the English overview")
    screenshot(browser, "overview-en")

    # The first Tab reaches the skip link, which leads to the main content.
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("class") == "skip"
    focused.send_keys(Keys.ENTER)
    assert browser.switch_to.active_element.get_attribute("id") == "main"

    browser.find_element(By.LINK_TEXT, "中文").click()
    wait_for(lambda: heading(browser) == "满意度概览", "the Chinese overview")


def test_a_key_sees_only_what_its_scopes_allow(
    browser: webdriver.Chrome, console_stack: ConsoleStack
) -> None:
    reader = console_stack.key("console-reader", ["satisfaction:read", "improvements:read"])
    sign_in(browser, console_stack, reader)
    nav = browser.find_element(By.CSS_SELECTOR, "nav.main").text
    assert "概览" in nav and "回访" in nav and "客户需求" not in nav
    browser.get(f"{console_stack.url('console')}/followups")
    assert not browser.find_elements(By.CSS_SELECTOR, "#followups button")  # no moves
    browser.get(f"{console_stack.url('console')}/needs")
    assert "analyses:read" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text

    satisfaction_only = console_stack.key("console-csat", ["satisfaction:read"])
    browser.delete_all_cookies()
    sign_in(browser, console_stack, satisfaction_only)
    browser.get(f"{console_stack.url('console')}/followups")
    assert "improvements:read" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert "13900139000" not in browser.page_source


def test_state_changes_need_the_csrf_token(
    browser: webdriver.Chrome, console_stack: ConsoleStack
) -> None:
    sign_in(browser, console_stack)
    session = {c["name"]: c["value"] for c in browser.get_cookies()}["kefu_session"]
    with console_stack.api("improvement") as improvement:
        followup = improvement.get("/v1/followups", params={"status": "open"}).json()["items"][0]
    forged = httpx.post(
        f"{console_stack.url('console')}/followups/{followup['followup_id']}/move",
        data={"status": "dismissed"},
        cookies={"kefu_session": session},
    )
    assert forged.status_code == 403
    with console_stack.api("improvement") as improvement:
        again = improvement.get("/v1/followups", params={"issue_id": followup["issue_id"]})
    assert again.json()["items"][0]["status"] == "open"

    # The same form with the session's token, without JavaScript: moved, and back to the page.
    browser.get(f"{console_stack.url('console')}/followups?status=open")
    token = browser.find_element(By.NAME, "csrf_token").get_attribute("value")
    plain = httpx.post(
        f"{console_stack.url('console')}/followups/{followup['followup_id']}/move",
        data={"status": "dismissed", "csrf_token": token},
        cookies={"kefu_session": session},
        headers={"Referer": f"{console_stack.url('console')}/followups?status=open"},
    )
    assert plain.status_code == 303 and plain.headers["location"] == "/followups?status=open"
    with console_stack.api("improvement") as improvement:
        moved = improvement.get("/v1/followups", params={"issue_id": followup["issue_id"]})
    assert moved.json()["items"][0]["status"] == "dismissed"

    browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    wait_for(lambda: "/login" in browser.current_url, "the sign-in page")
    signed_out = httpx.get(f"{console_stack.url('console')}/", cookies={"kefu_session": session})
    assert signed_out.status_code == 303 and "/login" in signed_out.headers["location"]


def test_pages_fit_a_phone(phone: webdriver.Chrome, console_stack: ConsoleStack) -> None:
    sign_in(phone, console_stack)
    for name, path in (("overview", "/"), ("followups", "/followups"), ("needs", "/needs")):
        phone.get(f"{console_stack.url('console')}{path}")
        overflow = phone.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways on a phone by {overflow}px"
        screenshot(phone, f"phone-{name}")
