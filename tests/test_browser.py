"""End to end in a real browser: a real `streamlit run app.py` server driven by Playwright in Debian's Chromium.

Most runs are trained in this process with tiny settings and moved into the server's runs folder finished; only
what a test is about goes through the UI. Screenshots of every page land in test-artifacts/ (browser-*.png)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from .conftest import wait_until, write_images_masks

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PIN = "2468"
HOSTILE_NAMES = ["<img src=x onerror=alert(1)>", "<style>body{display:none}</style>", "<b>bold</b>"]
TINY = dict(epochs=1, min_steps=0, max_steps=2, height=64, width=64, batch_size=4, augment="none")

playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (requirements-dev.txt)")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (apt-get install chromium)"),
]


# -- servers, pages, runs ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(runs: Path, **env_extra):
    port = free_port()
    env = {**os.environ, "SEGCORE_RUNS": str(runs), "SEGCORE_TEACHER_PIN": PIN, **env_extra}
    log = open(runs.parent / f"server-{port}.log", "wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.3)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("browser") / "runs"
    runs.mkdir()
    with streamlit_server(runs) as url:
        yield url, runs


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def new_page(browser, **context_options):
    context = browser.new_context(viewport={"width": 1400, "height": 1600}, accept_downloads=True, **context_options)
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.dialogs = []  # any alert() an injected name manages to run lands here
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    return page


def settle(page, timeout_ms=120_000):
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout_ms)


def click_button(page, name: str) -> None:
    """Click the one button of that name, once a rerun's stale copy of the page has been cleared away."""
    button = page.get_by_role("button", name=name, exact=True)
    playwright.expect(button).to_have_count(1, timeout=60_000)
    button.click()


SECRET = "a class passphrase"


def sign_in(page, student: str, secret: str = SECRET) -> None:
    """Sign in as a student does: name, Continue, then the passphrase (typed twice on the first visit)."""
    page.get_by_label("Your name").fill(student)
    page.get_by_role("button", name="Continue").click()
    settle(page)
    first = page.get_by_label("Choose a passphrase")
    playwright.expect(first.or_(page.get_by_label("Your passphrase"))).to_be_visible()
    if first.is_visible():
        first.fill(secret)
        page.get_by_label("Type it again").fill(secret)
        page.get_by_role("button", name="Create my workspace").click()
    else:
        page.get_by_label("Your passphrase").fill(secret)
        page.get_by_role("button", name="Sign in").click()
    settle(page)


def visit(page, url, path="", student="Tester"):
    """Open a page as a student: signed in by the browser's session cookie, or through the sign-in (never by the
    page address)."""
    page.goto(f"{url}/{path}")
    settle(page)
    signed = page.locator("[data-testid='stSidebar']").get_by_text("Signed in as")
    playwright.expect(signed.or_(page.get_by_label("Your name"))).to_be_visible()
    if not signed.is_visible():
        sign_in(page, student)
    signed.wait_for()
    settle(page)


PAGES = {
    "Data": ("", "Data"),
    "Model": ("model", "Model & strategy"),
    "Training": ("training", "Training"),
    "Compare": ("compare", "Compare"),
    "Learn": ("learn", "Learn"),
    "Teacher": ("teacher", "Teacher"),
}


def via_sidebar(page, title):
    """Change page the way a student does, by the sidebar's navigation (the session, not the address, knows
    who it is then)."""
    path, heading = PAGES[title]
    for _ in range(3):
        page.locator("[data-testid='stSidebarNav'] a").filter(has_text=title).first.click()
        try:
            page.wait_for_url(re.compile(rf"127\.0\.0\.1:\d+/{path}(\?|$)"), timeout=15_000)
            break
        except playwright.TimeoutError:
            continue  # a click during a rerun can be lost
    page.locator("h1").filter(has_text=heading).first.wait_for()
    settle(page)


def shoot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"), full_page=True)


def main_text(page) -> str:
    return page.locator("[data-testid='stMain']").inner_text().replace("\xa0", " ")


def settled_snapshot(page) -> tuple[str, str] | None:
    """The main area's and the sidebar's text read in one go, while no script runs (None otherwise: during a
    rerun the page shows a mix of the old and the new state)."""
    return page.evaluate("""() => {
        const app = document.querySelector("[data-testid='stApp']");
        if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return null;
        const text = id => document.querySelector(`[data-testid='${id}']`).innerText.replaceAll('\\u00a0', ' ');
        return [text('stMain'), text('stSidebar')];
    }""")


def sidebar_text(page) -> str:
    return page.locator("[data-testid='stSidebar']").inner_text().replace("\xa0", " ")


CARD = re.compile(r"^\S+ (\S+) — .* · (queued|running|done|failed|cancelled|lost)$")


def run_cards(page) -> list[tuple[str, str]]:
    """(run id, state) of each run card on the Training page, top to bottom."""
    lines = page.locator("[data-testid='stMain'] [data-testid='stMarkdownContainer'] p").all_inner_texts()
    return [m.groups() for m in (CARD.match(line.replace("\xa0", " ").strip()) for line in lines) if m]


def whole_name(name):
    """A pattern for one run id or group name, not a prefix of another: two clicks in the same second get
    names like X and X-2, and X must not match X-2 (works in Python and in the browser's JavaScript)."""
    return re.compile(r"(?<![\w-])" + re.escape(name).replace("\\-", "-") + r"(?![\w-])")


def card_of(page, run_id):
    """The bordered box of one run card (its heading's column's block's parent block)."""
    heading = (
        page.locator("[data-testid='stMain'] [data-testid='stMarkdownContainer'] p")
        .filter(has_text=whole_name(run_id))
        .first
    )
    return heading.locator("xpath=ancestor::div[@data-testid='stVerticalBlock'][2]")


def set_tiny_model_settings(page, epochs=1):
    """Model page: the smallest image size, few epochs, no minimum step count."""
    size = page.locator("[data-testid='stSlider']").filter(has_text="Image size").get_by_role("slider")
    size.focus()
    size.press("Home")
    settle(page)
    for label, value in (("Epochs", epochs), ("At least N steps", 0)):
        box = page.get_by_role("spinbutton", name=label, exact=True)
        box.fill(str(value))
        box.press("Enter")
        settle(page)
    assert size.get_attribute("aria-valuetext") in ("64", None) or "64" in size.inner_text()


def make_run(runs: Path, data: Path, owner: str, strategy="scratch", group="g", **settings):
    """Train a tiny run in this process in a staging folder, then move it finished into the server's runs
    folder (the server's scheduler would start a queued run itself)."""
    from segcore import TrainConfig, train
    from segcore.jobs.queue import JobQueue
    from segcore.runs.run import Run

    staging = Path(tempfile.mkdtemp(dir=runs.parent, prefix="staging-"))  # its own: ids are picked per folder
    # an id of its own (not a prefix of another's), whatever second it is made in
    settings.setdefault("run_name", f"{group}-{owner}-{strategy}-{secrets.token_hex(2)}")
    config = TrainConfig(data=str(data), strategy=strategy, **{**TINY, **settings})
    queued = JobQueue(staging).submit(config, group=group, owner=owner, start=False)
    done = train(config, staging, run_id=queued.run_id)
    assert done.state == "done" and done.owner == owner
    target = runs / queued.run_id
    while target.exists():  # two runs made in the same second get the same default id: never move into another
        target = target.with_name(target.name + "-b")
    shutil.move(str(done.path), str(target))
    return Run(target)


def choose_folder(page, folder) -> None:
    """Data page: pick *Folder on this server* and type the folder's path, as a student does."""
    page.get_by_test_id("stRadioGroup").get_by_text("Folder on this server", exact=True).click()
    settle(page)
    path = page.get_by_label("Folder path")
    path.fill(str(folder))
    path.press("Enter")


def cancel_active(runs: Path, owners):
    from segcore.jobs.queue import JobQueue
    from segcore.runs.run import list_runs

    queue = JobQueue(runs)
    for run in list_runs(runs):
        if run.owner in owners and run.state in ("queued", "running"):
            queue.cancel(run.run_id, grace_s=3)


def dataset(tmp_path_factory, name, seed=0, names=None) -> Path:
    root = write_images_masks(tmp_path_factory.mktemp("data") / name, count=12, seed=seed)
    if names:
        (root / "classes.txt").write_text("\n".join(names) + "\n")
    return root


def pick_in_multiselect(page, key_text, option_text):
    box = page.locator("[data-testid='stMultiSelect']").filter(has_text=key_text)
    box.locator("input").click()
    page.get_by_role("option").filter(has_text=whole_name(option_text)).first.click()
    page.keyboard.press("Escape")
    settle(page)


def multiselect_options(page, key_text) -> list[str]:
    box = page.locator("[data-testid='stMultiSelect']").filter(has_text=key_text)
    box.locator("input").click()
    page.get_by_role("option").first.wait_for()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return options


# -- the walk-through -------------------------------------------------------------------------------
def test_pick_data_and_strategy_train_watch_and_compare(server, browser):
    url, runs = server
    page = new_page(browser)
    visit(page, url)  # the Data page is the default page, served at /
    page.get_by_test_id("stRadioGroup").get_by_text("Built-in", exact=True).click()
    settle(page)
    page.get_by_text("Training pairs").wait_for()
    page.locator("[data-testid='stImage']").nth(7).wait_for()  # the sample grid
    shoot(page, "1-data")

    visit(page, url, "model")
    # parameter transfer for 12 epochs: long enough (several seconds even on a fast machine) for the page to
    # redraw the growing curve; feature transfer's cached epochs can end before the page's first refresh
    page.get_by_test_id("stRadioGroup").get_by_text("Parameter transfer (fine-tune)").click()
    settle(page)
    set_tiny_model_settings(page, epochs=12)
    shoot(page, "2-model")
    click_button(page, "▶ Train")
    settle(page)
    page.locator("[data-testid='stAlert']").filter(has_text="Queued").wait_for()

    visit(page, url, "training")
    page.locator("[data-testid='stProgress']").first.wait_for()
    loss_curves = set()  # the SVG path of the loss curve, as the page redraws it
    disagreements, sampled = [], 0  # the run card against the sidebar's counts, read at the same instant
    deadline = time.time() + 240
    while time.time() < deadline:
        text = main_text(page)
        lines = page.locator(".js-plotly-plot .scatterlayer path.js-line")
        if lines.count():
            loss_curves.add(lines.first.get_attribute("d"))
        snapshot = settled_snapshot(page)
        if snapshot:
            sampled += 1
            cards = [m.group(2) for m in (CARD.match(line.strip()) for line in snapshot[0].splitlines()) if m]
            shown = tuple(int(n) for n in COUNTS.search(snapshot[1]).groups())
            if shown != (cards.count("running"), cards.count("queued"), cards.count("done")):
                disagreements.append((cards, shown))
        if "best mIoU" in text and "done" in text and "epoch 12/12" in text:
            break
        time.sleep(0.25)
    assert "done" in main_text(page), "the run did not finish in the browser"
    assert sampled >= 2 and not disagreements, f"the sidebar and the run card disagreed: {disagreements}"
    assert len(loss_curves - {None, ""}) >= 2, "the loss curve never grew while the page was open"
    shoot(page, "3-training")

    visit(page, url, "compare")
    page.get_by_text("Side by side").wait_for()
    # image, ground truth and the run's prediction for each of 4 validation images
    page.locator("[data-testid='stImage']").nth(11).wait_for()
    shoot(page, "4-compare")

    visit(page, url, "learn")
    page.get_by_text("what the encoder sees").wait_for()
    page.locator("[data-testid='stImage']").nth(2).wait_for()
    shoot(page, "5-learn")
    page.context.close()


# -- issue 9: markup in class names stays text --------------------------------------------------------
def test_html_in_class_names_shows_as_text_on_data_and_compare(browser, tmp_path_factory):
    # its own server and runs folder: the module's other tests leave newer runs that Compare would pick first
    runs = tmp_path_factory.mktemp("hostile-server") / "runs"
    runs.mkdir()
    with streamlit_server(runs) as url:
        hostile = dataset(tmp_path_factory, "hostile", names=HOSTILE_NAMES)
        make_run(runs, hostile, owner="Hana", group="hostile")

        def check(page, where):
            assert page.evaluate("getComputedStyle(document.body).display") != "none", where
            assert page.evaluate("getComputedStyle(document.body).visibility") == "visible", where
            assert page.locator("[data-testid='stMain']").is_visible(), where  # (body itself has no height here)
            injected = page.evaluate("""Array.from(document.querySelectorAll('style'))
                .filter(s => s.textContent.includes('body{display:none}')).length""")
            assert injected == 0, f"{where}: a <style> from a class name reached the page"
            assert page.locator("[data-testid='stMain'] img[src='x']").count() == 0, where
            assert page.locator("[data-testid='stMain'] b").filter(has_text="bold").count() == 0, where
            assert not page.dialogs, f"{where}: {page.dialogs}"

        # the owner opens the dataset on Data: the chips and the chart show the names as written
        owner = new_page(browser)
        visit(owner, url, student="Hana")
        choose_folder(owner, hostile)
        settle(owner)
        # the page showed another dataset's report a moment ago: wait for this one's first chip, then the rerun's end
        owner.get_by_text(f"0: {HOSTILE_NAMES[0]}", exact=True).wait_for()
        settle(owner)
        shoot(owner, "9-data-hostile-names")
        text = main_text(owner)
        for i, name in enumerate(HOSTILE_NAMES):
            assert f"{i}: {name}" in text, f"chip {i} not shown literally"
            owner.get_by_text(f"{i}: {name}", exact=True).wait_for()
        ticks = owner.locator(".js-plotly-plot .xtick text").all_text_contents()
        assert ticks == HOSTILE_NAMES, ticks
        check(owner, "Data")
        shoot(owner, "9-data-hostile-names")

        # a classmate with the class toggle on opens Compare on Hana's run
        other = new_page(browser)
        # Ivan works on the same dataset (Compare's default choice follows the student's dataset: without this, another
        # test's newer run on the built-in data would be chosen instead of Hana's)
        visit(other, url, student="Ivan")
        choose_folder(other, hostile)
        other.get_by_text(f"0: {HOSTILE_NAMES[0]}", exact=True).wait_for()
        settle(other)
        via_sidebar(other, "Compare")
        other.get_by_text("Include my class's runs (read-only)").click()
        settle(other)
        other.get_by_text("Side by side").wait_for()
        other.locator("[data-testid='stImage']").nth(5).wait_for()
        text = main_text(other)
        assert HOSTILE_NAMES[0] in text  # the class picker of "Where does it go wrong?" starts on class 0
        ticks = other.locator(".js-plotly-plot .xtick text").all_text_contents()
        for name in HOSTILE_NAMES:
            assert name in ticks, ticks
        check(other, "Compare")
        shoot(other, "9-compare-hostile-names")
        owner.context.close()
        other.context.close()

    # -- issue 11: one dataset, kept everywhere; never mixed; counters agree ---------------------------------
    def test_an_uploaded_dataset_stays_chosen_across_pages_and_reloads_and_trains(server, browser, tmp_path_factory):
        url, runs = server
        folder = dataset(tmp_path_factory, "petri", seed=3)
        archive = folder.parent / "my-petri-dishes.zip"
        with zipfile.ZipFile(archive, "w") as z:
            for file in sorted(folder.rglob("*")):
                if file.is_file():
                    z.write(file, f"petri/{file.relative_to(folder)}")
        page = new_page(browser)
        visit(page, url, student="Zoe")
        page.get_by_test_id("stRadioGroup").get_by_text("Upload", exact=True).click()
        settle(page)
        uploader = page.locator("[data-testid='stFileUploader']").filter(has_text="A .zip of the dataset folder")
        with page.expect_file_chooser() as chooser:
            uploader.locator("[data-testid='stFileUploaderDropzone']").click()
        chooser.value.set_files(str(archive))
        playwright.expect(page.locator("[data-testid='stMain']")).to_contain_text("my-petri-dishes.zip", timeout=60_000)
        page.get_by_text("Training pairs").wait_for()
        settle(page)
        assert "my-petri-dishes.zip" in main_text(page)
        assert "my-petri-dishes.zip" in sidebar_text(page)
        for title in ("Model", "Training", "Compare", "Learn", "Data"):
            via_sidebar(page, title)
            assert "my-petri-dishes.zip" in sidebar_text(page), f"{title}: {sidebar_text(page)}"
            assert "student=" not in page.url and "Zoe" in sidebar_text(page), page.url  # the session knows her
        page.reload()
        settle(page)
        page.get_by_text("Training pairs").wait_for()
        assert "my-petri-dishes.zip" in sidebar_text(page)
        assert "Using my-petri-dishes.zip" in main_text(page)
        shoot(page, "11-data-after-reload")

        via_sidebar(page, "Model")
        set_tiny_model_settings(page)
        click_button(page, "▶ Train")
        settle(page)
        page.locator("[data-testid='stAlert']").filter(has_text="Queued").wait_for()
        from segcore.jobs.workspace import WorkspaceRecord
        from segcore.runs.run import list_runs

        try:
            (run,) = [r for r in list_runs(runs) if r.owner == "Zoe"]
            assert WorkspaceRecord.load(runs, "Zoe").upload_name(run.config["data"]) == "my-petri-dishes.zip"
            assert run.config["data"].endswith("my-petri-dishes.zip") and run.config["height"] == 64
        finally:
            cancel_active(runs, {"Zoe"})
        page.context.close()


def test_compare_refuses_runs_of_two_datasets(server, browser, tmp_path_factory):
    url, runs = server
    first = make_run(runs, dataset(tmp_path_factory, "apples", seed=1), owner="Mia", group="apples")
    second = make_run(runs, dataset(tmp_path_factory, "pears", seed=2), owner="Mia", group="pears")
    page = new_page(browser)
    visit(page, url, "compare", student="Mia")
    for run in (first, second):
        if not whole_name(run.run_id).search(
            " ".join(page.locator("[data-testid='stMultiSelect']").first.all_inner_texts())
        ):
            pick_in_multiselect(page, "Runs to compare", run.run_id)
    alert = page.locator("[data-testid='stAlert']").filter(has_text="different datasets")
    alert.wait_for()
    settle(page)  # until the rerun ends, the previous run's elements stay on the page (stale, greyed)
    assert "apples" in alert.inner_text() and "pears" in alert.inner_text()
    text = main_text(page)
    assert "Side by side" not in text and "IoU per class" not in text
    assert page.locator("[data-testid='stImage']").count() == 0
    assert page.locator(".js-plotly-plot").count() == 0
    shoot(page, "11-compare-mixed")
    page.context.close()


COUNTS = re.compile(r"Your runs: (\d+) training · (\d+) queued · (\d+) finished")
QUEUE = re.compile(r"Queue: (\d+) training · (\d+) waiting · (\d+) finished")


def test_run_counters_agree_while_a_comparison_trains(browser, tmp_path_factory):
    runs = tmp_path_factory.mktemp("counters") / "runs"
    runs.mkdir()
    data = dataset(tmp_path_factory, "cells", seed=5)
    with streamlit_server(runs) as url:
        page = new_page(browser)
        visit(page, url, student="Cora")
        choose_folder(page, data)
        playwright.expect(page.locator("[data-testid='stSidebar']")).to_contain_text(data.name, timeout=60_000)
        page.get_by_text("Training pairs").wait_for()
        settle(page)
        via_sidebar(page, "Model")
        set_tiny_model_settings(page)
        page.get_by_role("button", name="▶▶ Train all strategies").click()
        settle(page)
        page.locator("[data-testid='stAlert']").filter(has_text="Queued").wait_for()
        via_sidebar(page, "Training")

        def snapshot():
            mine = COUNTS.search(sidebar_text(page))
            everyone = QUEUE.search(main_text(page))
            states = [state for _, state in run_cards(page)]
            return (
                (tuple(map(int, mine.groups())) if mine else None),
                (tuple(map(int, everyone.groups())) if everyone else None),
                states,
            )

        # every state is checked as it comes: runs waiting, one training, the first finished (waiting for all five
        # would take minutes on a small machine: the rest are cancelled once all three states have been seen)
        seen, deadline = set(), time.time() + 300
        try:
            while time.time() < deadline and seen != {"queued", "running", "done"}:
                for _ in range(10):  # the sidebar and the run cards refresh on their own clocks (2 s, 1 s)
                    mine, everyone, states = snapshot()
                    by_cards = (states.count("running"), states.count("queued"), states.count("done"))
                    if mine == by_cards and everyone == by_cards and len(states) == 5:
                        break
                    time.sleep(0.7)
                else:
                    shoot(page, "11-counters-disagree")
                    pytest.fail(f"sidebar {mine}, queue caption {everyone}, cards {states}")
                assert not set(states) - {"queued", "running", "done"}, states
                for state, count in zip(("running", "queued", "done"), by_cards):
                    if count and state not in seen:
                        shoot(page, f"11-counters-{state}")
                        seen.add(state)
                time.sleep(1.0)
            assert seen == {"queued", "running", "done"}, seen
        finally:
            cancel_active(runs, {"Cora"})
        page.context.close()


# -- issue 12: students apart, the teacher over all --------------------------------------------------------
def test_two_students_see_only_their_own_runs_and_train_side_by_side(server, browser, tmp_path_factory):
    url, runs = server
    data = dataset(tmp_path_factory, "leaves", seed=7)
    finished = {who: make_run(runs, data, owner=who, group=f"leaves-{who}") for who in ("Alice", "Bob")}
    alice, bob = new_page(browser), new_page(browser)
    try:
        for page in (alice, bob):
            visit(page, url, "model", student=page_name(page, alice))
        # the same (default, slow) settings, clicked at about the same time: one run each
        click_button(alice, "▶ Train")
        click_button(bob, "▶ Train")
        for page in (alice, bob):
            settle(page)
            page.locator("[data-testid='stAlert']").filter(has_text="Queued").wait_for()
        from segcore.runs.run import list_runs

        clicked = {
            r.owner: r for r in list_runs(runs) if r.owner in ("Alice", "Bob") and r.state in ("queued", "running")
        }
        assert set(clicked) == {"Alice", "Bob"}
        assert clicked["Alice"].config["fingerprint"] == clicked["Bob"].config["fingerprint"]
        assert clicked["Alice"].run_id != clicked["Bob"].run_id

        for page, me, other in ((alice, "Alice", "Bob"), (bob, "Bob", "Alice")):
            visit(page, url, "training", student=me)
            page.locator("[data-testid='stProgress']").first.wait_for()
            page.locator("[data-testid='stSidebar']").get_by_text(me, exact=True).wait_for()  # this student's page
            settle(page)
            groups = multiselect_or_select_options(page, "Comparison")
            shoot(page, f"12-training-{me}-own")
            assert all(other not in g for g in groups) and not whole_name(clicked[other].run_id).search(main_text(page))
            assert finished[other].config["group"] not in groups, groups
            visit(page, url, "compare", student=me)
            # what is chosen (the chips) and what can be added (the open list)
            options = multiselect_options(page, "Runs to compare") + [
                page.locator("[data-testid='stMultiSelect']").first.inner_text()
            ]
            assert any(whole_name(finished[me].run_id).search(o) for o in options) and not any(
                whole_name(finished[other].run_id).search(o) for o in options
            )
        shoot(alice, "12-training-alice")

        # Bob with the class toggle on sees Alice's active run, without a Cancel button; his own has one
        visit(bob, url, "training", student="Bob")
        bob.get_by_text("Show my class's runs too (read-only)").click()
        settle(bob)
        assert clicked["Alice"].config["group"] != clicked["Bob"].config["group"]  # same second, two comparisons
        pick_select(bob, "Comparison", clicked["Alice"].config["group"])
        card_of(bob, clicked["Alice"].run_id).wait_for()
        # retried: until the rerun ends, a card may still show the button the previous comparison drew there
        playwright.expect(card_of(bob, clicked["Alice"].run_id).get_by_role("button", name="Cancel")).to_have_count(
            0, timeout=30_000
        )
        if clicked["Bob"].state in ("queued", "running"):  # a tiny run may be over already: then nobody may cancel
            pick_select(bob, "Comparison", clicked["Bob"].config["group"])
            card_of(bob, clicked["Bob"].run_id).wait_for()
            cancel = card_of(bob, clicked["Bob"].run_id).get_by_role("button", name="Cancel")
            try:
                playwright.expect(cancel).to_have_count(1, timeout=30_000)
            except AssertionError:
                assert clicked["Bob"].state not in ("queued", "running")  # over while the page drew it: no button
        shoot(bob, "12-training-bob-class-view")
    finally:
        cancel_active(runs, {"Alice", "Bob"})
        alice.context.close()
        bob.context.close()


def page_name(page, alice_page):
    return "Alice" if page is alice_page else "Bob"


def multiselect_or_select_options(page, label) -> list[str]:
    box = page.locator("[data-testid='stSelectbox']").filter(has_text=label)
    box.locator("input").first.click()
    page.get_by_role("option").first.wait_for()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return options


def pick_select(page, label, option_text):
    box = page.locator("[data-testid='stSelectbox']").filter(has_text=label)
    box.locator("input").first.click()
    page.get_by_role("option").filter(has_text=whole_name(option_text)).first.click()
    # the box shows the choice once the rerun has begun (settle alone could see the state before it)
    playwright.expect(box.locator("input").first).to_have_value(whole_name(option_text), timeout=30_000)
    settle(page)


def test_teacher_page_needs_the_pin_lists_everyone_and_cancels_a_run(server, browser, tmp_path_factory):
    from segcore import TrainConfig
    from segcore.jobs.queue import JobQueue

    url, runs = server
    data = dataset(tmp_path_factory, "stones", seed=9)
    queue = JobQueue(runs)
    slow = TrainConfig(data=str(data), epochs=50, height=160, width=160)  # stays queued or training while we look
    carol = queue.submit(slow, group="stones", owner="Carol", start=False)
    dan = queue.submit(slow, group="stones", owner="Dan", start=False)
    page = new_page(browser)
    try:
        page.goto(f"{url}/teacher")
        settle(page)
        page.get_by_label("Teacher PIN").fill("1111")
        page.get_by_role("button", name="Open").click()
        settle(page)
        page.get_by_text("That is not the PIN.").wait_for()
        assert page.locator("[data-testid='stDataFrame']").count() == 0
        assert "Carol" not in main_text(page) and "Leaderboard" not in main_text(page)
        shoot(page, "12-teacher-wrong-pin")
        page.get_by_label("Teacher PIN").fill(PIN)
        page.get_by_role("button", name="Open").click()
        settle(page)
        page.get_by_text("The class's runs").wait_for()
        page.locator("[data-testid='stDataFrame']").first.wait_for()
        # the table is drawn on a canvas: its rows are read from the "Stop a run" picker and the CSV-less text
        options = multiselect_or_select_options(page, "Stop a run")
        assert any(o.startswith("Carol · ") for o in options) and any(o.startswith("Dan · ") for o in options), options
        box = page.locator("[data-testid='stSelectbox']").filter(has_text="Stop a run")
        box.locator("input").first.click()
        # exactly Dan's: Carol's run id is a prefix of his ("…" and "…-2"), so a substring match could pick hers
        page.get_by_role("option", name=f"Dan · {dan.run_id}", exact=True).click()
        settle(page)
        page.get_by_role("button", name="Cancel it").click()
        settle(page)
        assert wait_until(lambda: dan.state == "cancelled", 20), (dan.status, main_text(page)[-1500:])
        shoot(page, "12-teacher-after-cancel")
        assert carol.state in ("queued", "running")
        shoot(page, "12-teacher")
    finally:
        cancel_active(runs, {"Carol", "Dan"})
        page.context.close()


def test_with_one_slot_a_classmates_first_run_starts_before_a_students_second(browser, tmp_path_factory):
    """The fair queue with one slot, as the teacher and both students see it: Alice has had a run trained, then
    queues another; Bob queues his first after hers. Bob's starts first, the teacher's list says so, and Alice's
    card says when hers should start."""
    from segcore import TrainConfig
    from segcore.jobs.queue import JobQueue

    runs = tmp_path_factory.mktemp("one-slot") / "runs"
    runs.mkdir()
    data = dataset(tmp_path_factory, "pebbles", seed=13)
    make_run(runs, data, owner="Alice", group="pebbles-alice-first")  # Alice's turn was this hour
    queue = JobQueue(runs)
    slow = TrainConfig(data=str(data), epochs=50, height=160, width=160)  # holds the slot while we look
    alice = queue.submit(slow, group="pebbles-alice", owner="Alice", start=False)
    bob = queue.submit(replace(slow, seed=1), group="pebbles-bob", owner="Bob", start=False)  # not a follower
    assert alice.status_record.queued <= bob.status_record.queued
    with streamlit_server(runs, SEGCORE_MAX_JOBS="1") as url:
        teacher, alices = new_page(browser), new_page(browser)
        try:
            teacher.goto(f"{url}/teacher")  # the first page starts the server's scheduler
            settle(teacher)
            assert wait_until(lambda: bob.state == "running", 60), (bob.status, alice.status)
            assert alice.state == "queued"
            teacher.get_by_label("Teacher PIN").fill(PIN)
            teacher.get_by_role("button", name="Open").click()
            teacher.get_by_text("The class's runs").wait_for()
            settle(teacher)
            options = multiselect_or_select_options(teacher, "Stop a run")
            assert options[:2] == [f"Bob · {bob.run_id}", f"Alice · {alice.run_id}"]  # training, then the next
            shoot(teacher, "12-teacher-one-slot")

            visit(alices, url, "training", student="Alice")
            pick_select(alices, "Comparison", "pebbles-alice")
            card_of(alices, alice.run_id).get_by_text(re.compile(r"starts in about")).wait_for()
            shoot(alices, "12-training-alice-waits-her-turn")
        finally:
            cancel_active(runs, {"Alice", "Bob"})
            teacher.context.close()
            alices.context.close()


# -- take home and time to accuracy -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def toms_runs(server, tmp_path_factory):
    url, runs = server
    data = dataset(tmp_path_factory, "beans", seed=11)
    settings = dict(max_steps=0, epochs=2)  # two epochs: curves with two points
    return [make_run(runs, data, owner="Tom", strategy=s, group="beans", **settings) for s in ("scratch", "parameter")]


MIOU = re.compile(r"mIoU (\d\.\d{3})")


def test_a_bundle_and_a_report_taken_home(server, browser, toms_runs, tmp_path):
    url, runs = server
    page = new_page(browser)
    visit(page, url, "compare", student="Tom")
    page.get_by_text("Side by side").wait_for()
    chips = page.locator("[data-testid='stMultiSelect']").first.inner_text()
    here = sorted(MIOU.findall(chips))
    assert len(here) == 2, chips
    page.get_by_role("button", name="Prepare a bundle (zip)").click()
    settle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download bundle (zip)").click()
    bundle = tmp_path / "bundle.zip"
    download.value.save_as(bundle)
    settle(page)
    page.get_by_role("button", name="Prepare a report (one HTML file)").click()
    settle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download report (HTML)").click()
    # preparing the report kept the bundle ready: nothing prepared is taken away
    assert page.get_by_role("button", name="Download bundle (zip)").count() == 1
    report = ARTIFACTS / "browser-report.html"
    ARTIFACTS.mkdir(exist_ok=True)
    download.value.save_as(report)
    page.context.close()

    # at home: an empty runs folder, the bundle imported, the same numbers on Compare
    from segcore.compare.bundle import import_comparison

    home = tmp_path / "home-runs"
    home.mkdir()
    imported = import_comparison(bundle, home, owner="Tom")
    assert sorted(r.run_id for r in imported) == sorted(r.run_id for r in toms_runs)
    with streamlit_server(home) as home_url:
        page = new_page(browser)
        visit(page, home_url, "compare", student="Tom")
        page.get_by_text("Side by side").wait_for()
        chips = page.locator("[data-testid='stMultiSelect']").first.inner_text()
        assert sorted(MIOU.findall(chips)) == here, chips
        shoot(page, "12-compare-at-home")
        page.context.close()

    # the report offline: every picture decodes, the curves are drawn
    offline = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
    requested = []
    offline.route(
        "**/*",
        lambda r: (
            r.continue_()
            if r.request.url.startswith(("file:", "data:"))
            else (requested.append(r.request.url), r.abort())
        ),
    )
    sheet = offline.new_page()
    dialogs = []
    sheet.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sheet.goto(report.as_uri())
    sheet.wait_for_load_state("load")
    widths = sheet.eval_on_selector_all("img", "images => images.map(i => i.complete ? i.naturalWidth : 0)")
    curves = sheet.eval_on_selector_all("svg polyline", "lines => lines.length")
    sheet.screenshot(path=str(ARTIFACTS / "browser-report.png"), full_page=True)
    offline.close()
    assert widths and all(w > 0 for w in widths), widths
    assert curves >= 2 and not requested and not dialogs


def test_time_to_accuracy_on_training_and_compare(server, browser, toms_runs):
    url, runs = server
    page = new_page(browser)
    visit(page, url, "training", student="Tom")
    pick_select(page, "Comparison", "beans")
    page.locator(".js-plotly-plot").first.wait_for()
    assert "best mIoU" in main_text(page)
    shoot(page, "15-training")
    visit(page, url, "compare", student="Tom")
    page.get_by_text("Time to accuracy: validation mIoU against compute time").wait_for()
    page.locator("[data-testid='stDataFrame'] th").filter(has_text="s to 90 % of best").first.wait_for(state="attached")
    assert page.locator(".js-plotly-plot").first.locator(".scatterlayer .trace").count() == 2
    shoot(page, "15-compare")
    page.context.close()


# -- a name is not a key --------------------------------------------------------------------------------
def test_a_name_in_the_address_is_no_key_and_a_reload_keeps_the_sign_in(server, browser):
    url, _ = server
    owner, stranger = new_page(browser), new_page(browser)
    try:
        visit(owner, url, student="Hana")
        owner.reload()  # the session cookie keeps her signed in: no name, no passphrase asked again
        settle(owner)
        owner.locator("[data-testid='stSidebar']").get_by_text("Hana", exact=True).wait_for()
        assert owner.get_by_label("Your name").count() == 0 and "Hana" not in owner.url
        shoot(owner, "21-reload-keeps-sign-in")

        stranger.goto(f"{url}/training?student=Hana")  # the old way in
        settle(stranger)
        stranger.get_by_label("Your name").wait_for()
        assert "Hana" not in sidebar_text(stranger) and "student=" not in stranger.url
        stranger.get_by_label("Your name").fill("hana")  # knows the name, not the passphrase
        stranger.get_by_role("button", name="Continue").click()
        settle(stranger)
        stranger.get_by_label("Your passphrase").fill("a guess at it")
        stranger.get_by_role("button", name="Sign in").click()
        settle(stranger)
        stranger.get_by_text("that name and passphrase do not match").wait_for()
        assert stranger.locator("[data-testid='stSidebar']").get_by_text("Signed in as").count() == 0
        shoot(stranger, "21-name-only-refused")

        owner.get_by_role("button", name="Sign out").click()
        owner.get_by_label("Your name").wait_for()  # the sign-out has run on the server
        settle(owner)
        owner.reload()  # signed out: the cookie no longer opens her workspace
        settle(owner)
        owner.get_by_label("Your name").wait_for()
    finally:
        owner.context.close()
        stranger.context.close()


def test_single_sign_on_through_a_trusted_proxy_header(browser, tmp_path_factory):
    """What oauth2-proxy in front of the app does (README, "Serving a class"): it sets X-Forwarded-User, and the
    workbench trusts that header instead of asking for a passphrase."""
    runs = tmp_path_factory.mktemp("sso") / "runs"
    runs.mkdir()
    with streamlit_server(runs, SEGCORE_TRUSTED_USER_HEADER="X-Forwarded-User") as url:
        through_proxy = new_page(browser, extra_http_headers={"X-Forwarded-User": "carol.smith"})
        around_it = new_page(browser)
        try:
            through_proxy.goto(url)
            settle(through_proxy)
            through_proxy.locator("[data-testid='stSidebar']").get_by_text("carol.smith", exact=True).wait_for()
            assert through_proxy.get_by_label("Your passphrase").count() == 0
            around_it.goto(url)
            settle(around_it)
            around_it.get_by_text("signs people in through the school's login").wait_for()
            assert around_it.get_by_label("Your name").count() == 0  # no way to claim a name by typing it
        finally:
            through_proxy.context.close()
            around_it.context.close()


# -- thirty open pages ------------------------------------------------------------------------------------
def count_reruns(page) -> list:
    """Every message the page sends its server (a rerun, a fragment's timer tick, a widget change) lands here."""
    sent: list = []
    page.on("websocket", lambda socket: socket.on("framesent", lambda frame: sent.append(frame)))
    return sent


def test_a_page_whose_runs_have_all_finished_costs_no_reruns_and_a_new_step_reaches_a_watching_page(
    server, browser, tmp_path_factory
):
    import json
    import os

    import psutil

    url, runs = server
    data = dataset(tmp_path_factory, "quiet", seed=13)
    done = make_run(runs, data, owner="Una", group="quiet")
    page = new_page(browser)
    sent = count_reruns(page)
    try:
        visit(page, url, "training", student="Una")
        card_of(page, done.run_id).wait_for()
        settle(page)
        time.sleep(1)
        before = len(sent)
        time.sleep(10)
        assert len(sent) == before, f"{len(sent) - before} messages in 10 s from a page with nothing to follow"

        # a run training (this test process plays its worker): the page follows its steps without a reload
        live = make_run(runs, data, owner="Una", group="quiet", strategy="feature")
        status = {
            "state": "running",
            "pid": os.getpid(),
            "pid_started": psutil.Process().create_time(),
            "host": socket.gethostname(),
            "started": time.time(),
            "heartbeat": time.time(),
        }
        (live.path / "status.json").write_text(json.dumps(status))
        (live.path / "metrics.jsonl").write_text("")
        visit(page, url, "training", student="Una")
        card_of(page, live.run_id).wait_for()
        for step in (1, 2, 3):
            record = {
                "kind": "step",
                "epoch": 1,
                "epochs": 1,
                "step": step,
                "total_steps": 3,
                "loss": 0.5,
                "time": time.time(),
            }
            with open(live.path / "metrics.jsonl", "a") as stream:
                stream.write(json.dumps(record) + "\n")
            status["heartbeat"] = time.time()
            (live.path / "status.json").write_text(json.dumps(status))
            playwright.expect(card_of(page, live.run_id)).to_contain_text(f"step {step}/3", timeout=10_000)
        shoot(page, "22-live-step")
        (live.path / "status.json").write_text(json.dumps({**status, "state": "done"}))
    finally:
        page.context.close()


# -- issue 24: unlabelled images ------------------------------------------------------------------------
def test_unlabelled_images_counted_compared_explained_and_the_lesson_queues(browser, tmp_path_factory):
    from PIL import Image

    runs = tmp_path_factory.mktemp("unlabelled-server") / "runs"
    runs.mkdir()
    with streamlit_server(runs) as url:
        data = dataset(tmp_path_factory, "with-photos")
        (data / "unlabelled").mkdir()
        for i in range(5):
            Image.new("RGB", (64, 64), (30 * i, 90, 140)).save(data / "unlabelled" / f"photo_{i}.png")
        plain = make_run(runs, data, owner="Uma", strategy="feature", group="semi-g")
        semi = make_run(
            runs, data, owner="Uma", strategy="feature", group="semi-g", unlabelled="dataset", confidence=0.5
        )

        page = new_page(browser)
        visit(page, url, student="Uma")
        choose_folder(page, data)
        page.get_by_text("12 labelled, 5 unlabelled", exact=False).wait_for()
        settle(page)
        shoot(page, "24-data-unlabelled")

        via_sidebar(page, "Compare")
        page.locator("[data-testid='stImage']").nth(5).wait_for()
        text = main_text(page)
        assert plain.run_id in text and semi.run_id in text, "Compare did not show the labelled-only and the semi run"
        assert "+ unlabelled" in text
        shoot(page, "24-compare-semi")

        via_sidebar(page, "Training")
        page.get_by_text("Confident unlabelled pixels").wait_for()
        shoot(page, "24-training-semi")

        via_sidebar(page, "Learn")
        page.get_by_text("Learning from unlabelled images").wait_for()
        page.get_by_text("of the pixels are sure enough").wait_for()
        shoot(page, "24-learn-pseudo-labels")

        via_sidebar(page, "Data")
        settle(page)
        page.get_by_text("Lessons from your teacher").click()
        # the option clicked, not typed and Enter: on a loaded machine Enter could take the first lesson of the
        # unfiltered list while the box still showed the typed words (CI opened "Why transfer learning?" that way)
        box = page.locator("[data-testid='stSelectbox']").filter(has_text="Lesson")
        playwright.expect(box.locator("input").first).to_be_visible()
        for attempt in range(3):
            # a click during the expander's opening animation can leave the list's options detaching (Streamlit's
            # front end); a user closes the list and opens it again, and so does this
            page.wait_for_timeout(500)
            box.locator("input").first.click()
            page.keyboard.type("Labels are expensive")  # the list shows a few options: filter it first
            try:
                page.get_by_role("option").filter(has_text="Labels are expensive").first.click(timeout=15_000)
                break
            except playwright.Error:
                if attempt == 2:
                    raise
                page.keyboard.press("Escape")
                box.locator("input").first.fill("")
        playwright.expect(box.locator("input").first).to_have_value(re.compile("^Labels are expensive"))
        settle(page)
        page.get_by_test_id("stBaseButton-primary").filter(has_text="Open").click()
        page.locator("h1").filter(has_text="Model & strategy").first.wait_for()
        page.get_by_text("Lesson: Labels are expensive").wait_for()
        settle(page)
        click_button(page, "▶ Start the lesson")
        settle(page)
        from segcore.runs.run import list_runs

        try:  # the answer stays while the lesson is open, whatever reruns the page meanwhile
            playwright.expect(page.get_by_text("Queued 4 runs")).to_be_visible(timeout=60_000)
        except AssertionError as missing:
            on_disk = [(r.run_id, r.state) for r in list_runs(runs)]
            raise AssertionError(f"no 'Queued 4 runs'; page: {main_text(page)[:1500]!r}; runs: {on_disk}") from missing
        page.locator("h1").first.click()
        page.keyboard.press("r")  # Streamlit's rerun key: a whole-page rerun keeps the answer
        page.wait_for_timeout(500)
        settle(page)
        playwright.expect(page.get_by_text("Queued 4 runs")).to_be_visible()
        try:
            queued = [r for r in list_runs(runs) if r.config.get("data") == "builtin:shapes"]
            assert sorted((r.config["strategy"], r.config.get("unlabelled") or "-") for r in queued) == [
                ("feature", "-"),
                ("feature", "rest"),
                ("parameter", "-"),
                ("parameter", "rest"),
            ]
            assert all(r.owner == "Uma" and r.config["train_size"] == 0.1 for r in queued)
        finally:
            cancel_active(runs, ["Uma"])
        page.context.close()


def test_a_measured_domain_distance_survives_a_reload_and_reaches_the_advice(browser, tmp_path_factory):
    """Measure once on the Data page; after a reload it is shown without a click, the Model page's advice quotes it
    (it said "not measured" after a reload), and a classmate on the same images sees it too."""
    root = tmp_path_factory.mktemp("domain")
    (root / "runs").mkdir()
    no_references = root / "references"  # only the built-in shapes as a reference point: seconds, not minutes
    no_references.mkdir()
    with streamlit_server(
        root / "runs", SEGCORE_CACHE=str(root / "cache"), SEGCORE_REFERENCE_DATA=str(no_references)
    ) as url:
        page = new_page(browser)
        visit(page, url, "", "Dora")
        page.get_by_text("How far are these images from ImageNet?").wait_for()
        page.get_by_role("button", name="Measure the domain distance").click()
        page.get_by_text(re.compile(r"distance 0\.\d\d from ImageNet")).first.wait_for()
        playwright.expect(page.get_by_role("button", name="Measure the domain distance")).to_have_count(0)
        sentence = re.search(r"distance (0\.\d\d) from ImageNet", main_text(page))
        page.reload()
        settle(page)
        page.get_by_text(f"distance {sentence.group(1)} from ImageNet").first.wait_for()
        playwright.expect(page.get_by_role("button", name="Measure the domain distance")).to_have_count(0)
        via_sidebar(page, "Model")
        page.get_by_text("Suggested strategy").first.wait_for()
        advice = main_text(page)
        reasons = advice[advice.find("Suggested strategy") :][:900]
        assert "was not measured" not in reasons and f"distance is {sentence.group(1)}" in reasons, reasons
        shoot(page, "domain-advice")
        classmate = new_page(browser)
        visit(classmate, url, "", "Eli")
        classmate.get_by_text(f"distance {sentence.group(1)} from ImageNet").first.wait_for()
