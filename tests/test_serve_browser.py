"""The web page in a real headless Chromium: search, compare two systems, open a document, ask (no-LLM mode).

Screenshots go to ``$RETRIEVER_SCREENSHOTS`` when set (else the test's temporary directory).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from retriever.serve.app import create_app
from retriever.serve.config import ServeConfig
from retriever.serve.live import LiveEngine

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium "
                                       "chromium-driver); .ci/run installs them")
QUERY = "statins breast cancer risk"
QUESTION = "Do statins reduce the risk of breast cancer?"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900"]


@pytest.fixture(scope="module")
def server(slice_engine):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = ServeConfig(port=port)
    app = create_app(LiveEngine.open(slice_engine.path), config)
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def shots(tmp_path) -> Path:
    directory = Path(os.environ.get("RETRIEVER_SCREENSHOTS", tmp_path / "shots"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_page_search_compare_document_and_ask(server, browser, shots, slice_engine):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 120)
    browser.get(server + "/")
    wait.until(lambda d: "generation" in d.find_element(By.ID, "engine-info").text)

    query = browser.find_element(By.ID, "query")
    query.send_keys(QUERY, Keys.ENTER)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".column .hit"))
    one = browser.find_elements(By.CSS_SELECTOR, ".column")
    assert len(one) == 1
    expected = [h.doc_id for h in slice_engine.search(QUERY, k=10)]
    assert [e.get_attribute("data-doc") for e in one[0].find_elements(By.CSS_SELECTOR, ".hit")] == expected
    assert browser.find_elements(By.CSS_SELECTOR, ".hit mark"), "query terms are highlighted"
    browser.save_screenshot(str(shots / "search.png"))

    Select(browser.find_element(By.ID, "system-a")).select_by_value("bm25")
    browser.find_element(By.ID, "compare").click()
    Select(browser.find_element(By.ID, "system-b")).select_by_value("dense")
    browser.find_element(By.ID, "query").send_keys(Keys.ENTER)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".column")) == 2
               and all(c.find_elements(By.CSS_SELECTOR, ".hit") for c in d.find_elements(By.CSS_SELECTOR, ".column")))
    for column in browser.find_elements(By.CSS_SELECTOR, ".column"):
        using = column.get_attribute("data-using")
        shown = [e.get_attribute("data-doc") for e in column.find_elements(By.CSS_SELECTOR, ".hit")]
        assert shown == [h.doc_id for h in slice_engine.search(QUERY, k=10, using=using)]
        assert "score" in column.find_element(By.CSS_SELECTOR, ".score").text
    assert [c.get_attribute("data-using") for c in browser.find_elements(By.CSS_SELECTOR, ".column")] == [
        "bm25", "dense"]
    browser.save_screenshot(str(shots / "compare.png"))

    first = browser.find_element(By.CSS_SELECTOR, ".column .hit a")
    doc_id = first.get_attribute("data-doc")
    first.send_keys(Keys.ENTER)
    wait.until(ec.visibility_of_element_located((By.ID, "doc-view")))
    assert browser.find_element(By.ID, "doc-id").text == doc_id
    assert browser.find_element(By.ID, "doc-title").text == slice_engine.corpus[doc_id].title
    browser.save_screenshot(str(shots / "document.png"))
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait.until(ec.invisibility_of_element_located((By.ID, "doc-view")))

    browser.find_element(By.ID, "tab-ask").click()
    browser.find_element(By.ID, "question").send_keys(QUESTION, Keys.ENTER)
    wait.until(ec.visibility_of_element_located((By.ID, "answer")))
    expected_answer = slice_engine.ask(QUESTION)
    hops = browser.find_elements(By.CSS_SELECTOR, "#trace .hop")
    assert len(hops) == len(expected_answer.trace.hops)
    assert hops[0].find_element(By.CSS_SELECTOR, ".q").text == QUESTION
    cited = [a.get_attribute("data-doc") for a in browser.find_elements(By.CSS_SELECTOR, "#answer .citations a")]
    assert cited == expected_answer.citations and cited
    browser.execute_script("document.getElementById('answer').scrollIntoView({block: 'end'})")
    browser.save_screenshot(str(shots / "ask.png"))
    browser.find_element(By.CSS_SELECTOR, "#answer .citations a").click()
    wait.until(ec.visibility_of_element_located((By.ID, "doc-view")))
    assert browser.find_element(By.ID, "doc-id").text == cited[0]
    browser.find_element(By.ID, "doc-close").click()

    browser.set_window_size(420, 900)
    browser.find_element(By.ID, "tab-search").click()
    browser.execute_script("window.scrollTo(0, 0)")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 420, "no horizontal scrolling on a narrow window"
    browser.save_screenshot(str(shots / "narrow.png"))
