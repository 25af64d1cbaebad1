"""Teacher: every student's runs live, the queue, a leaderboard, the class comparison, limits — behind a PIN."""

import plotly.graph_objects as go
import streamlit as st

from segcore import SegcoreError
from segcore.compare.leaderboard import SOURCE_ROLE, best_per_student, leaderboard, maker
from segcore.jobs.accounts import roster_names
from segcore.jobs.classroom import ClassroomSettings, offered_classes, pin_matches, student_of
from segcore.jobs.quotas import disk_use
from segcore.runs.naming import dataset_name
from segcore.runs.progress import run_progress
from segcore.runs.snapshot import runs_snapshot
from views._shared import (
    STRATEGY_COLOURS,
    STRATEGY_LABELS,
    class_accounts,
    error_text,
    escape_md,
    live_every,
    plot_text,
    queue,
    runs_dir,
)
from views._shared import (
    class_runs as everyones_runs,
)
from views._signin import browser_session_id

st.title("🧑‍🏫 Teacher")

if not st.session_state.get("teacher"):
    st.caption("The PIN is printed in the server's console when it starts, or set with SEGCORE_TEACHER_PIN.")
    with st.form("teacher_pin"):
        given = st.text_input("Teacher PIN", type="password")
        if st.form_submit_button("Open", type="primary"):
            try:
                if pin_matches(given, browser_session_id()):
                    st.session_state["teacher"] = True
                    st.rerun()
                st.error("That is not the PIN.")
            except SegcoreError as exc:
                st.error(error_text(exc))
    st.stop()


def students_box() -> None:
    """The class's names: who signed in, reset a forgotten passphrase, remove a name, add names (roster)."""
    accounts = class_accounts()
    everyone = accounts.all()
    with st.expander(f"👥 {len(everyone)} names: sign-in, passphrases, the class list", expanded=False):
        roster_file = roster_names() is not None
        only = st.toggle(
            "Only names I added may sign in",
            value=accounts.roster_only,
            disabled=roster_file,
            key="teacher_roster_only",
            help="SEGCORE_ROSTER sets the list on this server." if roster_file else "New names then need your code.",
        )
        if only != accounts.roster_only and not roster_file:
            accounts.set_roster_only(only)
            st.rerun()
        runs = everyones_runs()
        st.dataframe(
            [
                {
                    "student": a.owner,
                    "disk": disk_use(a.owner, runs_dir(), runs).sentence(),
                    "signs in with": "school login"
                    if a.single_sign_on
                    else "passphrase"
                    if a.has_secret
                    else "your code"
                    if a.code_waiting
                    else "—",
                }
                for a in everyone
            ],
            hide_index=True,
            width="stretch",
        )
        c1, c2 = st.columns(2)
        with c1.form("teacher_add_name", clear_on_submit=True):
            name = st.text_input("Add a name", max_chars=40)
            classes = offered_classes()
            class_name = st.selectbox("Class", classes) if classes else None
            if st.form_submit_button("Add and make a code"):
                try:
                    code = accounts.add(name, class_name)
                    st.success(f"Give {escape_md(name)} this code: **{code}** (once, within a week).")
                except SegcoreError as exc:
                    st.error(error_text(exc))
        if everyone:
            picked = c2.selectbox("A student", everyone, format_func=lambda a: a.owner, key="teacher_student_pick")
            b1, b2 = c2.columns(2)
            if b1.button("Reset the passphrase", key="teacher_reset", help="Signs them out; they sign in with a code"):
                code = accounts.reset(picked.key)
                c2.success(f"Give {escape_md(picked.owner)} this code: **{code}**")
            if b2.button("Remove the name", key="teacher_remove", help="Their runs stay until deleted"):
                accounts.remove(picked.key)
                st.rerun()


settings = ClassroomSettings.load(runs_dir())
limit = st.number_input(
    "Runs each student may have waiting",
    1,
    1000,
    settings.max_waiting_per_student,
    key="teacher_limit",
    help="Keeps one student from filling the class's queue.",
)
if limit != settings.max_waiting_per_student:
    ClassroomSettings(max_waiting_per_student=int(limit)).save(runs_dir())
    st.toast(f"Each student may now have {limit} runs waiting.")


def class_table(every: str | None) -> None:
    runs = everyones_runs()
    if every and not live_every(runs, every):
        st.rerun()  # nothing queued or training any more: redraw the page without the timer
    counts = runs_snapshot(runs_dir()).counts
    st.caption(
        f"{counts['running']} training · {counts['queued']} waiting · {counts['done']} finished · "
        f"{counts['failed'] + counts['lost']} failed or lost · {len({r.owner for r in runs})} students"
    )
    waiting = {run.run_id: place + 1 for place, run in enumerate(queue().queued(runs))}  # the tick's one reading
    rows = []
    # the runs that need the teacher's eye first: training, then waiting (in the order they start), then the rest
    order = {"running": 0, "queued": 1, "failed": 2, "lost": 2, "done": 3, "cancelled": 4}
    for run in sorted(reversed(runs), key=lambda r: (order.get(r.state, 5), waiting.get(r.run_id, 0))):
        progress = run_progress(run)
        source = run.config.get("role") == SOURCE_ROLE
        rows.append(
            {
                "student": maker(run),
                "run": run.run_id,
                "strategy": "source run" if source else STRATEGY_LABELS.get(progress["strategy"], progress["strategy"]),
                "dataset": dataset_name(run.config.get("data", "?")),
                "state": progress["state"] + (" (shared)" if run.status.get("linked_to") else ""),
                "queue place": str(waiting.get(run.run_id, "")),
                "progress": progress["fraction"],
                "best mIoU": progress["best_miou"] if progress["best_miou"] is not None else float("nan"),
            }
        )
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={  # narrow enough that every column shows at 1400 px
            "student": st.column_config.TextColumn(width="small"),
            "run": st.column_config.TextColumn(width="medium"),
            "dataset": st.column_config.TextColumn(width="small"),
            "state": st.column_config.TextColumn(width="small"),
            "queue place": st.column_config.TextColumn(width="small"),
            "progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent", width="small"),
            "best mIoU": st.column_config.NumberColumn(format="%.3f", width="small"),
        },
    )


st.subheader("The class's runs")
every = live_every(everyones_runs(), "2s")
st.fragment(run_every=every)(class_table)(every)

# outside the live table, which redraws every 2 s: a pick or a click there must never be lost to a refresh
# in the order they hold or will get the slot: training first, then waiting as the fair queue will start them
everyone = everyones_runs()
active = [r for r in everyone if r.state == "running"] + queue().queued(everyone)
if active:
    c1, c2 = st.columns([3, 1])
    target = c1.selectbox(
        "Stop a run",
        active,
        format_func=lambda r: f"{student_of(r.owner)} · {r.run_id}",  # stable labels: a pick survives a refresh
        key="teacher_cancel_pick",
        help="Training first, then the waiting runs in the order they will start.",
    )
    if c2.button("Cancel it", key="teacher_cancel"):
        try:
            state = queue().cancel(target.run_id, teacher=True)
            st.toast(f"{escape_md(target.run_id)}: {escape_md(state)}")
            st.rerun()
        except SegcoreError as exc:
            st.error(error_text(exc))

runs = everyones_runs()
st.subheader("Leaderboard")
board = leaderboard(runs)
if board:
    st.dataframe(
        [{**row, "dataset": dataset_name(row["dataset"])} for row in board],
        hide_index=True,
        width="stretch",
        column_config={
            "mIoU": st.column_config.NumberColumn(format="%.3f"),
            "training time (s)": st.column_config.NumberColumn(format="%.0f"),
        },
    )
else:
    st.info("No finished runs yet.")

st.subheader("Class comparison")
datasets = sorted({row["dataset"] for row in board})
if datasets:
    data = st.selectbox("Dataset", datasets, format_func=dataset_name, key="teacher_dataset")
    rows = best_per_student(runs, data)
    figure = go.Figure()
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r for r in rows if r["strategy"] == strategy]
        figure.add_trace(
            go.Bar(
                x=[plot_text(r["student"]) for r in mine],
                y=[r["mIoU"] for r in mine],
                name=STRATEGY_LABELS.get(strategy, strategy),
                marker_color=STRATEGY_COLOURS.get(strategy, "#888"),
            )
        )
    figure.update_layout(
        barmode="group",
        yaxis=dict(title="best mIoU", range=[0, 1]),
        height=360,
        margin=dict(l=10, r=10, t=30, b=10),
        legend=dict(orientation="h", y=1.1),
    )
    st.plotly_chart(figure, key="class_comparison")
    st.caption("Each student's best finished run per strategy on this dataset.")

st.subheader("Students")
students_box()
