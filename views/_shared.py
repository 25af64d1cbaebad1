"""What every page shares: the runs folder and job queue, the current dataset, colours, the sidebar."""

from __future__ import annotations

import gc
from pathlib import Path

import streamlit as st

from segcore import STRATEGIES, SegcoreError, load_dataset
from segcore.base.paths import default_runs_dir
from segcore.compare.stats import dataset_title
from segcore.jobs.accounts import Accounts
from segcore.jobs.classroom import teacher_pin
from segcore.jobs.queue import JobQueue
from segcore.jobs.quotas import disk_use, quota_bytes
from segcore.jobs.scheduler import start_scheduler
from segcore.jobs.workspace import WorkspaceRecord, delete_workspace
from segcore.runs.naming import Titles
from segcore.runs.records import STATES
from segcore.runs.run import Run
from segcore.runs.snapshot import runs_snapshot
from segcore.settings.config import describe
from views._signin import current_account, keep_session_cookie, sign_in_gate, sign_out
from views._text import duration, error_text, escape_md, html_text, plot_text, teacher_markdown  # noqa: F401


@st.cache_resource
def freeze_startup_objects() -> None:
    """Once per server, after torch, timm and the engine are imported: move every object alive now out of the garbage
    collector's reach. Streamlit runs gc.collect(2) after every script and fragment run (runner.postScriptGC); with
    torch loaded that walks ~440,000 objects, 0.19 s on the 2-core server, per open page per tick. Frozen, the same
    collection takes microseconds and still frees everything made later (bench/README.md, "Thirty open pages")."""
    import segcore.compare.report_html  # noqa: F401  (the heavy imports the pages make, made now)
    import segcore.teaching.domain  # noqa: F401
    import segcore.training.lifecycle  # noqa: F401

    gc.collect()
    gc.freeze()


freeze_startup_objects()
STRATEGY_COLOURS = {name: info.colour for name, info in STRATEGIES.items()}
STRATEGY_LABELS = {name: info.label for name, info in STRATEGIES.items()}
DEFAULT_DATASET = "builtin:shapes"


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


def setting_choice(container, name: str, labels: dict[str, str] | None = None) -> None:
    """A segmented control for a TrainConfig setting with choices: label, help, options and default from its one
    declaration; read back from the session (key = the setting's name) by the page's config."""
    spec = describe(name)
    container.segmented_control(
        spec["label"],
        spec["choices"](),
        **initial(name, "default", spec["default"]),
        key=name,
        format_func=labels.get if labels else str,
        help=spec["help"],
    )


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


def class_runs() -> list[Run]:
    """Every run of the class, from the server's one reading per tick (segcore.runs.snapshot)."""
    return list(runs_snapshot(runs_dir()).runs)


def visible_runs(include_class: bool = False) -> list[Run]:
    """This student's runs; with include_class, the class's too (read-only: actions check the owner)."""
    me = session_owner()
    return [r for r in class_runs() if include_class or r.owner in (me, None)]


def live_every(runs: list[Run], seconds: str) -> str | None:
    """A live view's timer: `seconds` while any of `runs` is queued or training, none once all have ended (an open
    page with nothing to follow costs the server nothing)."""
    return seconds if any(r.state in ("queued", "running") for r in runs) else None


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
    kind = STRATEGY_LABELS.get(run.config.get("strategy"), "?") + (
        " + unlabelled" if run.config.get("unlabelled") else ""
    )
    return f"{run_title(run)} ({kind} · {dataset_title(run)}{score})"


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


def run_counts(live_page: bool = False) -> None:
    """The sidebar's counts, live while this student has runs queued or training (st.fragment's timer), still once
    they have all ended. On a page with live run cards (Training) a change reruns the whole page, so the cards never
    show an older state than the sidebar (the cards' own view does the same the other way round)."""
    mine = [r for r in class_runs() if r.owner == session_owner()]
    every = live_every(mine, "2s")
    st.fragment(run_every=every)(_run_counts)(live_page, every)


def _run_counts(live_page: bool, every: str | None) -> None:
    everyone = class_runs()
    counts = sidebar_counts(everyone)
    shown, st.session_state["sidebar_counts"] = st.session_state.get("sidebar_counts"), counts
    if live_page and shown is not None and shown != counts:
        st.rerun()
    if every and not live_every([r for r in everyone if r.owner == session_owner()], every):
        st.rerun()  # the last of this student's runs has ended: redraw the page without timers
    mine, waiting = counts
    st.caption(f"Your runs: {mine['running']} training · {mine['queued']} queued · {mine['done']} finished")
    st.caption(f"Class queue: {waiting['running']} training · {waiting['queued']} waiting")


def session_owner() -> str:
    """The signed-in student's workspace ('class/student'): set only by signing in (views/_signin.py), never by the
    page address."""
    return st.session_state["owner"]


@st.cache_resource
def accounts(path: str) -> Accounts:
    return Accounts(path)


def class_accounts() -> Accounts:
    return accounts(str(runs_dir()))


def workspace() -> WorkspaceRecord:
    return WorkspaceRecord.load(runs_dir(), session_owner())


def signed_in() -> bool:
    return current_account(class_accounts()) is not None


def workspace_gate() -> None:
    """Until the student has signed in (name and passphrase), show the sign-in and stop the page."""
    for stale in ("student", "class"):  # old bookmarks: a name in the address is no key to anyone's work
        st.query_params.pop(stale, None)
    if not signed_in():
        sign_in_gate(class_accounts())


@st.cache_resource
def announce_teacher_pin() -> None:
    """Once per server: make (and print to the console) the teacher's PIN unless SEGCORE_TEACHER_PIN sets it."""
    teacher_pin()


def sidebar(signed_in_page: bool = True, live_page: bool = False) -> None:
    """Every page's sidebar; student pages first ask who is there (the teacher's page asks for its PIN instead)."""
    announce_teacher_pin()
    queue()  # the server's scheduler runs from the first page anyone opens, signed in or not
    if not signed_in_page:
        return
    workspace_gate()
    keep_session_cookie()
    source, _, _ = dataset_settings()
    with st.sidebar:
        me = session_owner()
        st.caption("Signed in as")
        st.markdown(f"**{escape_md(me.replace('/', ' · '))}**")
        if st.button("Sign out", key="switch_student", type="tertiary"):
            sign_out(class_accounts())
            st.rerun()
        with st.expander("Delete my work"):
            st.caption(
                "Removes your finished, failed and cancelled runs and what this workspace remembers. "
                "Runs still training are kept: cancel them first."
            )
            sure = st.checkbox("Yes, delete my runs", key="confirm_delete")
            if st.button("Delete", key="delete_work", disabled=not sure):
                removed = delete_workspace(runs_dir(), me, class_runs())
                for key in ("dataset_source", "confirm_delete", "compare_runs"):
                    st.session_state.pop(key, None)
                st.toast(f"Deleted {len(removed)} run(s).")
        if quota_bytes():
            st.caption(f"Disk: {disk_use(me, runs_dir(), class_runs()).sentence()} used")
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
