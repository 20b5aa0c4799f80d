"""The search page in a real browser: Debian's headless Chromium, driven by Selenium, against the
server (uvicorn on 127.0.0.1, a free port, stopped at the end) over a small real index.

Fails, never skips, when Chromium or its driver is missing: `tests/run.sh` installs them.
Set DRC_JAX_SCREENSHOT=path to keep the screenshot (the README's is made this way).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from drc_jax.search.server import create_app
from tests.search_server_fixtures import build_server_index, open_warm_searcher

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    import uvicorn

    _, index, _ = build_server_index(tmp_path_factory.mktemp("browser"))
    app = create_app(open_warm_searcher(index))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the search server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=WAIT_S)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{missing} not found: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def test_typing_a_query_shows_results_and_an_editable_decomposition(server_url, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    browser.get(server_url + "/")
    wait.until(EC.text_to_be_present_in_element((By.ID, "index-info"), "11 images"))
    assert browser.find_element(By.ID, "random-note").is_displayed()  # random test weights

    k = browser.find_element(By.ID, "k")
    k.clear()
    k.send_keys("6")
    browser.find_element(By.ID, "q").send_keys("a dog not on a beach", Keys.ENTER)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .hit")) == 6)
    hits = browser.find_elements(By.CSS_SELECTOR, "#results .hit")
    scores = [float(h.find_element(By.CLASS_NAME, "score").text.split("·")[1]) for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(h.find_element(By.CLASS_NAME, "path").text.endswith(".png") for h in hits)
    wait.until(  # every thumbnail decoded (a hit outside the roots shows a note instead)
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('#results img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
    )

    panel = browser.find_element(By.ID, "decomposition")
    assert panel.is_displayed()
    assert browser.find_element(By.ID, "aff").get_attribute("value") == "a dog"
    assert browser.find_element(By.ID, "neg").get_attribute("value") == "a beach"
    assert browser.find_element(By.ID, "cf").text == "a dog on a beach"
    assert "from the decomposer" in browser.find_element(By.ID, "dec-state").text

    neg = browser.find_element(By.ID, "neg")  # the user corrects the split
    neg.clear()
    neg.send_keys("a park")
    browser.find_element(By.ID, "apply").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "dec-state"), "your edits"))
    assert browser.find_element(By.ID, "cf").text == "a dog with a park"

    browser.find_element(By.ID, "compare").click()  # CLIP and DRC side by side
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .column")) == 2)
    titles = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results .column h3")]
    assert titles == ["CLIP", "DRC"]
    for col in browser.find_elements(By.CSS_SELECTOR, "#results .column"):
        assert len(col.find_elements(By.CLASS_NAME, "hit")) == 6
    assert browser.find_element(By.ID, "neg").get_attribute("value") == "a park"  # kept
    assert "error" not in browser.find_element(By.ID, "status").text

    shot = tmp_path / "search_page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("DRC_JAX_SCREENSHOT"):
        shutil.copy(shot, os.environ["DRC_JAX_SCREENSHOT"])
