"""Thirty open pages: what a class's open browser pages cost the Streamlit server, measured with real browsers.

    python bench/pages.py --students 30                  # this tree
    python bench/pages.py --students 30 --tree ../old    # another checkout (e.g. before a change), same method

Serves the app (`streamlit run app.py`, the README's defaults) on a runs folder of --students × 4 finished runs, opens
one headless Chromium page per student on Training plus one Teacher page, and reports:

- server cores: the Streamlit process's own CPU seconds per second (children excluded, so the browsers and a training
  run do not count), over a quiet window, with every run finished and then with one run training;
- a fresh student's page load (median of 5) with the class's pages open;
- the delay from a new step on disk to the watching page showing it;
- the training run's images/s with and without the pages open;
- the end-of-lesson burst: every student opens Compare at once (first and last page done), twice: by clicking Compare
  in the sidebar of the app they already have open (what a class does), and as 30 new tabs (cold);
- the server's memory (RSS) after each phase.

Sign-in: a tree with the sign-in (issue 21) gets a session cookie per student; an older tree the `?student=` address.

In a class each browser runs on its student's own machine; here all 31 share the server's two cores. `--nice-browsers`
lowers the browsers' priority (nice 19 on every thread, reapplied as Chromium starts new page processes and threads)
so they take only what the server and the training run leave; `--idle-browsers` puts their threads under SCHED_IDLE
(a core only when nothing else wants it), the closest this machine comes to the students' own machines. The
browsers' own CPU is reported beside the server's. The Compare burst also
reports when the server itself was done: the end of the last 0.25 s window in which it used more than 0.1 core.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from common import ROOT, machine, print_table, write_results

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
SETTLED = "[data-testid='stApp'][data-test-script-state='notRunning']"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_class(tree: Path, runs: Path, students: int, per_student: int, data: str) -> list[str]:
    """students × per_student finished runs, copies of one real tiny run (each its own folder, owner and group)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from segcore import TrainConfig, train; "
        "run = train(TrainConfig(data=sys.argv[3], strategy='scratch', epochs=2, min_steps=0, height=64, width=64, "
        "batch_size=4, run_name='seed-run'), sys.argv[2]); print(run.path)"
    )
    seed_parent = runs.parent / "seed"
    done = subprocess.run(
        [sys.executable, "-c", code, str(tree), str(seed_parent), data], capture_output=True, text=True, check=True
    )
    seed = Path(done.stdout.strip().splitlines()[-1])
    names = [f"Student{n:02d}" for n in range(students)]
    strategies = ["scratch", "parameter", "feature", "structure"]
    for name in names:
        for k in range(per_student):
            target = runs / f"{name.lower()}-run{k}"
            shutil.copytree(seed, target, ignore=shutil.ignore_patterns("resume-*", "resume.json", ".training.lock"))
            config = json.loads((target / "config.json").read_text())
            config.update(owner=name, group=f"{name.lower()}-lesson", run_id=target.name)
            config["strategy"] = "scratch" if strategies[k % 4] == "structure" else strategies[k % 4]
            (target / "config.json").write_text(json.dumps(config))
    return names


def session_cookies(tree: Path, runs: Path, names: list[str]) -> dict[str, str] | None:
    """A session token per student when the tree has the sign-in; None for an older tree."""
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); from segcore.jobs.accounts import Accounts; "
        "accounts = Accounts(sys.argv[2]); print(json.dumps({n: accounts.register(n, None, 'bench passphrase') "
        "for n in sys.argv[3:]}))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tree), str(runs), *names], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else None


class Server:
    def __init__(self, tree: Path, runs: Path, env_extra: dict | None = None) -> None:
        self.port = free_port()
        env = {**os.environ, "SEGCORE_RUNS": str(runs), "SEGCORE_TEACHER_PIN": "246813", **(env_extra or {})}
        self.log = open(runs.parent / "server.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(self.port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=tree, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        import psutil

        self.ps = psutil.Process(self.process.pid)
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        self.url = f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system  # the server's own threads; its children are not counted

    def rss_gib(self) -> float:
        return self.ps.memory_info().rss / 1024**3

    def cores_over(self, seconds: float) -> float:
        start_cpu, start = self.cpu_s(), time.perf_counter()
        time.sleep(seconds)
        return (self.cpu_s() - start_cpu) / (time.perf_counter() - start)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class Class:
    """The class's browser pages: one context per student (its own cookie jar), all in one Chromium."""

    def __init__(self, playwright, server: Server, cookies: dict | None) -> None:
        self.browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=CHROMIUM_FLAGS
        )
        self.server, self.cookies, self.pages = server, cookies, []

    def open(self, name: str, path: str, wait: bool = True):
        context = self.browser.new_context(viewport={"width": 1400, "height": 1000})
        address = f"{self.server.url}/{path}"
        if self.cookies is not None:
            context.add_cookies([{"name": "segcore_session", "value": self.cookies[name], "url": self.server.url}])
        else:
            address += f"?student={name}"
        page = context.new_page()
        page.set_default_timeout(300_000)
        page.goto(address)
        if wait:
            page.wait_for_selector(SETTLED)
        self.pages.append(page)
        return page

    def teacher(self):
        context = self.browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(300_000)
        page.goto(f"{self.server.url}/teacher")
        page.wait_for_selector(SETTLED)
        page.get_by_label("Teacher PIN").fill("246813")
        page.get_by_role("button", name="Open").click()
        page.get_by_text("The class's runs").wait_for()
        self.pages.append(page)
        return page

    def close(self) -> None:
        for page in self.pages:
            page.context.close()
        self.pages.clear()
        self.browser.close()


def browser_processes() -> list[psutil.Process]:
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if "chrom" in process.name().lower():
                found.append(process)
        except psutil.Error:  # a page process that ended while listed
            pass
    return found


class BrowserPriority(threading.Thread):
    """Keeps every thread of every Chromium process of this bench at the lowest priority: nice 19, or SCHED_IDLE
    (runs only when nothing else wants the core) with `idle`. Linux sets both per thread, not per process, so each
    thread is set (a page process's compositor and V8 threads would otherwise keep nice 0); new page processes and
    threads appear as pages open, hence the loop."""

    def __init__(self, idle: bool = False) -> None:
        super().__init__(daemon=True)
        self.idle = idle
        self.stopping = threading.Event()
        self.done: set[int] = set()

    def lower(self, tid: int) -> None:
        os.setpriority(os.PRIO_PROCESS, tid, 19)
        if self.idle:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            for process in browser_processes():
                try:
                    tids = [thread.id for thread in process.threads()]
                except psutil.Error:
                    continue
                for tid in tids:
                    if tid in self.done:
                        continue
                    try:
                        self.lower(tid)
                        self.done.add(tid)
                    except OSError:  # a thread that ended while listed
                        pass


def browser_cores_over(seconds: float) -> float:
    """The browsers' CPU seconds per second over a window (processes that start or end inside it are missed)."""

    def total() -> dict:
        times = {}
        for process in browser_processes():
            try:
                cpu = process.cpu_times()
                times[process.pid] = cpu.user + cpu.system
            except psutil.Error:
                pass
        return times

    before, started = total(), time.perf_counter()
    time.sleep(seconds)
    after = total()
    used = sum(after[pid] - before.get(pid, 0.0) for pid in after)
    return used / (time.perf_counter() - started)


def fresh_load_s(klass: Class, name: str, path: str = "training") -> float:
    started = time.perf_counter()
    page = klass.open(name, path)
    page.locator("h1").first.wait_for()
    seconds = time.perf_counter() - started
    klass.pages.remove(page)
    page.context.close()
    return seconds


def start_training(
    tree: Path, runs: Path, data: str, owner: str, name: str = "live-run", epochs: int = 200
) -> subprocess.Popen:
    """One run training in its own process (feature transfer at 160×160; by default long enough to outlast the
    measurements)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from segcore import TrainConfig, train; "
        "train(TrainConfig(data=sys.argv[3], strategy='feature', epochs=int(sys.argv[5]), min_steps=0, "
        "run_name=sys.argv[4], augment='none'), sys.argv[2])"
    )
    command = [sys.executable, "-c", code, str(tree), str(runs), data, name, str(epochs)]
    process = subprocess.Popen(command, cwd=tree)
    deadline = time.time() + 120
    while time.time() < deadline and not (runs / name / "metrics.jsonl").exists():
        time.sleep(0.5)
    config = runs / name / "config.json"
    payload = json.loads(config.read_text())
    payload["owner"] = owner
    config.write_text(json.dumps(payload))
    return process


def soak(klass: Class, server: Server, tree: Path, runs: Path, data: str, names: list[str], minutes: float) -> dict:
    """The class's pages open for `minutes` while runs keep training and finishing one after another (a new one at
    most every two minutes, so pages keep redrawing) and, once a minute, one student opens Compare in a new tab: the server's
    memory sampled every 30 s."""
    samples, trainer, cycle = [], None, 0
    end = time.time() + minutes * 60
    next_compare = next_run = time.time() + 60
    while time.time() < end:
        if trainer is None or (trainer.poll() is not None and time.time() >= next_run):
            cycle += 1
            next_run = time.time() + 120  # a run every two minutes at most: a lesson's pace, not a stress test
            trainer = start_training(tree, runs, data, names[cycle % len(names)], f"soak-{cycle}", epochs=20)
        if time.time() >= next_compare:
            fresh_load_s(klass, names[cycle % len(names)], "compare")
            next_compare = time.time() + 60
        samples.append((time.time(), server.rss_gib()))
        time.sleep(30)
    if trainer is not None and trainer.poll() is None:
        trainer.terminate()
        trainer.wait(30)
    rss = [gib for _, gib in samples]
    return {
        "soak_minutes": minutes,
        "soak_runs_trained": cycle,
        "rss_gib_soak_first": rss[0],
        "rss_gib_soak_last": rss[-1],
        "rss_gib_soak_max": max(rss),
        "rss_gib_soak_samples": [round(g, 3) for g in rss],
    }


def images_per_s(runs: Path, seconds: float) -> float:
    """The live run's training images/s over the next `seconds` (from its own step records)."""

    def seen() -> tuple[float, int]:
        lines = (runs / "live-run" / "metrics.jsonl").read_text().splitlines()
        steps = [json.loads(x) for x in lines if '"kind": "step"' in x]
        return time.time(), len(steps)

    t0, s0 = seen()
    time.sleep(seconds)
    t1, s1 = seen()
    return (s1 - s0) * 8 / (t1 - t0)  # batch 8


def step_delay_s(page, runs: Path, timeout_s: float = 30.0) -> float | None:
    """Seconds from a new step record on disk to the watching page showing its step number."""
    metrics = runs / "live-run" / "metrics.jsonl"
    last = [json.loads(x) for x in metrics.read_text().splitlines() if '"kind": "step"' in x][-1]["step"]
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        lines = metrics.read_text().splitlines()
        steps = [json.loads(x)["step"] for x in lines if '"kind": "step"' in x]
        if steps and steps[-1] > last:
            written, target = time.time(), steps[-1]
            while time.time() < written + timeout_s:  # the page may show a later step already: any ≥ target
                shown = [int(m) for m in re.findall(r"step (\d+)/", page.inner_text("[data-testid='stMain']"))]
                if shown and max(shown) >= target:
                    return time.time() - written
                time.sleep(0.05)
            return None
        time.sleep(0.02)
    return None


def compare_burst(klass: Class, names: list[str], opened: str) -> dict:
    """Every student opens Compare at once: seconds to the first and the last page done, the server's CPU seconds
    for the burst, and when the server itself was done (its last busy 0.25 s window).

    opened="click": the class already has the app open (on the Data page, as after the lesson's last run) and every
    student clicks Compare in the sidebar, which is what a class does; opened="cold": 30 new tabs load the whole
    app at once, so the 30 Chromium pages also parse Streamlit's JavaScript on this machine's two cores."""
    pages = [] if opened == "cold" else [klass.open(name, "") for name in names]  # "": the Data page
    done: list[float] = []
    busy_until, watching = [0.0], threading.Event()
    started, cpu_before = time.perf_counter(), klass.server.cpu_s()

    def watch() -> None:
        last = klass.server.cpu_s()
        while not watching.wait(0.25):
            now = klass.server.cpu_s()
            if now - last > 0.025:  # more than 0.1 core over the window
                busy_until[0] = time.perf_counter() - started
            last = now

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    if opened == "cold":
        pages = [klass.open(name, "compare", wait=False) for name in names]
    else:
        for page in pages:
            page.locator("[data-testid='stSidebarNav'] a", has_text="Compare").click(no_wait_after=True)
    for page in pages:
        page.get_by_text("Side by side").wait_for()
        page.wait_for_selector(SETTLED)
        done.append(time.perf_counter() - started)
    watching.set()
    watcher.join()
    return {
        "first_s": min(done),
        "last_s": max(done),
        "server_cpu_s": klass.server.cpu_s() - cpu_before,
        "server_done_s": busy_until[0],
    }


class Progress(dict):
    """The results, each printed as it is measured (a slow server still leaves its figures behind)."""

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to serve (default: this one)")
    parser.add_argument("--window", type=float, default=30.0, help="seconds each CPU reading lasts")
    parser.add_argument("--label", default="", help="a name for the results file")
    parser.add_argument("--nice-browsers", action="store_true", help="the browsers at nice 19 (see the docstring)")
    parser.add_argument(
        "--idle-browsers", action="store_true", help="the browsers' threads under SCHED_IDLE (see the docstring)"
    )
    parser.add_argument(
        "--soak-minutes",
        type=float,
        default=0,
        help="only the soak: pages open this long, runs training one after another, the server's memory sampled",
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    tree = args.tree.resolve()
    work = Path(tempfile.mkdtemp(prefix="pages-"))
    runs, cache = work / "runs", work / "cache"
    runs.mkdir()
    os.environ["SEGCORE_CACHE"] = str(cache)
    data = "builtin:shapes"
    names = make_class(tree, runs, args.students, 4, data)
    cookies = session_cookies(tree, runs, names)
    server = Server(tree, runs, {"SEGCORE_CACHE": str(cache)})
    result = Progress({"students": args.students, "tree": str(tree), "sign_in": "cookie" if cookies else "address"})
    result["nice_browsers"] = args.nice_browsers or args.idle_browsers
    result["idle_browsers"] = args.idle_browsers
    priority = BrowserPriority(idle=args.idle_browsers)
    if args.nice_browsers or args.idle_browsers:
        priority.start()
    try:
        with sync_playwright() as playwright:
            klass = Class(playwright, server, cookies)
            fresh_load_s(klass, names[0])  # the server's first page imports torch: not a student's wait
            if args.soak_minutes:
                for name in names:
                    klass.open(name, "training")
                klass.teacher()
                result.update(soak(klass, server, tree, runs, data, names, args.soak_minutes))
                klass.close()
                raise SystemExit(finish(args, result))
            result["idle_cores_no_pages"] = server.cores_over(min(10.0, args.window))
            for name in names:
                klass.open(name, "training")
            klass.teacher()
            time.sleep(5)
            result["cores_finished"] = server.cores_over(args.window)
            result["rss_gib_finished"] = server.rss_gib()
            result["fresh_load_s"] = statistics.median(fresh_load_s(klass, names[i % len(names)]) for i in range(5))

            trainer = start_training(tree, runs, data, names[0])
            watcher = klass.open(names[0], "training")
            time.sleep(5)
            readings: dict = {}
            sampler = threading.Thread(target=lambda: readings.update(ips=images_per_s(runs, args.window)))
            sampler.start()
            browsers = threading.Thread(
                target=lambda: readings.update(browsers=browser_cores_over(args.window)), daemon=True
            )
            browsers.start()
            result["cores_training"] = server.cores_over(args.window)
            sampler.join()
            browsers.join()
            result["browser_cores_training"] = readings["browsers"]
            result["images_per_s_with_pages"] = readings["ips"]
            result["step_to_page_s"] = step_delay_s(watcher, runs)
            klass.close()
            time.sleep(5)
            result["images_per_s_without_pages"] = images_per_s(runs, args.window)
            trainer.terminate()
            trainer.wait(30)
            result["rss_gib_after_training"] = server.rss_gib()

            for opened in ("click", "cold"):
                klass = Class(playwright, server, cookies)
                burst = compare_burst(klass, names, opened)
                result.update({f"compare_{opened}_{k}": v for k, v in burst.items()})
                result[f"rss_gib_after_compare_{opened}"] = server.rss_gib()
                time.sleep(3)
                result[f"cores_compare_open_{opened}"] = server.cores_over(min(10.0, args.window))
                klass.close()
    finally:
        priority.stopping.set()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    finish(args, result)


def finish(args, result: dict) -> None:
    result["machine"] = machine()
    print(f"{args.students} students' pages, {machine()}")
    print_table(
        [{"measure": k, "value": v} for k, v in result.items() if k not in ("machine", "tree")], ["measure", "value"]
    )
    write_results(f"pages-{args.label or args.students}", result)


if __name__ == "__main__":
    main()
