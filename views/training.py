"""Training: live curves for every run of the comparison, progress, queue, cancel, logs."""

import time

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from segcore import SegcoreError
from segcore.compare.curves import RunCurves, comparison_curves, thinned
from segcore.jobs.classroom import student_of
from segcore.jobs.estimate import forecast
from segcore.models.device import describe_device, pick_device
from segcore.runs.progress import run_progress
from segcore.runs.snapshot import runs_snapshot
from views._charts import busy_note, time_to_accuracy_figure
from views._shared import (
    class_runs,
    duration,
    error_text,
    escape_md,
    live_every,
    plot_text,
    queue,
    rerun_if_sidebar_behind,
    run_title,
    runs_dir,
    session_owner,
    titles,
    visible_runs,
)

st.title("📈 Training")

show_class = st.toggle("Show my class's runs too (read-only)", key="training_class_runs")
runs = visible_runs(include_class=show_class)
if not runs:
    st.info("Nothing has been trained yet. Queue a run on the Model & strategy page.")
    st.page_link("views/model.py", label="Model & strategy →", icon="🧠")
    st.stop()

groups = list(dict.fromkeys(r.config.get("group") or r.run_id for r in reversed(runs)))
watched = st.session_state.get("watch_group")
group = st.selectbox(
    "Comparison",
    groups,
    index=groups.index(watched) if watched in groups else 0,
    key="group_pick",
    format_func=lambda g: titles().get("comparisons", g) or g,
    help="Runs queued together (one click of Train / Train all strategies) form a comparison.",
)
with st.popover("✏️ Rename"):  # outside the live view, which redraws every second
    new_name = st.text_input(
        "Name of this comparison",
        value=titles().get("comparisons", group) or "",
        max_chars=80,
        key=f"rename-group-{group}",
    )
    own = [r for r in runs if (r.config.get("group") or r.run_id) == group and r.owner in (None, session_owner())]
    renamed = st.selectbox("A run of it", own, format_func=run_title, key=f"rename-run-pick-{group}") if own else None
    run_name = st.text_input(
        "Name of that run",
        value=run_title(renamed) if renamed else "",
        max_chars=80,
        key=f"rename-run-{group}-{renamed.run_id if renamed else ''}",
    )
    if st.button("Save the names", key="rename_save"):
        try:
            queue().rename("comparisons", group, new_name, owner=session_owner())
            if renamed:
                new_title = "" if run_name == renamed.run_id else run_name
                queue().rename("runs", renamed.run_id, new_title, owner=session_owner())
            st.rerun()
        except SegcoreError as exc:
            st.error(error_text(exc))
st.caption(f"Device: {describe_device(pick_device())}")


def training_figure(curves: list[RunCurves]) -> go.Figure:
    """Loss, mIoU and pixel accuracy side by side, one legend above all three (a click hides a run everywhere)."""
    figure = make_subplots(
        rows=1,
        cols=3,
        horizontal_spacing=0.07,
        subplot_titles=("Training loss", "Validation mIoU", "Validation pixel accuracy"),
    )
    max_epoch, max_step = 1, 1
    for run in curves:
        dash = "dash" if run.is_source else "dot" if run.semi_supervised else None  # semi: its plain twin's colour
        style = dict(color=run.colour, dash=dash, width=1.5 if run.is_source else 2.5)
        common = dict(name=plot_text(run.label), legendgroup=run.run_id, line=style)
        if run.steps:
            x, y = zip(*thinned(run.steps))
            max_step = max(max_step, max(x))
            figure.add_trace(go.Scatter(x=x, y=y, mode="lines", showlegend=True, **common), row=1, col=1)
        if run.epochs:
            x = [e["epoch"] for e in run.epochs]
            max_epoch = max(max_epoch, max(x), max(e.get("epochs", 1) for e in run.epochs))
            for col, key in ((2, "miou"), (3, "pixel_accuracy")):
                figure.add_trace(
                    go.Scatter(
                        x=x, y=[e[key] for e in run.epochs], mode="lines+markers", showlegend=not run.steps, **common
                    ),
                    row=1,
                    col=col,
                )
    figure.update_xaxes(title_text="step", range=[0, max_step], row=1, col=1)
    figure.update_yaxes(rangemode="tozero", row=1, col=1)
    for col in (2, 3):
        figure.update_xaxes(
            title_text="epoch", range=[0.5, max_epoch + 0.5], dtick=1 if max_epoch <= 12 else None, row=1, col=col
        )
        figure.update_yaxes(range=[0, 1], row=1, col=col)
    figure.update_layout(
        height=380,
        margin=dict(l=10, r=10, t=90, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.12, x=0, font=dict(size=11)),
    )
    return figure


def semi_supervised_figure(curves: list[RunCurves]) -> go.Figure | None:
    """The semi-supervised runs' loss in its two parts (labelled, unlabelled) and the share of unlabelled pixels
    confident enough to count; None when the comparison has no such run."""
    semi = [run for run in curves if run.semi_supervised and run.loss_parts()]
    if not semi:
        return None
    figure = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.08,
        subplot_titles=("Loss: labelled part (solid), unlabelled part (dotted)", "Confident unlabelled pixels"),
    )
    for run in semi:
        steps, supervised, unsupervised, confident = zip(*thinned(run.loss_parts()))
        common = dict(legendgroup=run.run_id, mode="lines")
        name = plot_text(run.label)
        figure.add_trace(go.Scatter(x=steps, y=supervised, name=name, line=dict(color=run.colour), **common), 1, 1)
        line = dict(color=run.colour, dash="dot")
        figure.add_trace(go.Scatter(x=steps, y=unsupervised, name=name, showlegend=False, line=line, **common), 1, 1)
        figure.add_trace(go.Scatter(x=steps, y=confident, name=name, showlegend=False, line=line, **common), 1, 2)
    figure.update_xaxes(title_text="step")
    figure.update_yaxes(rangemode="tozero", row=1, col=1)
    figure.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=2)
    figure.update_layout(
        height=300,
        margin=dict(l=10, r=10, t=70, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.15, x=0, font=dict(size=11)),
    )
    return figure


def group_members(all_runs: list, group: str) -> list:
    return [r for r in all_runs if (r.config.get("group") or r.run_id) == group and may_see(r)]


@st.cache_resource(max_entries=64, show_spinner=False)
def figures(stamp: tuple, _members: list) -> tuple:
    """The comparison's curves and charts, built once per change of its runs (the stamp) for every page that shows
    them, however many students watch the same comparison."""
    curves = comparison_curves(_members)
    time_chart = time_to_accuracy_figure(curves, height=300, legend=False)
    return curves, training_figure(curves), time_chart, semi_supervised_figure(curves)


def may_see(run) -> bool:
    """The viewer's own runs, or the class's with the toggle on."""
    return show_class or run.owner in (session_owner(), None)


def shown_run(run_id: str, all_runs: list) -> str:
    """A linked run's id when this page may show it; otherwise only that a classmate's identical run exists."""
    return run_id if any(r.run_id == run_id and may_see(r) for r in all_runs) else "a classmate's run"


def live_view(group: str, every: str | None) -> None:
    all_runs = class_runs()
    rerun_if_sidebar_behind(all_runs)  # the sidebar's counts change in the same moment as the cards below
    members = group_members(all_runs, group)
    if every and not live_every(members, every):
        st.rerun()  # all of them have ended: redraw the page without the timer
    curves, training_chart, time_chart, semi_chart = figures(runs_snapshot(runs_dir()).stamp(members), members)
    st.plotly_chart(training_chart, key="training_curves")
    if semi_chart is not None:
        st.plotly_chart(semi_chart, key="semi_curves")
        st.caption(
            "Dotted lines: runs that also learn from unlabelled images. The unlabelled part of their loss counts only "
            "the pixels the model is sure of, so it grows as more pixels become confident."
        )
    st.plotly_chart(time_chart, key="time_curves")
    if note := busy_note(curves):
        st.caption(f"⚠️ {note}")
    st.caption(
        "mIoU: mean IoU over the classes present in the ground truth or the prediction; ignored pixels "
        "excluded. Grey dashed lines: the source task a structure transfer carries over (another dataset)."
    )
    counts = runs_snapshot(runs_dir()).counts
    st.caption(
        f"Queue: {counts['running']} training · {counts['queued']} waiting · {counts['done']} finished "
        f"(at most {queue().max_running} at a time)"
    )
    if (
        members
        and all(r.state not in ("queued", "running") for r in members)
        and sum(r.state == "done" for r in members) >= 2
    ):
        st.session_state["compare_group"] = group
        st.page_link("views/compare.py", label="All runs of this comparison have finished — compare them →", icon="🔍")

    ahead = {}
    if any(r.state == "queued" for r in members):  # when the waiting ones should start and end, from the whole queue
        done = [r for r in all_runs if r.state == "done"]
        running = [r for r in all_runs if r.state == "running"]
        ahead = forecast(queue().queued(all_runs), running, done, queue().max_running)
    for run, run_lines in zip(members, curves):
        progress = run_progress(run, (run_lines.step_records, run_lines.epochs))
        icon = {"queued": "⏳", "running": "🏃", "done": "✅", "failed": "❌", "cancelled": "⏹️", "lost": "📡"}.get(
            progress["state"], "•"
        )
        with st.container(border=True):
            c1, c2 = st.columns([5, 1])
            detail = f"epoch {progress['epoch']}/{progress['epochs']} · step {progress['step']}/{progress['total_steps'] or '?'}"
            if progress["images_per_s"]:
                detail += f" · {progress['images_per_s']:.1f} images/s"
            if progress["preparing"]:
                detail += f" · {progress['preparing']}"
            if progress["eta_s"] is not None:
                detail += f" · about {duration(progress['eta_s'])} left"
            elif progress["state"] == "queued" and run.run_id in ahead:
                expected = ahead[run.run_id]
                detail += (
                    f" · starts in about {duration(max(0.0, expected.start - time.time()))}, done by about "
                    f"{time.strftime('%H:%M', time.localtime(expected.end))}"
                )
            if progress["best_miou"] is not None:
                detail += f" · best mIoU {progress['best_miou']:.3f}"
            c1.markdown(
                f"{icon} **{escape_md(run_title(run))}** — {escape_md(run_lines.label.split(' · ')[0])} · *{escape_md(progress['state'])}*"
            )
            c1.progress(progress["fraction"], text=detail)
            if run.status.get("linked_to"):
                c1.caption(
                    f"🔗 Same settings as {escape_md(shown_run(run.status['linked_to'], all_runs))}, already trained on this server: "
                    "an identical result, shared instead of trained again."
                )
            elif run.status.get("follows"):
                c1.caption(
                    f"🔗 Same settings as {escape_md(shown_run(run.status['follows'], all_runs))}, which is training now: this run follows "
                    "it and gets its identical result when it ends."
                )
            if progress["state"] in ("failed", "lost"):
                c1.error(escape_md(progress["reason"]))
            elif run.problem:
                c1.warning(escape_md(run.problem))
            mine = run.owner in (None, session_owner())
            try:
                if progress["state"] in ("queued", "running") and mine:
                    if c2.button("Cancel", key=f"cancel-{run.run_id}"):
                        state = queue().cancel(run.run_id, owner=session_owner())
                        st.toast(f"{escape_md(run.run_id)}: {escape_md(state)}")
                elif progress["state"] in ("failed", "cancelled", "lost") and run.has_resume_point() and mine:
                    if c2.button("Resume", key=f"resume-{run.run_id}", help="Continue from the last finished epoch"):
                        queue().resume(run.run_id, owner=session_owner())
                        st.toast(f"{escape_md(run.run_id)}: queued to resume")
            except SegcoreError as exc:
                c1.error(error_text(exc))
            with c1.expander("Log"):
                st.code(run.log_tail(15) or "(empty)", language=None)
                st.code(queue().job_log(run, 15) or "(no output from the training process)", language=None)


every = live_every(group_members(class_runs(), group), "1s")
st.fragment(run_every=every)(live_view)(group, every)

mine_waiting = [r for r in class_runs() if r.owner == session_owner() and r.state == "queued"]
if mine_waiting and st.button(f"Cancel all my waiting runs ({len(mine_waiting)})", key="cancel_waiting"):
    cancelled = queue().cancel_waiting(session_owner())
    st.toast(f"Cancelled {len(cancelled)} waiting run(s).")
    st.rerun()

with st.expander("Queue", expanded=False):
    waiting = queue().queued(class_runs())
    st.write(
        f"{len(waiting)} waiting, in the order they will start: the student who has had the least training time in "
        "the last hour goes first; a run that follows an identical one takes no place."
    )
    if waiting:
        st.dataframe(
            [
                {
                    "place": i + 1,
                    "student": student_of(r.owner) if may_see(r) else "a classmate",
                    "run": r.run_id if may_see(r) else "a classmate's run",
                    "strategy": r.config.get("strategy"),
                    "note": "follows an identical run" if r.status.get("follows") else "",
                }
                for i, r in enumerate(waiting)
            ],
            hide_index=True,
        )
