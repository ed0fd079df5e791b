#!/usr/bin/env python3
"""Drives the reviewer console in a real browser: Debian's chromium through chromium-driver.

Run by ConsoleBrowserTests (make test) against a running `sluice run` whose configuration has
the test harness's `held` connection; prints one JSON object on stdout (the ids it approved and
denied) and exits non-zero, with the reason on stderr, at the first check that fails.

    console_test.py --base http://127.0.0.1:PORT (--reviewer-key K | --sso) --caller-key K [--screenshots DIR]

With --screenshots, the inbox and a request's page are saved there as PNG files (how
docs/images/console-*.png are made).
"""
import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait


def fail(message):
    print("console_test: " + message, file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def call(base, key, method, path, body=None):
    request = urllib.request.Request(
        base + path, data=body, method=method,
        headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text or b"{}")
        except ValueError:
            return e.code, {"text": text.decode("utf-8", "replace")}


def send(args, note, path="/sql"):
    """A call the `held` connection holds unless a grant releases it (its body matches `drop
    table`): its status and request id."""
    body = json.dumps({"sql": "DROP TABLE users", "note": note}).encode()
    request = urllib.request.Request(
        args.base + "/fn/held" + path, data=body, method="POST",
        headers={"Authorization": "Bearer " + args.caller_key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["X-Sluice-Request-Id"]
    except urllib.error.HTTPError as e:
        return e.code, e.headers["X-Sluice-Request-Id"]


def hold(args, note, path="/sql"):
    """A call the `held` connection holds; its request id."""
    status, request_id = send(args, note, path)
    check(status == 202, "the call was not held: %s" % status)
    return request_id


def final_status(args, request_id, timeout=30):
    """Polls the caller's `GET /v1/requests/<id>` until it is no longer 202."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _ = call(args.base, args.caller_key, "GET", "/v1/requests/" + request_id)
        if status != 202:
            return status
        time.sleep(0.1)
    fail("request %s still pending after %ss" % (request_id, timeout))


def no_alert(driver, where):
    try:
        alert = driver.switch_to.alert
        fail("a script ran on %s: alert %r" % (where, alert.text))
    except NoAlertPresentException:
        pass
    check(driver.execute_script("return window.__xss === undefined"), "a script from the held request ran on " + where)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--reviewer-key", help="sign in with this API key")
    parser.add_argument("--sso", action="store_true", help="sign in with single sign-on (the provider signs in at once)")
    parser.add_argument("--caller-key", required=True)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--driver", default="/usr/bin/chromedriver")
    parser.add_argument("--screenshots")
    args = parser.parse_args()

    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(args.driver), options=options)
    wait = WebDriverWait(driver, 20)
    try:
        # Sign in with the reviewer's key.
        driver.get(args.base + "/console")
        wait.until(lambda d: d.find_elements(By.ID, "api_key") or d.find_elements(By.ID, "sso"))
        check(driver.current_url.endswith("/console/login"), "not sent to sign in: " + driver.current_url)
        if args.sso:
            # Out to the provider (another site) and back: the session cookie must be sent on
            # the way into the inbox.
            driver.find_element(By.ID, "sso").click()
        else:
            driver.find_element(By.ID, "api_key").send_keys(args.reviewer_key)
            driver.find_element(By.ID, "sign-in").click()
        try:
            wait.until(lambda d: d.find_elements(By.ID, "inbox"))
        except TimeoutException:
            fail("not in the inbox after signing in: %s %s" % (driver.current_url, driver.find_element(By.TAG_NAME, "body").text[:500]))
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "on")

        # A request held after the page opened appears without a reload.
        driver.execute_script("window.__samePage = true")
        xss = 'approve me <img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2</script>'
        approve_id = hold(args, xss)
        deny_id = hold(args, "deny me")
        try:
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-id="%s"]' % approve_id)
                       and d.find_elements(By.CSS_SELECTOR, 'tr[data-id="%s"]' % deny_id))
        except TimeoutException:
            fail("the held requests did not appear in the open inbox")
        check(driver.execute_script("return window.__samePage === true"), "the inbox reloaded instead of updating live")
        row = driver.find_element(By.CSS_SELECTOR, 'tr[data-id="%s"]' % approve_id)
        check("<img src=x" in row.text, "the markup is not shown as text: %r" % row.text)
        check(not driver.find_elements(By.CSS_SELECTOR, "#inbox img"), "the held request's <img> became an element")
        no_alert(driver, "the inbox")
        if args.screenshots:
            driver.save_screenshot(os.path.join(args.screenshots, "console-inbox.png"))

        # Open it from the keyboard: j/k to its row, Enter.
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.row")
        index = [r.get_attribute("data-id") for r in rows].index(approve_id)
        page = driver.find_element(By.TAG_NAME, "body")
        for _ in range(index):
            page.send_keys("j")
        check(driver.find_element(By.CSS_SELECTOR, "tr.row.selected").get_attribute("data-id") == approve_id, "j did not select the row")
        page.send_keys(Keys.ENTER)
        wait.until(lambda d: d.find_elements(By.ID, "approve-reason"))
        check(approve_id in driver.current_url, "Enter opened " + driver.current_url)
        preview = driver.find_element(By.ID, "preview").text
        check("<img src=x" in preview and "DROP TABLE users" in preview, "the masked body is not shown: %r" % preview)
        no_alert(driver, "the request page")
        if args.screenshots:
            driver.save_screenshot(os.path.join(args.screenshots, "console-request.png"))

        # Approve with a reason: `a` focuses the reason, Ctrl+Enter submits.
        driver.find_element(By.TAG_NAME, "body").send_keys("a")
        focused = driver.switch_to.active_element
        check(focused.get_attribute("id") == "approve-reason", "a did not focus the approval reason")
        focused.send_keys("checked in a browser")
        focused.send_keys(Keys.CONTROL, Keys.ENTER)
        wait.until(lambda d: d.find_elements(By.ID, "notice"))
        check(driver.find_element(By.ID, "notice").text == "Your approval was recorded.", driver.find_element(By.ID, "notice").text)
        check(final_status(args, approve_id) == 200, "the approved call did not return 200 to its caller")

        # Deny the other with the button.
        driver.get(args.base + "/console/requests/" + deny_id)
        wait.until(lambda d: d.find_elements(By.ID, "deny-reason"))
        driver.find_element(By.ID, "deny-reason").send_keys("not in a change window")
        driver.find_element(By.ID, "deny").click()
        wait.until(lambda d: d.find_elements(By.ID, "notice"))
        check(driver.find_element(By.ID, "notice").text == "Your denial was recorded.", "no denial notice")
        check(final_status(args, deny_id) == 403, "the denied call did not return 403 to its caller")

        # A scoped approval: approve one more and allow three like it; they pass without a
        # reviewer, and a call outside the scope is held.
        pattern = hold(args, "grant me")
        driver.get(args.base + "/console/requests/" + pattern)
        wait.until(lambda d: d.find_elements(By.ID, "grant-calls"))
        driver.find_element(By.ID, "grant-calls").send_keys("3")
        driver.find_element(By.ID, "grant-reason").send_keys("batch cleanup")
        if args.screenshots:
            driver.save_screenshot(os.path.join(args.screenshots, "console-grant.png"))
        driver.find_element(By.ID, "grant").click()
        wait.until(lambda d: d.find_elements(By.ID, "notice"))
        check("similar calls are allowed" in driver.find_element(By.ID, "notice").text, "no grant notice")
        check(final_status(args, pattern) == 200, "the approved call did not return 200")
        granted = []
        for i in range(3):
            status, request_id = send(args, "similar %d" % i)
            check(status in (200, 202), "a call under the grant answered %s" % status)
            check(final_status(args, request_id) == 200, "a call under the grant was not released")
            granted.append(request_id)
        outside = hold(args, "elsewhere", path="/other")
        status, _ = call(args.base, args.caller_key, "GET", "/v1/requests/" + outside)
        check(status == 202, "the call outside the scope was not held")
        driver.get(args.base + "/console/grants")
        wait.until(lambda d: d.find_elements(By.ID, "grants"))
        rows = driver.find_elements(By.CSS_SELECTOR, "#grants tr.row")
        check(len(rows) == 1 and "3 of 3" in rows[0].text and "exhausted" in rows[0].text, "grants page: %r" % [r.text for r in rows])
        if args.screenshots:
            driver.save_screenshot(os.path.join(args.screenshots, "console-grants.png"))

        # Sign out: the console is closed again.
        driver.get(args.base + "/console")
        wait.until(lambda d: d.find_elements(By.ID, "logout"))
        driver.find_element(By.ID, "logout").click()
        wait.until(lambda d: d.find_elements(By.ID, "api_key") or d.find_elements(By.ID, "sso"))
        driver.get(args.base + "/console")
        wait.until(lambda d: d.find_elements(By.ID, "api_key") or d.find_elements(By.ID, "sso"))
        check(driver.current_url.endswith("/console/login"), "still signed in after signing out")
        print(json.dumps({"approved": approve_id, "denied": deny_id, "pattern": pattern, "granted": granted, "outside": outside}))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
