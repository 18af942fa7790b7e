#!/usr/bin/env python3
"""Drive an agent's fleet page in a real browser: headless Chromium from
Debian (chromium, chromium-driver, python3-selenium), run INSIDE a lab host
by tests/lab/test_fleet.lua (never in the machine's own network namespace).

    fleet_browser.py URL OUTDIR INITIAL_NAMES JOIN_NAME

INITIAL_NAMES is a comma-separated list of peers the page must list first.
The script prints one line per step, a word and a JSON document, flushed, so
that the suite can act between them:

    INITIAL {rows}        the page lists INITIAL_NAMES (rows: the table as shown)
    FILTERS {...}         what the model and status filters leave on screen
    READY-JOIN            the suite may now announce JOIN_NAME
    JOINED {rows}         JOIN_NAME appeared without a reload (screenshot taken)
    READY-LEAVE           the suite may now withdraw JOIN_NAME
    LEFT {rows}           JOIN_NAME is gone, without a reload
    REQUESTS [...]        every request the page made, and any other to the network
    DONE

Every wait is bounded (WAIT seconds); on a timeout it prints TIMEOUT and
what the page showed, and exits 1.
"""
import json
import os
import shutil
import sys
import tempfile

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

WAIT = 30

ROWS_JS = """
return Array.from(document.querySelectorAll('#peers tr[data-name]')).map(function (tr) {
  function cell(c) { var td = tr.querySelector('.' + c); return td ? td.innerText.trim() : null; }
  return {name: tr.dataset.name, health: tr.dataset.health, address: cell('c-addr'), model: cell('c-model'),
          pill: cell('c-health'), trust: cell('c-trust'), sources: cell('c-sources'), age: cell('c-age')};
});
"""


def say(word, doc=None):
    print(word if doc is None else word + " " + json.dumps(doc, sort_keys=True), flush=True)


def main():
    url, outdir, initial, join_name = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
    profile = tempfile.mkdtemp(prefix="lmdisc-chromium-")
    os.environ["HOME"] = profile  # nothing of this machine's root is read or written
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-extensions", "--disable-default-apps", "--no-default-browser-check",
                 "--disable-dev-shm-usage", "--window-size=1360,700", "--force-device-scale-factor=1",
                 "--user-data-dir=" + profile):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        def rows():
            return driver.execute_script(ROWS_JS)

        def wait(what, cond):
            try:
                WebDriverWait(driver, WAIT, poll_frequency=0.05).until(lambda d: cond())
            except TimeoutException:
                say("TIMEOUT", {"waiting for": what, "rows": rows(),
                                "page": driver.find_element(By.TAG_NAME, "body").text[:3000]})
                sys.exit(1)

        def names():
            return sorted(r["name"] for r in rows())

        driver.get_log("performance")  # what the browser's first, empty tab asked for
        driver.get(url)
        # a value that a reload would lose
        driver.execute_script("window.lmdiscMarker = 'loaded once';")
        wait("the event stream to be live",
             lambda: driver.find_element(By.ID, "live").get_attribute("class") == "on")
        wait("the initial peers " + ",".join(initial), lambda: all(n in names() for n in initial))
        say("INITIAL", {"rows": rows(), "title": driver.title,
                        "cards": {k: driver.find_element(By.ID, k).text
                                  for k in ("n-peers", "n-up", "n-out", "n-untrusted")},
                        "agent": driver.find_element(By.ID, "agent").text})

        # the filters, then back to everything
        model = Select(driver.find_element(By.ID, "f-model"))
        status = Select(driver.find_element(By.ID, "f-status"))
        filters = {"models": [o.get_attribute("value") for o in model.options]}
        for value in filters["models"]:
            if value:
                model.select_by_value(value)
                filters["model=" + value] = names()
        model.select_by_value("")
        for value in ("up", "draining", "down"):
            status.select_by_value(value)
            filters["status=" + value] = names()
        status.select_by_value("")
        filters["shown"] = driver.find_element(By.ID, "shown").text
        say("FILTERS", filters)
        driver.execute_script("document.activeElement && document.activeElement.blur();")
        driver.save_screenshot(os.path.join(outdir, "fleet-page-before.png"))

        say("READY-JOIN")
        wait(join_name + " to appear", lambda: join_name in names())
        # the new row's highlight fades out before the picture is taken, and
        # no control has the focus
        wait("the highlight to fade", lambda: driver.execute_script("return document.getAnimations().length") == 0)
        driver.execute_script("document.activeElement && document.activeElement.blur();")
        driver.save_screenshot(os.path.join(outdir, "fleet-page.png"))
        say("JOINED", {"rows": rows(), "marker": driver.execute_script("return window.lmdiscMarker || null;"),
                       "events": driver.find_element(By.ID, "events").text})

        say("READY-LEAVE")
        wait(join_name + " to leave", lambda: join_name not in names())
        say("LEFT", {"rows": rows(), "marker": driver.execute_script("return window.lmdiscMarker || null;"),
                     "events": driver.find_element(By.ID, "events").text})

        # the page's requests (those of its document), and every request to
        # the network at all: the browser's own pages (chrome://) are neither
        requests = []
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                p = msg["params"]
                r = {"method": p["request"]["method"], "url": p["request"]["url"],
                     "document": p.get("documentURL", "")}
                if r["document"].startswith(url) or r["url"].split(":")[0] in ("http", "https", "ws", "wss"):
                    requests.append(r)
        say("REQUESTS", requests)
        say("DONE")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
