"""What every page shares: the runs folder and job queue, the current dataset, colours, the sidebar."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import streamlit as st

from segcore import SegcoreError, load_dataset
from segcore.jobs import JobQueue
from segcore.runs import Run, list_runs

STRATEGY_COLOURS = {"scratch": "#64748b", "parameter": "#2563eb", "feature": "#16a34a", "structure": "#d97706"}
STRATEGY_LABELS = {"scratch": "scratch", "parameter": "parameter transfer", "feature": "feature transfer",
                   "structure": "structure transfer"}
DEFAULT_DATASET = "builtin:shapes"


def runs_dir() -> Path:
    return Path(os.environ.get("SEGCORE_RUNS", "runs"))


@st.cache_resource
def job_queue(path: str) -> JobQueue:
    """One queue per server, with a scheduler thread that keeps it moving while no page is open.
    A failed pump is logged and kept in queue.last_error for a page to show; the loop goes on."""
    import logging

    queue = JobQueue(path)
    log = logging.getLogger(__name__)

    def keep_pumping() -> None:
        while True:
            try:
                queue.pump()
            except Exception as exc:  # one broken run folder or a full disk must not stop the scheduler
                log.exception("the job scheduler could not run the queue in %s", path)
                queue.last_error = f"{time.strftime('%H:%M:%S')} the scheduler could not run the queue: {exc}"
            time.sleep(2.0)

    threading.Thread(target=keep_pumping, name="segcore-scheduler", daemon=True).start()
    return queue


def queue() -> JobQueue:
    return job_queue(str(runs_dir()))


def state_default(key: str, value):
    if key not in st.session_state:
        st.session_state[key] = value
    return st.session_state[key]


def dataset_settings() -> tuple[str, int | None, tuple[str, ...] | None]:
    return (
        state_default("dataset_source", DEFAULT_DATASET),
        state_default("ignore_index", 255),
        state_default("class_names", None),
    )


@st.cache_resource(show_spinner="Reading the dataset…", max_entries=4)
def _load(source: str, ignore_index: int | None, class_names: tuple[str, ...] | None):
    return load_dataset(source, ignore_index=ignore_index, class_names=list(class_names) if class_names else None)


def current_dataset():
    """The dataset chosen on the Data page (built-in shapes by default), or (None, message) if it fails."""
    source, ignore_index, class_names = dataset_settings()
    try:
        return _load(source, ignore_index, class_names), None
    except SegcoreError as exc:
        return None, str(exc).replace("\n  • ", "\n- ")  # one bullet per file


def finished_runs() -> list[Run]:
    return [r for r in list_runs(runs_dir()) if r.state == "done" and r.has_checkpoint()]


def run_label(run: Run) -> str:
    summary = run.summary()
    score = f" · mIoU {summary['miou']:.3f}" if summary.get("miou") is not None else ""
    return f"{run.run_id} ({STRATEGY_LABELS.get(run.config.get('strategy'), '?')}{score})"


@st.cache_data(ttl=30)
def device_line() -> str:
    from segcore.device import describe_device

    return describe_device()


def sidebar() -> None:
    source, _, _ = dataset_settings()
    with st.sidebar:
        st.caption("Current dataset")
        st.markdown(f"**{source}**")
        runs = list_runs(runs_dir())
        running = sum(r.state == "running" for r in runs)
        queued = sum(r.state == "queued" for r in runs)
        done = sum(r.state == "done" for r in runs)
        st.caption(f"Runs: {running} training · {queued} queued · {done} finished")
        st.caption(f"Device: {device_line()}")
