"""The search page in a real browser: Debian's headless Chromium, driven by Selenium, against the
server (uvicorn on 127.0.0.1, a free port, stopped at the end) over a small real index.

Fails, never skips, when Chromium or its driver is missing: `tests/run.sh` installs them. Pages
are audited with axe-core (selenium-axe-python bundles it).
Set DRC_JAX_SCREENSHOTS=folder to keep the screenshots (the README's are made this way).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from drc_jax.search.server import create_app
from tests.search_server_fixtures import WEIGHTS, build_server_index

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """A uvicorn server on a thread; ``stop()`` ends it (the journey's last step)."""

    def __init__(self, app):
        import uvicorn

        port = _free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + WAIT_S
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                pytest.fail("the search server did not start")
            time.sleep(0.05)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=WAIT_S)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from drc_jax.clip import load_clip
    from drc_jax.search import Searcher
    from drc_jax.search.watch import IndexWatcher

    root, index, _ = build_server_index(tmp_path_factory.mktemp("browser"), video=True)
    clip = load_clip(WEIGHTS)  # both towers: the server indexes files copied in
    searcher = Searcher.open(index, clip=clip, image_dtype="bfloat16")
    searcher.warm(k=24)
    watcher = IndexWatcher(searcher, clip).start()
    server = Served(create_app(searcher, watcher=watcher))
    yield server, searcher, root
    server.stop()
    watcher.stop()


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


def _hits(driver, method="drc") -> list[str]:
    from selenium.webdriver.common.by import By

    cards = driver.find_elements(By.CSS_SELECTOR, f'#results .column[data-method="{method}"] .hit')
    return [c.get_attribute("data-path") for c in cards]


def _shot(driver, tmp_path, name: str) -> None:
    shot = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    keep = os.environ.get("DRC_JAX_SCREENSHOTS")  # a folder: the README's screenshots
    if keep:
        shutil.copy(shot, Path(keep) / f"screenshot-{name}.png")


def test_a_user_journey_through_the_search_page(served, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    server, searcher, root = served
    wait = WebDriverWait(browser, WAIT_S)
    find = browser.find_element
    settled = lambda d: d.find_element(By.ID, "status").text.endswith(" ms")  # noqa: E731

    # A shared link runs its search; the empty first screen offers examples.
    browser.get(server.url + "/")
    wait.until(EC.text_to_be_present_in_element((By.ID, "index-info"), "13 images"))
    assert find(By.ID, "random-note").is_displayed()  # random test weights
    assert find(By.ID, "start").is_displayed() and find(By.ID, "examples").text
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#recent img")) >= 10)  # newest
    browser.get(server.url + "/?q=dog+-beach+-sand")
    wait.until(settled)
    first = _hits(browser)
    assert len(first) == 13 and find(By.ID, "q").get_attribute("value") == "dog -beach -sand"
    negs = [i.get_attribute("value") for i in browser.find_elements(By.CSS_SELECTOR, "input.neg")]
    assert negs == ["a beach", "sand"]  # every concept the server used is shown
    assert find(By.ID, "aff").get_attribute("value") == "dog"
    assert (
        "show" in find(By.ID, "decomposition").text and "hide" in find(By.ID, "decomposition").text
    )
    assert "aff" in find(By.ID, "aff").find_element(By.XPATH, "..").get_attribute("title")
    wait.until(  # every thumbnail decoded (a hit outside the roots shows a note instead)
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('#results img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
    )
    alts = [i.get_attribute("alt") for i in browser.find_elements(By.CSS_SELECTOR, "#results img")]
    alt = re.compile(r"^(photo [^/]+\.png|video [^/]+\.mp4), \d{4}-\d\d-\d\d$")  # name, date
    assert alts and all(alt.match(a) for a in alts), alts
    _shot(browser, tmp_path, "results")

    # Applying the panel unedited (Enter in a box) reproduces the same ranking.
    find(By.ID, "aff").send_keys(Keys.ENTER)
    wait.until(lambda d: "aff=" in d.current_url and settled(d))
    assert _hits(browser) == first
    assert browser.current_url.count("neg=") == 2

    # Clearing every exclusion keeps the edited "show" text.
    aff = find(By.ID, "aff")
    aff.clear()
    aff.send_keys("a puppy")
    for button in browser.find_elements(By.CSS_SELECTOR, "#negs .remove"):
        button.click()
    find(By.ID, "apply").click()
    wait.until(lambda d: "a+puppy" in d.current_url and settled(d))
    assert find(By.ID, "aff").get_attribute("value") == "a puppy"
    assert browser.find_elements(By.CSS_SELECTOR, "input.neg") == []
    assert _hits(browser) == [h.path for h in searcher.search("a puppy", k=24)["drc"][0].hits]

    # Back, Forward and reload restore a search.
    browser.back()
    wait.until(lambda d: "a+puppy" not in d.current_url and settled(d))
    assert find(By.ID, "aff").get_attribute("value") == "dog" and _hits(browser) == first
    browser.forward()
    wait.until(lambda d: "a+puppy" in d.current_url and settled(d))
    browser.refresh()
    wait.until(settled)
    assert find(By.ID, "aff").get_attribute("value") == "a puppy"

    # With method CLIP the panel offers no edit CLIP would ignore.
    from selenium.webdriver.support.ui import Select

    Select(find(By.ID, "method")).select_by_value("clip")
    wait.until(lambda d: "method=clip" in d.current_url and settled(d))
    assert find(By.ID, "method-note").is_displayed() and not find(By.ID, "aff").is_displayed()
    Select(find(By.ID, "method")).select_by_value("drc")
    wait.until(lambda d: "method=drc" in d.current_url and settled(d))

    # A filter still returns k results (applied inside the search); paging loads more.
    browser.get(server.url + "/?q=a+dog&folder=park")
    wait.until(settled)
    park = _hits(browser)
    assert (
        park and all("/park/" in p for p in park) and find(By.ID, "filters").get_attribute("open")
    )

    # "Load more" continues the ranking; the pages loaded are in the URL, so reload keeps them.
    browser.get(server.url + "/?q=a+dog&per=5")
    wait.until(settled)
    assert len(_hits(browser)) == 5 and find(By.ID, "more").is_displayed()
    find(By.ID, "more").click()
    wait.until(lambda d: len(_hits(d)) == 10 and "pages=2" in d.current_url)
    ten = _hits(browser)
    assert ten == [h.path for h in searcher.search("a dog", k=10)["drc"][0].hits]
    browser.refresh()
    wait.until(lambda d: settled(d) and len(_hits(d)) == 10)
    assert _hits(browser) == ten

    # Focus is visible on a thumbnail (an outline the card does not clip).
    browser.get(server.url + "/?q=a+cat")
    wait.until(settled)
    thumb = find(By.CSS_SELECTOR, "#results .hit a.thumb")
    browser.execute_script("arguments[0].focus()", thumb)
    find(By.TAG_NAME, "body").send_keys(Keys.SHIFT, Keys.TAB)
    find(By.TAG_NAME, "body").send_keys(Keys.TAB)
    style = browser.execute_script(
        "const s = getComputedStyle(document.activeElement);return [s.outlineStyle, s.outlineWidth]"
    )
    assert style[0] != "none" and float(style[1].rstrip("px")) >= 2
    contrast = browser.execute_script(
        "return getComputedStyle(document.getElementById('q')).borderTopColor"
    )
    assert _contrast(contrast, "rgb(255, 255, 255)") >= 3.0
    _audit(browser, "results")

    # On a phone the results start on the first screen; the panel is one line until "Edit".
    browser.set_window_size(390, 844)
    browser.get(server.url + "/?q=dog+-beach+-sand")
    wait.until(settled)
    box = browser.execute_script(
        "const r = e => document.querySelector(e).getBoundingClientRect();"
        "return {view: innerHeight, wide: document.documentElement.scrollWidth - innerWidth,"
        " hit: r('#results .hit').top, panel: r('#decomposition').height}"
    )
    assert box["hit"] < box["view"] - 150 and box["panel"] < 0.1 * box["view"], box
    assert box["wide"] <= 0 and not find(By.ID, "aff").is_displayed()
    assert find(By.ID, "dec-summary").text == "show “dog” · hide a beach, sand"
    _shot(browser, tmp_path, "phone")
    _audit(browser, "phone")
    find(By.ID, "dec-edit").click()
    assert find(By.ID, "aff").is_displayed() and find(By.ID, "apply").is_displayed()
    browser.set_window_size(1280, 1000)
    browser.get(server.url + "/?q=a+cat")
    wait.until(settled)
    thumb = find(By.CSS_SELECTOR, "#results .hit a.thumb")

    # The viewer: full size, next with the arrow key, download.
    thumb.click()
    wait.until(lambda d: d.find_element(By.ID, "viewer").is_displayed())
    media = "#stage img, #stage video"
    shown = find(By.CSS_SELECTOR, media).get_attribute("src")
    find(By.ID, "viewer").send_keys(Keys.ARROW_RIGHT)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, media).get_attribute("src") != shown)
    assert find(By.ID, "download").get_attribute("href").startswith(server.url + "/api/file/")
    _shot(browser, tmp_path, "viewer")
    _audit(browser, "viewer")
    find(By.ID, "close").click()

    # A video hit: a poster frame with a play badge and its length; the viewer seeks to the
    # best-matching segment (or says to download where the browser cannot play the codec).
    import json
    import urllib.request

    def api(**params):
        from urllib.parse import urlencode

        with urllib.request.urlopen(f"{server.url}/api/search?{urlencode(params)}") as r:
            return json.load(r)

    q, video = next(
        (q, h) for q in ("a dark night", "a bright day", "dusk", "a video", "grey")
        for h in api(q=q, type="video", name="dusk")["hits"] if h["time"]
    )  # fmt: skip
    browser.get(server.url + f"/?q={q.replace(' ', '+')}&type=video&name=dusk")
    wait.until(settled)
    card = find(By.CSS_SELECTOR, "#results .hit")
    assert card.find_element(By.CLASS_NAME, "badge").text == "▶ 0:12"
    wait.until(lambda d: d.execute_script(
        "const i = document.querySelector('#results img'); return i.complete && i.naturalWidth > 0"
    ))  # fmt: skip
    assert "best match at 0:0" in card.text
    card.find_element(By.CSS_SELECTOR, "a.thumb").click()
    wait.until(lambda d: d.find_element(By.ID, "viewer").is_displayed())
    playable = browser.execute_script(
        "return document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.64000d\"')"
    )
    if playable:
        wait.until(lambda d: d.execute_script(
            "const v = document.querySelector('#stage video'); return v && v.readyState >= 1 && "
            f"Math.abs(v.currentTime - {video['time']}) < 0.5"
        ))  # fmt: skip
    else:
        wait.until(lambda d: d.find_element(By.ID, "no-play").is_displayed())
    _shot(browser, tmp_path, "video")
    find(By.ID, "close").click()

    # A codec the browser cannot decode: the viewer says to download it, and the link does.
    browser.get(server.url + f"/?q={q.replace(' ', '+')}&type=video&name=old+camera")
    wait.until(settled)
    assert _hits(browser) == [str(root.resolve() / "clips" / "old camera.mp4")]
    find(By.CSS_SELECTOR, "#results .hit a.thumb").click()
    wait.until(lambda d: d.find_element(By.ID, "no-play").is_displayed())
    href = find(By.ID, "download").get_attribute("href")
    with urllib.request.urlopen(href) as r:
        assert r.read() == (root / "clips" / "old camera.mp4").read_bytes()
    find(By.ID, "close").click()
    browser.get(server.url + f"/?q={q.replace(' ', '+')}&type=video&name=dusk")
    wait.until(settled)

    # "Similar" runs a search by example.
    find(By.CSS_SELECTOR, "#results .hit .similar").click()
    wait.until(lambda d: "like=" in d.current_url and settled(d))
    assert "photos like dusk.mp4" in find(By.ID, "status").text and find(By.ID, "like-chip")

    # A file copied into the folder while serving appears, without a restart or a reload.
    browser.get(server.url + "/?q=a+cat&name=arrival")
    wait.until(settled)
    assert _hits(browser) == []
    shutil.copy(root / "beach" / "cat_on_beach_0.png", root / "new arrival.png")
    wait.until(lambda d: _hits(d) == [str(root.resolve() / "new arrival.png")])

    # A stopped server: a clear banner, the stale results greyed.
    server.stop()
    wait.until(lambda d: d.find_element(By.ID, "offline").is_displayed())
    assert "stale" in find(By.ID, "results").get_attribute("class")
    _shot(browser, tmp_path, "offline")


def _audit(driver, where: str) -> None:
    """axe-core's accessibility rules (WCAG 2 A/AA and best practices) find nothing."""
    from selenium_axe_python import Axe

    axe = Axe(driver)
    axe.inject()
    found = axe.run()["violations"]
    assert not found, f"{where}: {Axe.report(found)}"


def _contrast(fg: str, bg: str) -> float:
    def lum(css: str) -> float:
        parts = [int(x) / 255 for x in css[css.index("(") + 1 : css.index(")")].split(",")[:3]]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in parts]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((lum(fg), lum(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)
