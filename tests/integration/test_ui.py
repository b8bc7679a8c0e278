"""The web page in a real browser: Debian's Chromium, headless, driven through chromedriver.

A person signs in with a token, writes a task with code and a cron schedule, sees the preview,
runs it, watches the job complete without reloading, reads its logs, reschedules and cancels a
job, pauses, resumes and deletes a task, and sees the API's validation errors next to the field
they concern. Screenshots of the main pages land in ``docs/screenshots`` (shown by the README).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from taskscheduler.platform import LocalPlatform
from taskscheduler.ui import charts
from tests.integration.helpers import unique, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(os.environ.get("TASKS_SCREENSHOT_DIR", "docs/screenshots"))
HELLO = 'def main(who: str = "world") -> None:\n    print(f"hello {who}")\n'


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium with a new profile and no network of its own (``make test`` installs
    it from Debian's archive; without it the tests fail, saying so)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver", pytrace=False)
    profile = tempfile.mkdtemp(prefix="tasks-ui-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP reports land there
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def signed_in(browser: WebDriver, platform: LocalPlatform) -> WebDriver:
    """The browser, signed in with the admin token through the sign-in page."""
    sign_in(browser, platform, platform.credentials.admin_token.get_secret_value())
    wait(browser).until(expected_conditions.url_contains("/ui/tasks"))
    return browser


def sign_in(browser: WebDriver, platform: LocalPlatform | None, token: str) -> None:
    """Sign in on the sign-in page (opened first when ``platform`` is given)."""
    if platform is not None:
        browser.get(f"{platform.service_api_url}/ui/signin")
    field = browser.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token, Keys.ENTER)


def wait(browser: WebDriver, seconds: float = 30) -> WebDriverWait[WebDriver]:
    return WebDriverWait(
        browser,
        seconds,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )


def text_of(browser: WebDriver, css: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, css).text


def screenshot(browser: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def set_code(browser: WebDriver, source: str) -> None:
    """Put source into the CodeMirror editor, as pasting would."""
    browser.execute_script(
        "document.querySelector('.CodeMirror').CodeMirror.setValue(arguments[0])", source
    )


def set_value(browser: WebDriver, element: WebElement, value: str) -> None:
    """Set a date-time field (typing into one depends on the browser's locale)."""
    browser.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}))",
        element,
        value,
    )


def choose(browser: WebDriver, name: str, value: str) -> None:
    browser.find_element(By.CSS_SELECTOR, f"input[name={name}][value={value}]").click()


def create_task(admin: httpx.Client, **fields: object) -> str:
    name = unique("ui")
    response = admin.post("/v1/tasks", json={"name": name, "code": HELLO, **fields})
    assert response.status_code == 201, response.text
    return name


def local_input(moment: dt.datetime) -> str:
    """A ``datetime-local`` value for an instant, on the browser's clock (the machine's zone)."""
    return moment.astimezone().strftime("%Y-%m-%dT%H:%M:%S")


# ---- signing in --------------------------------------------------------------------------------


def test_pages_need_a_session_and_a_bad_token_is_refused_beside_the_field(
    browser: WebDriver, platform: LocalPlatform
) -> None:
    browser.delete_all_cookies()
    browser.get(f"{platform.service_api_url}/ui/tasks?search=x")
    wait(browser).until(expected_conditions.url_contains("/ui/signin"))
    assert "next=" in browser.current_url
    screenshot(browser, "signin")
    sign_in(browser, None, "tsk_not-a-real-token")
    error = wait(browser).until(
        expected_conditions.visibility_of_element_located((By.ID, "err-token"))
    )
    assert "unknown or revoked token" in error.text
    assert browser.find_element(By.ID, "token").get_attribute("aria-invalid") == "true"

    token = platform.credentials.admin_token.get_secret_value()
    sign_in(browser, None, token)  # on the same page: it goes back where the person was going
    wait(browser).until(expected_conditions.url_contains("/ui/tasks?search=x"))
    assert token not in browser.current_url
    cookie = browser.get_cookie("tasks_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie").find("tasks_session") == -1


def test_a_cookie_alone_cannot_change_anything_from_another_site(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    token = platform.credentials.admin_token.get_secret_value()
    name = unique("csrf")
    body = {"name": name, "code": HELLO}
    with httpx.Client(base_url=platform.service_api_url, timeout=60) as client:
        client.cookies.set("tasks_session", token)
        forged = client.post("/v1/tasks", json=body, headers={"Origin": "http://evil.invalid"})
        assert forged.status_code == 403
        fetched = client.post("/v1/tasks", json=body, headers={"Sec-Fetch-Site": "cross-site"})
        assert fetched.status_code == 403
        assert admin.get(f"/v1/tasks/{name}").status_code == 404
        # Reading with the cookie is fine, and so is a change from the page's own origin.
        assert client.get("/v1/tasks", params={"limit": 1}).status_code == 200
        own = client.post("/v1/tasks", json=body, headers={"Sec-Fetch-Site": "same-origin"})
        assert own.status_code == 201, own.text
    rows = admin.get("/v1/audit", params={"task": name}).json()["items"]
    assert [(r["action"], r["outcome"], r["source"]) for r in rows if r["outcome"] == "ok"] == [
        ("task.create", "ok", "ui")
    ]
    admin.delete(f"/v1/tasks/{name}")


def test_the_form_offers_only_granted_pools_and_the_page_gets_the_api_refusal(
    platform: LocalPlatform, admin: httpx.Client, docker_pool: str
) -> None:
    """Browser-free: a write token's session sees only its pools in the form, and a change from
    the page's own origin is refused with the same message as a bearer call. (The token may
    use docker only, so the sandbox pool, where its tasks naming no pool go, is refused.)"""
    made = admin.post(
        "/v1/tokens", json={"name": unique("ui-write"), "scope": "write", "pools": ["docker"]}
    )
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    name = unique("ui")
    base = platform.service_api_url
    with httpx.Client(base_url=base, timeout=60) as page:
        page.cookies.set("tasks_session", token)
        form = page.get("/ui/tasks/new")
        assert form.status_code == 200
        assert f'<option value="{docker_pool}"' in form.text
        for hidden in ('value="process"', 'value="fast"', "default (process)", "sandbox"):
            assert hidden not in form.text, hidden
        same_origin = {"Sec-Fetch-Site": "same-origin"}
        refused = page.post("/v1/tasks", json={"name": name, "code": HELLO}, headers=same_origin)
    assert refused.status_code == 403, refused.text
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as api:
        direct = api.post("/v1/tasks", json={"name": name, "code": HELLO})
    assert direct.status_code == 403
    assert refused.json()["detail"] == direct.json()["detail"]
    assert "choose pool 'docker'" in refused.json()["detail"]
    assert admin.get(f"/v1/tasks/{name}").status_code == 404
    rows = admin.get("/v1/audit", params={"task": name}).json()["items"]
    assert {(r["action"], r["outcome"], r["source"]) for r in rows} == {
        ("task.create", "forbidden", "ui"),
        ("task.create", "forbidden", "api"),
    }
    # An admin's form offers every pool of the platform, the default first.
    with httpx.Client(base_url=base, timeout=60) as page:
        page.cookies.set("tasks_session", platform.credentials.admin_token.get_secret_value())
        form = page.get("/ui/tasks/new").text
    for offered in ("default (process)", 'value="process"', 'value="fast"', 'value="docker"'):
        assert offered in form, offered
    assert form.index("default (process)") < form.index('value="docker"')


# ---- the main path -------------------------------------------------------------------------


def test_create_a_cron_task_see_the_preview_run_it_and_read_its_logs(
    signed_in: WebDriver, platform: LocalPlatform, admin: httpx.Client
) -> None:
    browser = signed_in
    name = unique("ui")
    browser.get(f"{platform.service_api_url}/ui/tasks")
    browser.find_element(By.LINK_TEXT, "New task").click()
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "task-form")))
    browser.find_element(By.ID, "f-name").send_keys(name)
    set_code(
        browser, 'def main(who: str = "world") -> None:\n    print(f"hello {who} from the page")\n'
    )
    params = browser.find_element(By.ID, "f-parameters")
    params.clear()
    params.send_keys('{"who": "browser"}')
    choose(browser, "kind", "cron")
    browser.find_element(By.ID, "f-schedule").send_keys("0 9 * * 1-5")
    zone = browser.find_element(By.ID, "f-timezone")
    zone.clear()
    zone.send_keys("Europe/Berlin")

    # The preview lists the next five times, in the chosen zone, from the API's own rules.
    # (A preview for the zone typed before lands first; wait for the one of the chosen zone.)
    wait(browser).until(
        lambda b: (
            "cron 0 9 * * 1-5 (Europe/Berlin)" in text_of(b, "#preview-text")
            and len(b.find_elements(By.CSS_SELECTOR, "#preview li")) == 5
        )
    )
    utc_times = [
        dt.datetime.fromisoformat(t.get_attribute("datetime") or "")
        for t in browser.find_elements(By.CSS_SELECTOR, "#preview time")
    ]
    for moment in utc_times:
        berlin = moment.astimezone(ZoneInfo("Europe/Berlin"))
        assert (berlin.hour, berlin.minute) == (9, 0) and berlin.weekday() < 5, berlin
    screenshot(browser, "task-form")

    browser.find_element(By.CSS_SELECTOR, "#task-form button[type=submit]").click()
    wait(browser).until(expected_conditions.url_contains(f"/ui/tasks/{name}"))
    assert name in text_of(browser, "h1")
    assert "cron 0 9 * * 1-5 (Europe/Berlin)" in browser.page_source
    task = admin.get(f"/v1/tasks/{name}").json()
    assert task["spec"]["cron"] == "0 9 * * 1-5"
    assert task["spec"]["parameters"] == {"who": "browser"}

    # Run it now and watch it complete with no reload: the marker set on this page survives.
    browser.execute_script("window.stillThisPage = true")
    browser.find_element(By.CSS_SELECTOR, "button[data-action=run]").click()
    wait(browser, 120).until(
        lambda b: "Completed" in b.find_element(By.ID, "job-rows").text,
        "the job reaches Completed on the task page",
    )
    assert browser.execute_script("return window.stillThisPage") is True
    screenshot(browser, "task")

    row = next(
        r
        for r in browser.find_elements(By.CSS_SELECTOR, "#job-rows tr[data-job]")
        if "Completed" in r.text
    )
    row.find_element(By.CSS_SELECTOR, "a").click()
    wait(browser).until(expected_conditions.url_contains("/ui/jobs/"))
    logs = wait(browser, 60).until(
        lambda b: (
            "hello browser from the page" in b.find_element(By.ID, "logs").text
            and b.find_element(By.ID, "logs")
        )
    )
    assert logs.get_attribute("tabindex") == "0"  # scrollable by keyboard
    assert "Running" in text_of(browser, "#job-live") and "Completed" in text_of(
        browser, "#job-live"
    )
    prefect_link = browser.find_element(By.LINK_TEXT, "Open in the Prefect UI").get_attribute(
        "href"
    )
    job_id = browser.current_url.rsplit("/", 1)[1]
    assert prefect_link == f"{platform.settings.prefect_ui_url}/runs/flow-run/{job_id}"
    screenshot(browser, "job")

    browser.get(f"{platform.service_api_url}/ui/tasks?search={name}")
    row_text = wait(browser).until(
        lambda b: b.find_element(By.CSS_SELECTOR, f"tr[data-task='{name}']").text
    )
    assert "Completed" in row_text and "cron 0 9 * * 1-5" in row_text
    screenshot(browser, "tasks")
    admin.delete(f"/v1/tasks/{name}")


def test_a_bad_cron_is_shown_next_to_the_schedule_field_and_nothing_is_created(
    signed_in: WebDriver, platform: LocalPlatform, admin: httpx.Client
) -> None:
    browser = signed_in
    name = unique("ui")
    browser.get(f"{platform.service_api_url}/ui/tasks/new")
    browser.find_element(By.ID, "f-name").send_keys(name)
    choose(browser, "kind", "cron")
    browser.find_element(By.ID, "f-schedule").send_keys("61 * * * *")
    preview_error = wait(browser).until(
        lambda b: b.find_element(By.ID, "err-schedule").text or None
    )
    assert "61" in preview_error or "minute" in preview_error.lower(), preview_error

    browser.find_element(By.CSS_SELECTOR, "#task-form button[type=submit]").click()
    wait(browser).until(
        lambda b: b.find_element(By.ID, "f-schedule").get_attribute("aria-invalid") == "true"
    )
    assert browser.find_element(By.ID, "err-schedule").text
    assert browser.switch_to.active_element.get_attribute("id") == "f-schedule"
    screenshot(browser, "validation-error")

    # The message is the API's: the same request answered 422 naming the same field.
    direct = admin.post("/v1/tasks", json={"name": name, "code": HELLO, "cron": "61 * * * *"})
    assert direct.status_code == 422
    assert direct.json()["detail"][0]["loc"] == ["body", "cron"]
    assert direct.json()["detail"][0]["msg"] in browser.find_element(By.ID, "err-schedule").text
    assert admin.get(f"/v1/tasks/{name}").status_code == 404

    # Code that does not parse is refused beside the editor.
    choose(browser, "kind", "none")
    set_code(browser, "def main(:\n")
    browser.find_element(By.CSS_SELECTOR, "#task-form button[type=submit]").click()
    wait(browser).until(lambda b: b.find_element(By.ID, "err-code").text or None)
    assert admin.get(f"/v1/tasks/{name}").status_code == 404


def test_reschedule_then_cancel_a_job_from_its_page(
    signed_in: WebDriver, platform: LocalPlatform, admin: httpx.Client
) -> None:
    browser = signed_in
    name = create_task(admin)
    first_at = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=2)
    job = admin.post(f"/v1/tasks/{name}/schedule", json={"at": first_at.isoformat()}).json()
    browser.get(f"{platform.service_api_url}/ui/jobs/{job['job_id']}")

    moved_to = first_at + dt.timedelta(hours=1)
    set_value(browser, browser.find_element(By.ID, "reschedule-at"), local_input(moved_to))
    browser.find_element(By.CSS_SELECTOR, "form[data-action=reschedule] button").click()
    wait(browser).until(lambda b: job["job_id"] not in b.current_url)
    new_id = browser.current_url.rsplit("/", 1)[1]
    new = admin.get(f"/v1/jobs/{new_id}").json()
    assert dt.datetime.fromisoformat(new["scheduled_time"]) == moved_to
    assert admin.get(f"/v1/jobs/{job['job_id']}").json()["state"] == "cancelled"

    browser.find_element(By.CSS_SELECTOR, "button[data-action=cancel]").click()
    browser.switch_to.alert.accept()
    wait(browser).until(lambda b: "Cancelled" in b.find_element(By.ID, "job-live").text)
    assert admin.get(f"/v1/jobs/{new_id}").json()["state"] == "cancelled"

    # A time in the past is refused beside the field, as the API refuses it.
    browser.get(f"{platform.service_api_url}/ui/tasks/{name}")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    set_value(browser, browser.find_element(By.ID, "schedule-at"), local_input(past))
    browser.find_element(By.CSS_SELECTOR, "form[data-action=schedule] button").click()
    wait(browser).until(lambda b: b.find_element(By.ID, "err-schedule-at").text or None)
    admin.delete(f"/v1/tasks/{name}")


def test_pause_resume_edit_and_delete_with_confirmation(
    signed_in: WebDriver, platform: LocalPlatform, admin: httpx.Client
) -> None:
    browser = signed_in
    name = create_task(admin, every="1h")
    browser.get(f"{platform.service_api_url}/ui/tasks/{name}")
    browser.find_element(By.CSS_SELECTOR, "button[data-action=pause]").click()
    wait(browser).until(lambda b: text_of(b, "#task-state") == "paused")
    assert admin.get(f"/v1/tasks/{name}").json()["paused"] is True
    browser.find_element(By.CSS_SELECTOR, "button[data-action=resume]").click()
    wait(browser).until(lambda b: text_of(b, "#task-state") == "active")

    # Edit: the form comes filled in; a new interval and retries are saved.
    browser.find_element(By.LINK_TEXT, "Edit").click()
    wait(browser).until(expected_conditions.url_contains("/edit"))
    schedule = browser.find_element(By.ID, "f-schedule")
    assert schedule.get_attribute("value") == "1h"
    schedule.clear()
    schedule.send_keys("30m")
    retries = browser.find_element(By.ID, "f-retries")
    retries.clear()
    retries.send_keys("2")
    browser.find_element(By.CSS_SELECTOR, "#task-form button[type=submit]").click()
    wait(browser).until(lambda b: b.current_url.endswith(f"/ui/tasks/{name}"))
    spec = admin.get(f"/v1/tasks/{name}").json()["spec"]
    assert (spec["every"], spec["retries"], spec["code"]) == (1800.0, 2, HELLO)

    browser.find_element(By.CSS_SELECTOR, "button[data-action=delete]").click()
    browser.switch_to.alert.dismiss()
    assert admin.get(f"/v1/tasks/{name}").status_code == 200
    browser.find_element(By.CSS_SELECTOR, "button[data-action=delete]").click()
    browser.switch_to.alert.accept()
    wait(browser).until(lambda b: b.current_url.endswith("/ui/tasks"))
    assert admin.get(f"/v1/tasks/{name}").status_code == 404


def test_list_is_searched_and_paged_on_the_server(
    signed_in: WebDriver, platform: LocalPlatform, admin: httpx.Client
) -> None:
    browser = signed_in
    prefix = unique("pg")
    names = [f"{prefix}-{i:02d}" for i in range(52)]
    for name in names:
        assert admin.post("/v1/tasks", json={"name": name, "code": HELLO}).status_code == 201
    browser.get(f"{platform.service_api_url}/ui/tasks")
    search = browser.find_element(By.ID, "search")
    search.send_keys(prefix, Keys.ENTER)
    wait(browser).until(expected_conditions.url_contains(f"search={prefix}"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#task-rows tr[data-task]")
    assert [r.get_attribute("data-task") for r in rows] == names[:50]
    browser.find_element(By.LINK_TEXT, "Next →").click()
    wait(browser).until(expected_conditions.url_contains("cursor="))
    rows = browser.find_elements(By.CSS_SELECTOR, "#task-rows tr[data-task]")
    assert [r.get_attribute("data-task") for r in rows] == names[50:]
    for name in names:
        admin.delete(f"/v1/tasks/{name}")


def test_the_form_is_usable_by_keyboard(signed_in: WebDriver, platform: LocalPlatform) -> None:
    browser = signed_in
    browser.get(f"{platform.service_api_url}/ui/tasks/new")
    # Every field has a label the browser can name it by.
    for field in browser.find_elements(By.CSS_SELECTOR, "#task-form input, #task-form select"):
        if field.get_attribute("type") == "radio" or not field.is_displayed():
            continue
        assert field.accessible_name, field.get_attribute("id")
    # Into the editor, and out of it again with Esc then Tab.
    browser.find_element(By.CSS_SELECTOR, ".CodeMirror textarea").send_keys(Keys.ESCAPE)
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") != ""
    assert "CodeMirror" not in (
        browser.switch_to.active_element.find_element(By.XPATH, "..").get_attribute("class") or ""
    )
    # The skip link leads past the navigation.
    browser.get(f"{platform.service_api_url}/ui/tasks")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"


def test_nothing_on_the_pages_is_fetched_from_another_host(
    signed_in: WebDriver, platform: LocalPlatform
) -> None:
    browser = signed_in
    for path in ("/ui/tasks", "/ui/tasks/new", "/ui/platform"):
        browser.get(f"{platform.service_api_url}{path}")
        urls = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert urls, path
        assert all(u.startswith(platform.service_api_url) for u in urls), urls


def csp_reports(browser: WebDriver) -> list[str]:
    """The console's Content-Security-Policy violations since the last call."""
    return [
        e["message"]
        for e in browser.get_log("browser")
        if "Content Security Policy" in e["message"]
    ]


def test_the_pages_work_under_their_content_security_policy(
    signed_in: WebDriver, platform: LocalPlatform, admin: httpx.Client
) -> None:
    """Every page loads, its scripts (the vendored editor included) run and call the API, and
    the browser reports no violation of the policy, which does refuse an inline script."""
    browser = signed_in
    name = create_task(admin, cron="0 9 * * *")
    csp_reports(browser)
    base = platform.service_api_url
    browser.get(f"{base}/ui/tasks/new")
    wait(browser).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".CodeMirror")),
        "the new-task form's editor loads",
    )
    choose(browser, "kind", "cron")
    browser.find_element(By.ID, "f-schedule").send_keys("0 9 * * 1-5")
    wait(browser).until(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#preview li")) == 5,
        "the form's schedule preview lists five runs",
    )
    browser.get(f"{base}/ui/tasks/{name}")
    wait(browser).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".CodeMirror")),
        "the task page's editor loads",
    )
    # Searched for: the session's platform holds the tasks of every other test, and the list,
    # sorted by name, need not show this one on its first page.
    browser.get(f"{base}/ui/tasks?search={name}")
    wait(browser).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, f"tr[data-task='{name}']"),
        "the list shows the task",
    )
    assert csp_reports(browser) == []

    ran = browser.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.inlineRan = 1';"
        "document.body.append(s); return window.inlineRan === 1"
    )
    assert ran is False, "the policy refuses inline scripts"
    assert csp_reports(browser), "and the browser reports it where this test looks"
    admin.delete(f"/v1/tasks/{name}")


# ---- charts --------------------------------------------------------------------------------

FLAKY = (
    "def main(fail: bool = False) -> None:\n"
    "    if fail:\n"
    '        raise RuntimeError("asked to fail")\n'
    '    print("fine")\n'
)


def finished_job(admin: httpx.Client, job_id: str) -> dict[str, object]:
    def final() -> dict[str, object] | None:
        job: dict[str, object] = admin.get(f"/v1/jobs/{job_id}").json()
        return job if job["state"] in ("completed", "failed", "cancelled") else None

    return wait_for(final, timeout=120, what=f"job {job_id} ends")


def marks(browser: WebDriver, css: str) -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, css)


def test_the_task_page_charts_the_jobs_it_ran_and_the_platform_page_its_figures(
    signed_in: WebDriver, platform: LocalPlatform, admin: httpx.Client
) -> None:
    browser = signed_in
    base = platform.service_api_url
    name = create_task(admin, code=FLAKY, retries=0)
    browser.get(f"{base}/ui/tasks/{name}")
    assert "No started jobs yet" in text_of(browser, "#chart-summary ~ figure")
    assert not marks(browser, "#job-chart")

    jobs = []
    for fail in (False, True, False, False):
        made = admin.post(f"/v1/tasks/{name}/run", json={"parameters": {"fail": fail}})
        assert made.status_code in (200, 201, 202), made.text
        jobs.append(finished_job(admin, str(made.json()["job_id"])))
    assert [j["state"] for j in jobs] == ["completed", "failed", "completed", "completed"]

    csp_reports(browser)
    browser.get(f"{base}/ui/tasks/{name}")
    chart = wait(browser).until(lambda b: b.find_element(By.ID, "job-chart"))
    # One group of marks a job, oldest first; the failed one crossed, the others dotted.
    groups = marks(browser, "#job-chart g.job")
    assert len(groups) == len(jobs)
    assert len(marks(browser, "#job-chart g.job.failed")) == 1
    assert len(marks(browser, "#job-chart .fail-mark")) == 1
    assert len(marks(browser, "#job-chart circle.mark.delay")) == len(jobs) - 1
    delays = [
        float(m.get_attribute("data-value") or "nan")
        for m in marks(browser, "#job-chart .mark.delay")
    ]
    by_schedule = sorted(jobs, key=lambda j: str(j["scheduled_time"]))
    expected = [float(str(j["start_delay"])) for j in by_schedule]
    assert delays == pytest.approx(expected, abs=1e-3)
    points = [
        charts.JobPoint(str(j["name"]), None, float(str(j["start_delay"])), None, "", False)
        for j in jobs
    ]
    summary = charts.summarise(points)
    summary = dataclasses.replace(summary, failed=1)
    assert text_of(browser, "#chart-summary") == summary.text.capitalize() + "."
    title = chart.find_element(By.CSS_SELECTOR, "title").get_attribute("textContent") or ""
    assert summary.text in title and "1 failed" in title
    screenshot(browser, "task-chart")

    browser.find_element(By.LINK_TEXT, "Platform").click()
    wait(browser).until(expected_conditions.url_contains("/ui/platform"))
    started = int(text_of(browser, "#started-hour"))
    assert started >= len(jobs)
    bars = [
        float(b.get_attribute("data-value") or "nan")
        for b in marks(browser, "#started-chart .mark.bar")
    ]
    assert len(bars) == 60 and sum(bars) == started
    # A p50 and a p99 dot for each minute in which jobs started.
    busy = sum(1 for b in bars if b > 0)
    assert len(marks(browser, "#delay-chart circle.mark.p50")) == busy
    assert len(marks(browser, "#delay-chart circle.mark.p99")) == busy
    assert int(text_of(browser, "#failed-hour")) >= 1
    assert int(text_of(browser, "#failed-day")) >= int(text_of(browser, "#failed-hour"))
    process = marks(browser, "#workers tr[data-pool='process'][data-status='online']")
    assert process, browser.find_element(By.ID, "workers").text
    assert "online" in process[0].text and "UTC" in process[0].text
    assert csp_reports(browser) == []
    screenshot(browser, "platform")
    admin.delete(f"/v1/tasks/{name}")
