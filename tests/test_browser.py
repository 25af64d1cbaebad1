"""End to end in a real browser: a real `streamlit run app.py` server driven by Playwright in Debian's Chromium.
Pick the built-in dataset and a strategy, train a tiny run, watch the curve update, compare the result.
Screenshots of every page land in test-artifacts/."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]

playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (requirements-dev.txt)")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (apt-get install chromium)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("browser-runs")
    port = free_port()
    env = {**os.environ, "SEGCORE_RUNS": str(runs)}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.3)
    yield url, runs
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def settle(page, timeout_ms=120_000):
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout_ms)


def shoot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_pick_data_and_strategy_train_watch_and_compare(server):
    url, runs = server
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.set_default_timeout(120_000)

        page.goto(url)  # the Data page is the default page, served at /
        settle(page)
        page.get_by_text("Built-in", exact=True).click()
        settle(page)
        page.get_by_text("Training pairs").wait_for()
        page.locator("[data-testid='stImage']").nth(7).wait_for()  # the sample grid
        shoot(page, "1-data")

        page.goto(f"{url}/model")
        settle(page)
        page.get_by_text("Feature transfer (frozen encoder)").click()
        settle(page)
        epochs = page.get_by_label("Epochs")
        epochs.fill("3")
        epochs.press("Enter")
        min_steps = page.get_by_role("spinbutton", name="At least N steps")
        min_steps.fill("0")
        min_steps.press("Enter")
        settle(page)
        shoot(page, "2-model")
        page.get_by_role("button", name="▶ Train", exact=True).click()
        settle(page)
        page.locator("[data-testid='stAlert']").filter(has_text="Queued").wait_for()

        page.goto(f"{url}/training")
        settle(page)
        progress = page.locator("[data-testid='stProgress']").first
        progress.wait_for()
        loss_curves = set()  # the SVG path of the loss curve, as the page redraws it
        deadline = time.time() + 240
        while time.time() < deadline:
            text = page.locator("[data-testid='stMain']").inner_text()
            lines = page.locator(".js-plotly-plot .scatterlayer path.js-line")
            if lines.count():
                loss_curves.add(lines.first.get_attribute("d"))
            if "best mIoU" in text and "done" in text and "epoch 3/3" in text:
                break
            time.sleep(0.5)
        assert "done" in page.locator("[data-testid='stMain']").inner_text(), "the run did not finish in the browser"
        assert len(loss_curves - {None, ""}) >= 2, "the loss curve never grew while the page was open"
        shoot(page, "3-training")

        page.goto(f"{url}/compare")
        settle(page)
        page.get_by_text("Side by side").wait_for()
        # image, ground truth and the run's prediction for each of 4 validation images
        page.locator("[data-testid='stImage']").nth(11).wait_for()
        shoot(page, "4-compare")

        page.goto(f"{url}/learn")
        settle(page)
        page.get_by_text("what the encoder sees").wait_for()
        page.locator("[data-testid='stImage']").nth(2).wait_for()
        shoot(page, "5-learn")
        browser.close()
