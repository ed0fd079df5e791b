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


def hold(args, note):
    """A call the `held` connection holds (its body matches `drop table`); its request id."""
    body = json.dumps({"sql": "DROP TABLE users", "note": note}).encode()
    status, answer = call(args.base, args.caller_key, "POST", "/fn/held/sql", body)
    check(status == 202, "the call was not held: %s %s" % (status, answer))
    return answer["request_id"]


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

        # Sign out: the console is closed again.
        driver.get(args.base + "/console")
        wait.until(lambda d: d.find_elements(By.ID, "logout"))
        driver.find_element(By.ID, "logout").click()
        wait.until(lambda d: d.find_elements(By.ID, "api_key") or d.find_elements(By.ID, "sso"))
        driver.get(args.base + "/console")
        wait.until(lambda d: d.find_elements(By.ID, "api_key") or d.find_elements(By.ID, "sso"))
        check(driver.current_url.endswith("/console/login"), "still signed in after signing out")
        print(json.dumps({"approved": approve_id, "denied": deny_id}))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
