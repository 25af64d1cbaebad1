"""What every page shares: the runs folder and job queue, the current dataset, colours, the sidebar."""

from __future__ import annotations

import html
import os
import re
import threading
import uuid
import time
from pathlib import Path

import streamlit as st

from segcore import STRATEGIES, SegcoreError, load_dataset
from segcore.comparison_stats import dataset_title
from segcore.config import describe
from segcore.jobs import JobQueue
from segcore.runs import STATES, Run, list_runs

STRATEGY_COLOURS = {name: info.colour for name, info in STRATEGIES.items()}
STRATEGY_LABELS = {name: info.label for name, info in STRATEGIES.items()}
DEFAULT_DATASET = "builtin:shapes"
_MARKDOWN_SPECIALS = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation mark: CommonMark escapes them all
_OUTSIDE_ENTITIES = re.compile(r"([!-\"$-%'-/:<-@\[-`{-~])")  # the same, minus & # ; that HTML entities are made of


def md(text: object) -> str:
    """Text from a dataset, a run or a user, made inert inside Markdown (st.markdown, st.error, captions…):
    no HTML, no links or images, no emphasis, no :directives:, no $maths$ — it shows exactly as written."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", str(text)).replace("\n", "  \n")


def html_text(text: object) -> str:
    """The same text inside HTML that the page builds itself (colour chips): HTML-escaped, then Markdown-inert."""
    return _OUTSIDE_ENTITIES.sub(r"\\\1", html.escape(str(text), quote=True))


def plot_text(text: object) -> str:
    """Text for plotly labels, which understand a little HTML (<b>, <a href>, <br>): escaped so it is shown as is."""
    return html.escape(str(text), quote=True)


def error_text(exc: Exception) -> str:
    """A SegcoreError's message for st.error: one Markdown bullet per file at fault, each line inert."""
    first, *rest = str(exc).split("\n  • ")
    return md(first) + "".join(f"\n- {md(line)}" for line in rest)


def duration(seconds: float) -> str:
    """'45 s', '3 min', '1 h 5 min': rounded the way a person says it."""
    if seconds < 90:
        return f"{max(5, round(seconds / 5) * 5):.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def setting_input(container, name: str, key: str, value=None, **overrides):
    """A number input for a TrainConfig setting: label, help and range from its one declaration."""
    spec = describe(name)
    options = {"label": spec["label"], "help": spec["help"], "min_value": spec["low"], "max_value": spec["high"],
               "value": spec["default"] if value is None else value, "key": key}
    options.update(overrides)
    return container.number_input(**options)


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
        return None, error_text(exc)


def finished_runs() -> list[Run]:
    return [r for r in list_runs(runs_dir()) if r.state == "done" and r.has_checkpoint()]


def run_label(run: Run) -> str:
    """How a run is named in pickers: what it is, on which data, how well it did (widget options are plain text)."""
    summary = run.summary()
    score = f" · mIoU {summary['miou']:.3f}" if isinstance(summary.get("miou"), (int, float)) else ""
    return f"{run.run_id} ({STRATEGY_LABELS.get(run.config.get('strategy'), '?')} · {dataset_title(run)}{score})"


@st.cache_data(ttl=30)
def device_line() -> str:
    from segcore.device import describe_device

    return describe_device()


def queue_counts(runs: list[Run]) -> dict[str, int]:
    """Runs by state, read once: the sidebar, the Training page and its queue box all show these numbers."""
    states = [r.state for r in runs]
    return {state: states.count(state) for state in STATES}


@st.fragment(run_every="2s")
def run_counts() -> None:
    counts = queue_counts(list_runs(runs_dir()))
    st.caption(f"Runs: {counts['running']} training · {counts['queued']} queued · {counts['done']} finished")


def session_owner() -> str:
    """Who is asking, for the queue's per-session double-click guard and for Cancel/Resume: an id kept in the
    page address, so a reload of the same tab keeps it and another browser gets its own."""
    owner = st.query_params.get("session", "")
    if not re.fullmatch(r"[a-f0-9]{16}", owner):
        owner = uuid.uuid4().hex[:16]
        st.query_params["session"] = owner
    return owner


def sidebar() -> None:
    source, _, _ = dataset_settings()
    with st.sidebar:
        st.caption("Current dataset")
        st.markdown(f"**{md(source)}**")
        run_counts()
        st.caption(f"Device: {device_line()}")
        st.caption(f"Training backend: {md(queue().backend_description())}")
        if queue().last_error:
            st.warning(f"The scheduler hit a problem: {md(queue().last_error)}", icon="⚠️")
