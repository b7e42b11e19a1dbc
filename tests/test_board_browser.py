"""The board in a real headless Chromium: what a marketer sees and clicks, on a desktop and on a phone.

Debian's ``chromium`` driven by Selenium through Debian's ``chromedriver``
(``apt-get install chromium chromium-driver``); nothing is downloaded (Selenium
Manager is switched off). Skipped when either is missing. Screenshots are saved
to ``tests/artifacts/`` (ignored by git) for a human to look at.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from board_harness import BoardWorld

ARTIFACTS = Path(__file__).parent / "artifacts"

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return ARTIFACTS


@pytest.fixture
def browser(monkeypatch):
    selenium = pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert selenium.__version__
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a driver or a browser
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--lang=en-US",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def world(vendor_server, tmp_path):
    w = BoardWorld(vendor_server, tmp_path)
    # a day of our own probes of OpenAI, a slow spell in the morning and two failures
    for i in range(24 * 12):
        slow = 60 <= i <= 75
        w.probe("openai", minutes_ago=i * 5 + 2, ttft_s=(1.9 if slow else 0.55) + (i % 7) * 0.03)
    w.probe("openai", minutes_ago=300, ttft_s=None)
    w.probe("openai", minutes_ago=305, ttft_s=None)
    yield w
    w.close()


def visible_text(driver) -> str:
    return driver.find_element("tag name", "body").text


def test_a_marketer_sees_the_outage_acknowledges_it_and_opens_its_page(browser, world, artifacts):
    from selenium.webdriver.common.by import By

    iid = world.outage()
    world.clock.tick(12 * 60)
    world.h.poll()  # both pages polled again: fresh data
    world.h.poll("openai")

    browser.get(world.url + "/")
    assert "AI vendor status" in browser.title or "Down" in browser.title
    text = visible_text(browser)
    # every vendor, its state in words, and the headline
    assert "Down: Anthropic. 1 working normally." in text
    anthropic = browser.find_element(By.ID, "vendor-anthropic")
    openai = browser.find_element(By.ID, "vendor-openai")
    assert "Anthropic" in anthropic.text and "Down" in anthropic.text
    assert "OpenAI" in openai.text and "Working" in openai.text
    assert "Response time, last 24 h" in openai.text
    assert openai.find_element(By.CSS_SELECTOR, "svg.spark").is_displayed()
    # colour as well as words: the outage badge is red, the working one green
    red = anthropic.find_element(By.CLASS_NAME, "badge").value_of_css_property("color")
    green = openai.find_element(By.CLASS_NAME, "badge").value_of_css_property("color")
    assert red != green and _rgb(red)[0] > _rgb(red)[1] and _rgb(green)[1] > _rgb(green)[0]
    # the open incident, unacknowledged, with its button
    card = browser.find_element(By.ID, f"incident-{iid}")
    assert "Claude API unavailable" in card.text and "Outage" in card.text.title()
    assert "Not acknowledged yet" in card.text and "for 11 min" in card.text
    browser.save_screenshot(str(artifacts / "board-before-ack.png"))

    card.find_element(By.NAME, "by").send_keys("Maria")
    card.find_element(By.TAG_NAME, "button").click()

    _wait_url(browser, f"/?acked={iid}")
    text = visible_text(browser)
    assert f"Incident #{iid} acknowledged by Maria." in text
    card = browser.find_element(By.ID, f"incident-{iid}")
    assert "Acknowledged by Maria" in card.text and "Not acknowledged" not in card.text
    assert not card.find_elements(By.TAG_NAME, "button")
    assert world.store.ack(iid).by == "Maria"
    browser.save_screenshot(str(artifacts / "board.png"))

    card.find_element(By.LINK_TEXT, "Claude API unavailable").click()
    _wait_url(browser, f"/incidents/{iid}")
    text = visible_text(browser)
    assert "Claude API unavailable" in browser.find_element(By.TAG_NAME, "h1").text
    timeline = browser.find_element(By.CLASS_NAME, "timeline").text
    assert "Claude API requests are failing." in timeline
    assert "Alert (opened) to Slack C0MKTG" in timeline and "Alert (acknowledged)" in timeline
    assert "Acknowledged\nby Maria via board" in timeline
    assert "What to do" in text
    browser.save_screenshot(str(artifacts / "incident.png"))
    _full_page(browser, artifacts / "incident-full.png")

    browser.find_element(By.LINK_TEXT, "← All vendors").click()
    _wait_url(browser, world.url + "/")


def test_the_board_reads_well_on_a_phone(browser, world, artifacts):
    from selenium.webdriver.common.by import By

    iid = world.outage()
    browser.set_window_size(390, 844)  # an iPhone 12-sized viewport
    browser.get(world.url + "/")
    width = browser.execute_script("return window.innerWidth")
    assert width <= 420
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
    cards = browser.find_elements(By.CSS_SELECTOR, "ul.vendors > li")
    assert len({c.location["x"] for c in cards}) == 1, "vendor cards stack in one column"
    button = browser.find_element(By.ID, f"incident-{iid}").find_element(By.TAG_NAME, "button")
    assert button.size["height"] >= 40, "a thumb can press Acknowledge"
    browser.save_screenshot(str(artifacts / "board-phone.png"))

    browser.get(world.url + f"/incidents/{iid}")
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the incident page scrolls sideways by {overflow}px on a phone"
    browser.save_screenshot(str(artifacts / "incident-phone.png"))


def _wait_url(driver, ending: str) -> None:
    """Wait for the navigation a click started to land on a URL ending with ``ending``."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(
        lambda d: (
            d.current_url.endswith(ending) and d.execute_script("return document.readyState") == "complete"
        )
    )


def _rgb(css: str) -> tuple[int, int, int]:
    inside = css[css.index("(") + 1 : css.index(")")]
    r, g, b = (int(float(x)) for x in inside.split(",")[:3])
    return r, g, b


def _full_page(driver, path: Path) -> None:
    """A screenshot of the whole page height (headless Chromium grows the window to fit)."""
    w = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(w["width"], min(max(height + 40, w["height"]), 6000))
    driver.save_screenshot(str(path))
    driver.set_window_size(w["width"], w["height"])
