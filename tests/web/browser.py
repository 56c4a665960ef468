#!/usr/bin/env python3
"""Drive airlock's web pages in a real browser (Debian's headless Chromium, via selenium).

    browser.py --base URL --job ID [--token-file F] [--expect-state STATE]
               [--expect-step NAME] [--expect-log TEXT] [--timeout SECONDS]
               [--screenshot FILE.png]

With --token-file, logs in through the /login form with the token in F first. Then opens
/jobs/ID and, with --expect-state, waits (the page's own live tail updates it) until
#job-state reads STATE; with --expect-step / --expect-log, also until a step of that name is
listed / the log contains TEXT. With --screenshot, saves the final page as a PNG. Prints
one JSON object on stdout with what it saw:

  login            {"attempted", "ok", "error"}: the form's outcome
  url              the page it ended on; redirected_to_login: whether that is /login
  initial_state    #job-state when the page first loaded; state: at the end; states_seen
  steps            [{"name", "data_step", "status"}] of #steps li (names as rendered text)
  log              the text of #log
  alerts           alert/confirm/prompt calls and dialogs (an injected script would make one)
  elements         counts of <script> and <img> elements, and of elements with on* handlers
  csp_violations   securitypolicyviolation events and the browser log's CSP complaints
  console_errors   the browser log's other errors
  cookies          [{"name", "httpOnly", "sameSite", "secure", "path"}] (no values)
  timed_out        an expectation was not met within --timeout

Exit status: 0 when every expectation held, 1 when one did not (the JSON says which),
2 for bad usage, 3 when the browser could not be driven. Needs the venv of
scripts/setup-test-env.sh (selenium) and Debian's chromium + chromium-driver
(scripts/install-deps.sh). Nothing is fetched: the driver and browser are the system's.
"""

import argparse
import json
import os
import sys
import tempfile
import time

CHROMIUM = os.environ.get("AIRLOCK_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("AIRLOCK_CHROMEDRIVER", "/usr/bin/chromedriver")

# Installed before any page script runs (CDP scripts are exempt from the page's CSP): records
# dialogs and CSP violations, so an injected `alert(1)` is seen even if it ran unnoticed.
HOOK = r"""
window.__airlock = { alerts: [], csp: [] };
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = function (message) {
    window.__airlock.alerts.push(name + ": " + String(message));
    return name === "confirm" ? false : null;
  };
}
document.addEventListener("securitypolicyviolation", function (e) {
  window.__airlock.csp.push({
    directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample,
  });
});
"""

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"browser.py: {message}", file=sys.stderr)
        sys.exit(2)


def parse_args(argv):
    p = _Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the controller's URL, e.g. http://127.0.0.1:7070")
    p.add_argument("--job", required=True, help="the job id")
    p.add_argument("--token-file", help="log in with the API token in this file first")
    p.add_argument("--expect-state", help="wait until #job-state reads this")
    p.add_argument("--expect-step", help="wait until a step with this name is listed")
    p.add_argument("--expect-log", help="wait until the log contains this text")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait (default 90)")
    p.add_argument("--screenshot", help="save the final page as this PNG")
    return p.parse_args(argv)


def start_browser():
    # Never let selenium look for a driver on the network: the system's is given below.
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.add_argument("--headless=new")
    if os.geteuid() == 0:
        # Chromium refuses to start its sandbox as root; the tests run as root (CI does too),
        # and the pages it opens are the controller's own on loopback.
        options.add_argument("--no-sandbox")
    options.add_argument("--disable-gpu")
    options.add_argument("--disable-dev-shm-usage")
    options.add_argument("--no-first-run")
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='airlock-chromium-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.set_capability("unhandledPromptBehavior", "ignore")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOOK})
    return driver


class Observer:
    """What the browser showed, gathered across page loads."""

    def __init__(self, driver):
        self.driver = driver
        self.alerts = []
        self.csp = []
        self.console_errors = []

    def collect(self):
        """Pending dialogs, the hook's records and the browser log of the current page."""
        from selenium.common.exceptions import NoAlertPresentException

        try:
            alert = self.driver.switch_to.alert
            self.alerts.append("dialog: " + alert.text)
            alert.dismiss()
        except NoAlertPresentException:
            pass
        seen = self.driver.execute_script("return window.__airlock || {alerts: [], csp: []};")
        for a in seen.get("alerts", []):
            if a not in self.alerts:
                self.alerts.append(a)
        for v in seen.get("csp", []):
            if v not in self.csp:
                self.csp.append(v)
        for entry in self.driver.get_log("browser"):
            message = entry.get("message", "")
            if "Content Security Policy" in message or "Content-Security-Policy" in message:
                self.csp.append({"log": message})
            elif entry.get("level") == "SEVERE" and "favicon.ico" not in message:
                self.console_errors.append(message)


def login(driver, observer, base, job, token_file):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    with open(token_file, encoding="utf-8") as f:
        token = f.read().strip()
    driver.get(f"{base}/login?next=/jobs/{job}")
    observer.collect()
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
        and (d.find_elements(By.ID, "job") or d.find_elements(By.ID, "login-error"))
    )
    observer.collect()
    errors = driver.find_elements(By.ID, "login-error")
    ok = bool(driver.find_elements(By.ID, "client")) and not errors
    return {"attempted": True, "ok": ok, "error": errors[0].text if errors else None}


def page_facts(driver):
    return driver.execute_script(
        """
        const text = (id) => { const e = document.getElementById(id); return e ? e.textContent : null; };
        const steps = Array.from(document.querySelectorAll("#steps li")).map((li) => ({
          name: (li.querySelector(".step-name") || li).textContent,
          data_step: li.dataset.step,
          status: li.className,
        }));
        return {
          path: window.location.pathname,
          state: text("job-state"),
          log: text("log"),
          steps: steps,
          elements: {
            script: document.querySelectorAll("script").length,
            img: document.querySelectorAll("img").length,
            with_handlers: Array.from(document.querySelectorAll("*")).filter((e) =>
              Array.from(e.attributes).some((a) => a.name.startsWith("on"))).length,
          },
        };
        """
    )


def expectations_met(facts, args):
    if args.expect_state and facts["state"] != args.expect_state:
        return False
    if args.expect_step and not any(s["name"] == args.expect_step for s in facts["steps"]):
        return False
    if args.expect_log and args.expect_log not in (facts["log"] or ""):
        return False
    return True


def run(args):
    base = args.base.rstrip("/")
    driver = start_browser()
    try:
        observer = Observer(driver)
        result = {"login": {"attempted": False, "ok": False, "error": None}}
        if args.token_file:
            result["login"] = login(driver, observer, base, args.job, args.token_file)
        driver.get(f"{base}/jobs/{args.job}")
        facts = page_facts(driver)
        observer.collect()
        result["initial_state"] = facts["state"]
        states = [facts["state"]] if facts["state"] else []
        deadline = time.monotonic() + args.timeout
        timed_out = False
        on_job_page = facts["path"] == f"/jobs/{args.job}"
        while on_job_page and not expectations_met(facts, args):
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(0.25)
            facts = page_facts(driver)
            if facts["state"] and facts["state"] not in states[-1:]:
                states.append(facts["state"])
        if not on_job_page and (args.expect_state or args.expect_step or args.expect_log):
            timed_out = True
        observer.collect()
        if args.screenshot:
            driver.set_window_size(1280, 1600)
            driver.save_screenshot(args.screenshot)
        result.update(
            {
                "url": driver.current_url,
                "redirected_to_login": facts["path"] == "/login",
                "state": facts["state"],
                "states_seen": states,
                "steps": facts["steps"],
                "log": facts["log"],
                "alerts": observer.alerts,
                "elements": facts["elements"],
                "csp_violations": observer.csp,
                "console_errors": observer.console_errors,
                "cookies": [
                    {
                        "name": c.get("name"),
                        "httpOnly": c.get("httpOnly"),
                        "sameSite": c.get("sameSite"),
                        "secure": c.get("secure"),
                        "path": c.get("path"),
                    }
                    for c in driver.get_cookies()
                ],
                "timed_out": timed_out,
            }
        )
        return result
    finally:
        driver.quit()


def main(argv):
    args = parse_args(argv)
    try:
        result = run(args)
    except Exception as e:  # noqa: BLE001 - any failure to drive the browser is exit 3
        print(f"browser.py: could not drive the browser: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 1 if result["timed_out"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
