"""What every page shares: the runs folder and job queue, the current dataset, colours, the sidebar."""

from __future__ import annotations

import html
import re
from pathlib import Path

import streamlit as st

from segcore import STRATEGIES, SegcoreError, load_dataset
from segcore.base.paths import default_runs_dir
from segcore.compare.stats import dataset_title
from segcore.jobs.classroom import WorkspaceError, offered_classes, teacher_pin, workspace_id
from segcore.jobs.queue import JobQueue
from segcore.jobs.scheduler import start_scheduler
from segcore.jobs.workspace import WorkspaceRecord, delete_workspace
from segcore.runs.naming import Titles
from segcore.runs.records import STATES
from segcore.runs.run import Run, list_runs
from segcore.settings.config import describe

STRATEGY_COLOURS = {name: info.colour for name, info in STRATEGIES.items()}
STRATEGY_LABELS = {name: info.label for name, info in STRATEGIES.items()}
DEFAULT_DATASET = "builtin:shapes"
_MARKDOWN_SPECIALS = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation mark: CommonMark escapes them all
_OUTSIDE_ENTITIES = re.compile(r"([!-\"$-%'-/:<-@\[-`{-~])")  # the same, minus & # ; that HTML entities are made of


def escape_md(text: object) -> str:
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
    return escape_md(first) + "".join(f"\n- {escape_md(line)}" for line in rest)


def duration(seconds: float) -> str:
    """'45 s', '3 min', '1 h 5 min': rounded the way a person says it."""
    if seconds < 90:
        return f"{max(5, round(seconds / 5) * 5):.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def teacher_markdown(text: str) -> str:
    """A teacher's Markdown (lesson instructions) as formatting only: no HTML (Streamlit's default), and links and
    images reduced to their text, so a student's browser never fetches anything from elsewhere."""
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", str(text))
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"<[^>]*>", "", text)


def initial(key: str, argument: str, value) -> dict:
    """A widget's starting value, unless a preset or lesson has already put one in its key (Streamlit warns when a
    widget gets both)."""
    return {} if key in st.session_state else {argument: value}


def setting_input(container, name: str, key: str, value=None, **overrides):
    """A number input for a TrainConfig setting: label, help and range from its one declaration."""
    spec = describe(name)
    options = {
        "label": spec["label"],
        "help": spec["help"],
        "min_value": spec["low"],
        "max_value": spec["high"],
        "key": key,
        **initial(key, "value", spec["default"] if value is None else value),
    }
    options.update(overrides)
    return container.number_input(**options)


def runs_dir() -> Path:
    return default_runs_dir()


@st.cache_resource
def job_queue(path: str) -> JobQueue:
    """One queue per server, with its scheduler (segcore.jobs.scheduler) keeping it moving while no page is open."""
    queue = JobQueue(path)
    start_scheduler(queue)
    return queue


def queue() -> JobQueue:
    return job_queue(str(runs_dir()))


def state_default(key: str, value):
    if key not in st.session_state:
        st.session_state[key] = value
    return st.session_state[key]


def dataset_settings() -> tuple[str, int | None, tuple[str, ...] | None]:
    """The dataset this student works on. Kept in the workspace on disk, so it stays chosen across pages,
    reloads and server restarts until the student picks another."""
    if "dataset_source" not in st.session_state:
        record = workspace()
        st.session_state.update(
            dataset_source=record.dataset or DEFAULT_DATASET, ignore_index=record.ignore_index, class_names=None
        )
    return st.session_state["dataset_source"], st.session_state["ignore_index"], st.session_state["class_names"]


def choose_dataset(
    source: str, ignore_index: int | None, class_names: tuple[str, ...] | None, uploaded_name: str | None = None
) -> None:
    """Make `source` this student's dataset, here and in the workspace record."""
    st.session_state.update(dataset_source=source, ignore_index=ignore_index, class_names=class_names)
    record = workspace()
    record.dataset, record.ignore_index = source, ignore_index
    if uploaded_name:
        record.remember_upload(uploaded_name, source)
    record.save(runs_dir())


def dataset_display_name(source: str) -> str:
    """An uploaded dataset by the name it had on the student's computer; others by their short name."""
    from segcore.runs.naming import dataset_name

    return workspace().upload_name(source) or dataset_name(source)


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


def visible_runs(include_class: bool = False) -> list[Run]:
    """This student's runs; with include_class, the class's too (read-only: actions check the owner)."""
    me = session_owner()
    return [r for r in list_runs(runs_dir()) if include_class or r.owner in (me, None)]


def finished_runs(include_class: bool = False) -> list[Run]:
    return [r for r in visible_runs(include_class) if r.state == "done" and r.has_checkpoint()]


def titles() -> Titles:
    return Titles(runs_dir())


def run_title(run: Run) -> str:
    """The name the student gave the run, else its id (which already says dataset-strategy-time)."""
    return titles().get("runs", run.run_id) or run.run_id


def run_label(run: Run) -> str:
    """How a run is named in pickers: what it is, on which data, how well it did (widget options are plain text)."""
    summary = run.summary()
    score = f" · mIoU {summary['miou']:.3f}" if isinstance(summary.get("miou"), (int, float)) else ""
    return f"{run_title(run)} ({STRATEGY_LABELS.get(run.config.get('strategy'), '?')} · {dataset_title(run)}{score})"


@st.cache_data(ttl=30)
def device_line() -> str:
    from segcore.models.device import describe_device

    return describe_device()


def queue_counts(runs: list[Run]) -> dict[str, int]:
    """Runs by state, read once: the sidebar, the Training page and its queue box all show these numbers."""
    states = [r.state for r in runs]
    return {state: states.count(state) for state in STATES}


def sidebar_counts(everyone: list[Run]) -> tuple[dict[str, int], dict[str, int]]:
    """The sidebar's numbers from one reading of the runs: this student's runs, and everyone's."""
    return queue_counts([r for r in everyone if r.owner == session_owner()]), queue_counts(everyone)


def rerun_if_sidebar_behind(everyone: list[Run]) -> None:
    """A live view on its own timer reruns the whole page when the sidebar shows other numbers than its reading, so
    the two never disagree for the sidebar's 2 s. The new numbers are marked shown first: the sidebar of that rerun
    then has no reason to rerun the page a second time."""
    counts, shown = sidebar_counts(everyone), st.session_state.get("sidebar_counts")
    if shown is not None and shown != counts:  # None: no sidebar on this page (Teacher)
        st.session_state["sidebar_counts"] = counts
        st.rerun()


@st.fragment(run_every="2s")
def run_counts(live_page: bool = False) -> None:
    """The sidebar's counts. On a page with live run cards (Training) a change reruns the whole page, so the
    cards never show an older state than the sidebar (the cards' own view does the same the other way round)."""
    counts = sidebar_counts(list_runs(runs_dir()))
    shown, st.session_state["sidebar_counts"] = st.session_state.get("sidebar_counts"), counts
    if live_page and shown is not None and shown != counts:
        st.rerun()
    mine, waiting = counts
    st.caption(f"Your runs: {mine['running']} training · {mine['queued']} queued · {mine['done']} finished")
    st.caption(f"Class queue: {waiting['running']} training · {waiting['queued']} waiting")


def session_owner() -> str:
    """The student's workspace ('class/student'), kept in the page address: a reload keeps it, a bookmark
    brings the student back to their own runs, another browser signs in as itself."""
    return workspace_id(st.session_state["student"], st.session_state.get("student_class") or None)


def _keep_identity() -> None:
    """The address carries the identity across reloads; the session carries it across pages (Streamlit drops
    query parameters when the page changes), and each run writes it back into the address."""
    params = st.query_params
    if "student" in params:
        st.session_state["student"], st.session_state["student_class"] = params["student"], params.get("class")
    elif "student" in st.session_state:
        params["student"] = st.session_state["student"]
        if st.session_state.get("student_class"):
            params["class"] = st.session_state["student_class"]


def workspace() -> WorkspaceRecord:
    return WorkspaceRecord.load(runs_dir(), session_owner())


def signed_in() -> bool:
    _keep_identity()
    try:
        session_owner()
        return True
    except (KeyError, WorkspaceError):
        return False


def workspace_gate() -> None:
    """On a first visit, ask for a name (and the class on a server with several), then carry on to the page."""
    if signed_in():
        return
    st.title("👋 Welcome to the Segmentation Transfer Workbench")
    st.write(
        "Give your name so that your runs and uploads are kept apart from your classmates'. "
        "Nothing leaves this computer."
    )
    with st.form("sign_in"):
        name = st.text_input("Your name", max_chars=40)
        classes = offered_classes()
        class_name = st.selectbox("Your class", classes) if classes else None
        if st.form_submit_button("Start", type="primary"):
            try:
                workspace_id(name, class_name)
            except WorkspaceError as exc:
                st.error(escape_md(exc))
            else:
                st.query_params["student"] = " ".join(name.split())
                if class_name:
                    st.query_params["class"] = class_name
                st.rerun()
    st.stop()


@st.cache_resource
def announce_teacher_pin() -> None:
    """Once per server: make (and print to the console) the teacher's PIN unless SEGCORE_TEACHER_PIN sets it."""
    teacher_pin()


def sidebar(signed_in_page: bool = True, live_page: bool = False) -> None:
    """Every page's sidebar; student pages first ask who is there (the teacher's page asks for its PIN instead)."""
    announce_teacher_pin()
    if not signed_in_page:
        return
    workspace_gate()
    source, _, _ = dataset_settings()
    with st.sidebar:
        me = session_owner()
        st.caption("Signed in as")
        st.markdown(f"**{escape_md(me.replace('/', ' · '))}**")
        if st.button("Switch student", key="switch_student", type="tertiary"):
            st.query_params.clear()
            st.session_state.clear()
            st.rerun()
        with st.expander("Delete my work"):
            st.caption(
                "Removes your finished, failed and cancelled runs and what this workspace remembers. "
                "Runs still training are kept: cancel them first."
            )
            sure = st.checkbox("Yes, delete my runs", key="confirm_delete")
            if st.button("Delete", key="delete_work", disabled=not sure):
                removed = delete_workspace(runs_dir(), me, list_runs(runs_dir()))
                for key in ("dataset_source", "confirm_delete", "compare_runs"):
                    st.session_state.pop(key, None)
                st.toast(f"Deleted {len(removed)} run(s).")
        st.caption("Current dataset")
        st.markdown(f"**{escape_md(dataset_display_name(source))}**")
        run_counts(live_page)
        st.caption(f"Device: {device_line()}")
        st.caption(f"Training backend: {escape_md(queue().backend_description())}")
        st.caption(
            "🔒 Offline: your images, runs and models stay on this server; nothing is sent anywhere "
            "(only *Download* datasets need the internet)."
        )
        if queue().last_error:
            st.warning(f"The scheduler hit a problem: {escape_md(queue().last_error)}", icon="⚠️")
