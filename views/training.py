"""Training: live curves for every run of the comparison, progress, queue, cancel, logs."""

import plotly.graph_objects as go
import streamlit as st

from views._shared import STRATEGY_COLOURS, STRATEGY_LABELS, md, plot_text, queue, runs_dir
from segcore.device import describe_device, pick_device
from segcore.progress import run_progress
from segcore.runs import list_runs

st.title("📈 Training")

runs = list_runs(runs_dir())
if not runs:
    st.info("Nothing has been trained yet. Queue a run on the Model & strategy page.")
    st.page_link("views/model.py", label="Model & strategy →", icon="🧠")
    st.stop()

groups = list(dict.fromkeys(r.config.get("group") or r.run_id for r in reversed(runs)))
watched = st.session_state.get("watch_group")
group = st.selectbox("Comparison", groups, index=groups.index(watched) if watched in groups else 0, key="group_pick",
                     help="Runs queued together (one click of Train / Train all strategies) form a comparison.")
st.caption(f"Device: {describe_device(pick_device())}")


def line(figure, x, y, name, strategy, dash=None):
    figure.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if len(x) < 30 else "lines", name=name,
                                line=dict(color=STRATEGY_COLOURS.get(strategy, "#888"), dash=dash)))


@st.fragment(run_every="1s")
def live_view(group: str) -> None:
    members = [r for r in list_runs(runs_dir()) if (r.config.get("group") or r.run_id) == group]
    loss, miou, accuracy = go.Figure(), go.Figure(), go.Figure()
    curves = {run.run_id: run.curves() for run in members}  # one read of each metrics file per refresh
    for run in members:
        strategy = run.config.get("strategy")
        steps, epochs = curves[run.run_id]
        name = plot_text(f"{STRATEGY_LABELS.get(strategy, strategy)} · {run.run_id}")
        if steps:
            line(loss, [s["step"] for s in steps], [s["loss"] for s in steps], name, strategy)
        if epochs:
            line(miou, [e["epoch"] for e in epochs], [e["miou"] for e in epochs], name, strategy)
            line(accuracy, [e["epoch"] for e in epochs], [e["pixel_accuracy"] for e in epochs], name, strategy, "dot")
    for figure, title, x_title in ((loss, "Training loss", "step"), (miou, "Validation mIoU", "epoch"),
                                   (accuracy, "Validation pixel accuracy", "epoch")):
        figure.update_layout(title=title, xaxis_title=x_title, height=300, margin=dict(l=10, r=10, t=40, b=10),
                             legend=dict(orientation="h", y=-0.3), showlegend=figure is loss)
    left, middle, right = st.columns(3)
    left.plotly_chart(loss, key="loss_chart")
    middle.plotly_chart(miou, key="miou_chart")
    right.plotly_chart(accuracy, key="acc_chart")
    st.caption("mIoU: mean IoU over the classes present in the ground truth or the prediction; ignored pixels excluded.")

    for run in members:
        progress = run_progress(run, curves[run.run_id])
        icon = {"queued": "⏳", "running": "🏃", "done": "✅", "failed": "❌", "cancelled": "⏹️"}.get(progress["state"], "•")
        with st.container(border=True):
            c1, c2 = st.columns([5, 1])
            detail = f"epoch {progress['epoch']}/{progress['epochs']} · step {progress['step']}/{progress['total_steps'] or '?'}"
            if progress["images_per_s"]:
                detail += f" · {progress['images_per_s']:.1f} images/s"
            if progress["eta_s"] is not None:
                detail += f" · about {progress['eta_s']:.0f}s left"
            if progress["best_miou"] is not None:
                detail += f" · best mIoU {progress['best_miou']:.3f}"
            c1.markdown(f"{icon} **{md(run.run_id)}** — {md(STRATEGY_LABELS.get(progress['strategy'], ''))} · "
                        f"*{md(progress['state'])}*")
            c1.progress(progress["fraction"], text=detail)
            if progress["state"] == "failed":
                c1.error(md(progress["reason"]))
            if progress["state"] in ("queued", "running"):
                if c2.button("Cancel", key=f"cancel-{run.run_id}"):
                    state = queue().cancel(run.run_id)
                    st.toast(f"{md(run.run_id)}: {md(state)}")
            elif progress["state"] in ("failed", "cancelled") and (run.path / "last_state.pt").exists():
                if c2.button("Resume", key=f"resume-{run.run_id}", help="Continue from the last finished epoch"):
                    queue().resume(run.run_id)
                    st.toast(f"{md(run.run_id)}: queued to resume")
            with c1.expander("Log"):
                st.code(run.log_tail(15) or "(empty)", language=None)


live_view(group)

with st.expander("Queue", expanded=False):
    waiting = queue().queued()
    running = queue().running()
    st.write(f"{len(running)} training (at most {queue().max_running} at a time), {len(waiting)} waiting.")
    if waiting:
        st.dataframe([{"position": i + 1, "run": r.run_id, "strategy": r.config.get("strategy")}
                      for i, r in enumerate(waiting)], hide_index=True)
