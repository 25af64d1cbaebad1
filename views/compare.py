"""Compare: the segmentations of 2–4 finished runs side by side, per-class IoU, summary, your own image."""

import csv
import io
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from segcore import Predictor, SegcoreError
from segcore.base.drawing import error_colour
from segcore.compare.bundle import check_exportable, export_comparison_bytes, import_comparison_bytes
from segcore.compare.curves import comparison_curves
from segcore.compare.report_html import comparison_report
from segcore.compare.run_views import RunView, run_view
from segcore.compare.sheet import comparison_tiles, render_comparison
from segcore.compare.spread import data_efficiency_with_spread
from segcore.compare.stats import (
    SUMMARY_COLUMNS,
    dataset_key,
    dataset_title,
    default_selection,
    differs_in_training_size,
    mixing_problem,
    per_class_iou_rows,
    same_recipe,
    step_budget_note,
    summary_row,
)
from segcore.compare.worst_images import worst_images_for_class
from segcore.data.uploads import read_uploaded_image
from segcore.runs.files import VAL_OUTPUTS
from segcore.runs.run import Run
from segcore.runs.run_data import load_run_dataset
from segcore.training.evaluate import evaluate_run
from views._charts import busy_note, time_to_accuracy_figure
from views._shared import (
    STRATEGY_COLOURS,
    STRATEGY_LABELS,
    dataset_settings,
    error_text,
    escape_md,
    finished_runs,
    html_text,
    plot_text,
    run_label,
    runs_dir,
    session_owner,
    visible_runs,
)

st.title("🔍 Compare")


def import_bundle_box() -> None:
    """Bring a comparison exported elsewhere into this student's workspace (also into an empty one)."""
    imported = st.file_uploader("Import a comparison bundle (zip)", type=["zip"], key="import_bundle")
    if imported and st.session_state.get("imported_bundle") != imported.file_id:
        try:
            new_runs = import_comparison_bytes(imported.getvalue(), runs_dir(), owner=session_owner())
        except SegcoreError as exc:
            st.error(error_text(exc))
        else:
            st.session_state["imported_bundle"] = imported.file_id
            st.session_state["compare_runs"] = new_runs
            st.success("Imported " + ", ".join(escape_md(r.run_id) for r in new_runs) + ".")
            st.rerun()


show_class = st.toggle("Include my class's runs (read-only)", key="compare_class_runs")
runs = [r for r in finished_runs(include_class=show_class) if not r.broken]
damaged = [r for r in visible_runs(include_class=show_class) if r.state == "done" and r.broken]
if damaged:
    with st.expander(f"⚠️ {len(damaged)} finished run(s) left out: their files are damaged", expanded=False):
        for run in damaged:
            st.caption(escape_md(run.problem))
if not runs:
    busy = [r for r in visible_runs() if r.state in ("queued", "running")]
    if busy:
        st.info(f"{len(busy)} run(s) are training or waiting; each appears here as soon as it finishes.")
        st.page_link("views/training.py", label="Watch them on Training →", icon="📈")
    else:
        st.info(
            "No finished runs yet. Train some on the Model & strategy page, then come back — or import a "
            "comparison you took home."
        )
        st.page_link("views/model.py", label="Model & strategy →", icon="🧠")
    import_bundle_box()
    st.stop()

source, _, _ = dataset_settings()
chosen = st.multiselect(
    "Runs to compare (2–4, one dataset)",
    runs,
    default=default_selection(runs, source),
    max_selections=4,
    format_func=run_label,
    key="compare_runs",
)
if not chosen:
    st.stop()
problem = mixing_problem(chosen)
if problem:
    st.error(f"Not compared: {escape_md(problem)}.")
    for run in chosen:
        st.caption(f"• {escape_md(run.run_id)} — {escape_md(dataset_title(run))}")
    st.stop()
st.caption(f"Dataset: **{escape_md(dataset_title(chosen[0]))}**")


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def predictor(path: str, mtime: float) -> Predictor:
    return Predictor(path, device="cpu")


@st.cache_resource(max_entries=4, show_spinner="Reading the dataset…")
def _dataset(source: str, ignore_index, val_fraction: float, seed: int, _run_path: str):
    # keyed by what decides the split, not by run (_run_path is left out of the key): a class's 120 runs of one
    # dataset share one decoded copy
    return load_run_dataset(Run(Path(_run_path)), "val")


def dataset_of(run_path: str):
    config = Run(Path(run_path)).config
    key = (str(config.get("data")), config.get("ignore_index"), config.get("val_fraction"), config.get("seed"))
    return _dataset(*key, run_path)


@st.cache_resource(max_entries=64, show_spinner="Reading what training saved…")
def view_of(run_path: str, stamp: tuple) -> RunView:
    """What training saved of a run (its validation predictions): no model is loaded (run_views.py)."""
    return run_view(Run(Path(run_path)), dataset_of(run_path))


def stamp_of(run) -> tuple:
    files = [run.checkpoint, run.path / VAL_OUTPUTS]
    return tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files)


try:
    views = [view_of(str(r.path), stamp_of(r)) for r in chosen]
except SegcoreError as exc:
    st.error(error_text(exc))
    st.stop()

st.subheader("Summary")
rows = [summary_row(r) for r in chosen]
page_columns = [column for column in SUMMARY_COLUMNS if column.on_page]


def column_config(column):
    if column.label == "run":
        return st.column_config.TextColumn(width="medium")
    if column.digits is None:
        return None
    return st.column_config.NumberColumn(format=f"%.{column.digits}f", help=column.help or None)


st.dataframe(
    [{column.label: row[column.label] for column in page_columns} for row in rows],
    hide_index=True,
    width="stretch",
    column_config={column.label: column_config(column) for column in page_columns},
)
buffer = io.StringIO()
writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
writer.writeheader()
writer.writerows(rows)
st.download_button("Download the full table (CSV)", buffer.getvalue(), "comparison.csv", "text/csv")
st.caption("mIoU: mean IoU over the classes present in the ground truth or the prediction; ignored pixels excluded.")


@st.cache_data(max_entries=64, show_spinner=False)
def native_miou(path: str, mtime: float) -> float:
    """mIoU with logits upsampled to each validation image's own size (cached per checkpoint)."""
    return evaluate_run(predictor(path, mtime), dataset_of(path), "val", native=True)["miou"]


with st.expander("mIoU at each image's own size (how published results are scored)"):
    st.caption(
        "The table above scores images and masks resized to the training size. Published results (CamVid: "
        "360×480) score at each image's original size: the prediction is upsampled before each pixel's class is "
        "chosen and compared with the original mask. The overlays and exports of this page are made that way."
    )
    keys = [(str(r.path), r.checkpoint.stat().st_mtime) for r in chosen]
    scores = st.session_state.setdefault("native_scores", {})  # (run folder, checkpoint time) → native mIoU
    if st.button("Score at native size", key="score_native", help="Predicts every validation image once per run"):
        bar = st.progress(0.0, text="Scoring…")
        for done, (run, key) in enumerate(zip(chosen, keys)):
            bar.progress(done / len(chosen), text=f"Scoring {escape_md(run.run_id)} ({done + 1} of {len(chosen)})…")
            try:
                scores[key] = native_miou(*key)
            except SegcoreError as exc:
                st.error(f"{escape_md(run.run_id)}: {error_text(exc)}")
        bar.empty()
    if any(key in scores for key in keys):
        st.dataframe(
            [
                {"run": run.run_id, "mIoU, training size": row["mIoU"], "mIoU, native size": scores.get(key)}
                for run, row, key in zip(chosen, rows, keys)
            ],
            hide_index=True,
            column_config={
                "mIoU, training size": st.column_config.NumberColumn(format="%.3f"),
                "mIoU, native size": st.column_config.NumberColumn(format="%.3f"),
            },
        )

chosen_curves = comparison_curves(chosen)
st.plotly_chart(time_to_accuracy_figure(chosen_curves), key="time_to_accuracy")
if note := busy_note(chosen_curves):
    st.caption(f"⚠️ {note}")

left, right = st.columns(2)
with left:
    figure = go.Figure()
    for run in chosen:
        points = [p for p in per_class_iou_rows([run])]
        figure.add_trace(
            go.Bar(
                x=[plot_text(p["class"]) for p in points],
                y=[p["IoU"] for p in points],
                name=run.run_id,
                marker_color=STRATEGY_COLOURS.get(run.config.get("strategy"), "#888"),
            )
        )
    figure.update_layout(
        barmode="group",
        title="IoU per class (click a bar to see where it goes wrong)",
        yaxis_range=[0, 1],
        height=340,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", y=-0.25),
    )
    clicked = st.plotly_chart(figure, key="per_class", on_select="rerun", selection_mode="points")
    picked = [p.get("point_index") for p in (clicked.selection.points if clicked else [])]
    if picked and picked[0] is not None:
        st.session_state["worst_class"] = int(picked[0])
with right:
    same_data = same_recipe([r for r in runs if dataset_key(r) == dataset_key(chosen[0])], chosen[0])
    pool = chosen if differs_in_training_size(chosen) else same_data
    if differs_in_training_size(pool):
        points = data_efficiency_with_spread(pool)
        seeded = any(p["n"] > 1 for p in points)
        curve = go.Figure()
        for strategy in dict.fromkeys(p["strategy"] for p in points):
            mine = [p for p in points if p["strategy"] == strategy]
            curve.add_trace(
                go.Scatter(
                    x=[p["train_images"] for p in mine],
                    y=[p["mean"] for p in mine],
                    error_y=dict(type="data", array=[p["sd"] or 0 for p in mine], visible=seeded),
                    customdata=[[p["n"], p["sd"] or 0] for p in mine],
                    hovertemplate="%{x} images: mIoU %{y:.3f} ± %{customdata[1]:.3f} (%{customdata[0]} runs)",
                    mode="lines+markers",
                    name=plot_text(STRATEGY_LABELS.get(strategy, strategy)),
                    line=dict(color=STRATEGY_COLOURS.get(strategy, "#888")),
                )
            )
        curve.update_layout(
            title="Data efficiency: mIoU against training images" + (" (mean ± sd over seeds)" if seeded else ""),
            xaxis_title="training images",
            yaxis_title="mIoU",
            height=340,
            margin=dict(l=10, r=10, t=40, b=10),
        )
        st.plotly_chart(curve, key="efficiency")
        st.caption(step_budget_note(pool))
    else:
        st.info(
            "Runs trained on different numbers of images draw a data-efficiency curve here. "
            "Queue one with *Data-efficiency sweep* on the Model & strategy page."
        )

st.subheader("Side by side")
try:
    data = dataset_of(str(chosen[0].path))
except SegcoreError as exc:
    st.error(f"The dataset of {escape_md(chosen[0].run_id)} cannot be read now: {error_text(exc)}")
    st.stop()
c1, c2, c3 = st.columns(3)
alpha = c1.slider("Overlay opacity", 0.0, 1.0, 0.55, 0.05, key="cmp_alpha")
show_errors = c2.toggle(
    f"Show wrong pixels in {error_colour(views[0].colours)[0]}",
    value=False,
    key="cmp_errors",
    help="The colour that stands out most from these classes' colours.",
)
count = c3.number_input("Validation images", 1, 24, 4, key="cmp_count")
headers = st.columns(2 + len(views))
headers[0].markdown("**image**")
headers[1].markdown("**ground truth**")
for column, run in zip(headers[2:], chosen):
    column.markdown(f"**{escape_md(STRATEGY_LABELS.get(run.config.get('strategy'), ''))}**  \n{escape_md(run.run_id)}")
for row in comparison_tiles(views, data, "val", int(count), alpha, show_errors):
    for column, tile in zip(st.columns(2 + len(views)), row):
        column.image(tile, width="stretch")

st.subheader("Where does it go wrong?")
classes = views[0].classes
class_index = st.selectbox(
    "Class",
    range(len(classes)),
    format_func=lambda i: classes[i],
    key="worst_class",
    help="The validation images where this class fares worst across the chosen runs.",
)


@st.cache_data(max_entries=16, show_spinner="Finding the hardest images…")
def worst(run_paths: tuple[str, ...], stamps: tuple, class_index: int, count: int, alpha: float):
    chosen_views = [view_of(p, s) for p, s in zip(run_paths, stamps)]
    return worst_images_for_class(chosen_views, dataset_of(run_paths[0]), class_index, "val", count, alpha)


entries = worst(tuple(str(r.path) for r in chosen), tuple(stamp_of(r) for r in chosen), int(class_index), 3, alpha)
if not entries:
    st.info(f"No validation image holds {escape_md(classes[class_index])} and no run predicts it.")
for entry in entries:
    scores = " · ".join(
        f"{escape_md(run.run_id)}: {'—' if v is None else f'{v:.3f}'}" for run, v in zip(chosen, entry["iou"])
    )
    st.caption(f"{escape_md(entry['name'])} — IoU of {escape_md(classes[class_index])}: {scores}")
    for column, tile, title in zip(st.columns(len(entry["tiles"])), entry["tiles"], entry["titles"]):
        column.image(tile, caption=escape_md(title), width="stretch")

st.subheader("Take it home")
# what was prepared stays downloadable while the same runs and picture settings are chosen: preparing the report
# does not take away the PNG's button
prepared = st.session_state.setdefault("prepared_exports", {})
export_key = (tuple(r.run_id for r in chosen), int(count), float(alpha), bool(show_errors))
if prepared.get("for") != export_key:
    prepared.clear()
    prepared["for"] = export_key


def sheet_png() -> bytes:
    buffer = io.BytesIO()
    render_comparison(views, data, count=int(count), alpha=alpha, show_errors=show_errors).save(buffer, format="PNG")
    return buffer.getvalue()


c1, c2, c3 = st.columns(3)
if c1.button("Prepare the comparison as PNG"):
    with st.spinner("Drawing the comparison…"):
        prepared["png"] = sheet_png()
if c2.button(
    "Prepare a report (one HTML file)",
    help="Curves, the side-by-side grid, per-class table and settings; opens in any browser, offline.",
):
    with st.spinner("Writing the report…"):
        prepared["html"] = comparison_report(
            chosen, data, count=int(count), views=views, alpha=alpha, show_errors=show_errors
        )
if c3.button(
    "Prepare a bundle (zip)",
    help="The runs (settings, curves, best models) and the comparison picture, to import on another machine.",
):
    try:
        check_exportable(chosen, owner=session_owner())
        prepared["zip"] = True  # packed when downloaded: a 50 MiB bundle is not held in each student's session
    except SegcoreError as exc:
        st.error(error_text(exc))
if "png" in prepared:
    c1.download_button("Download comparison (PNG)", prepared["png"], "comparison.png", "image/png")
if "html" in prepared:
    c2.download_button("Download report (HTML)", prepared["html"], "comparison.html", "text/html")
if "zip" in prepared:
    owner = session_owner()  # read here: the download runs outside the page's script, where the session is not
    c3.download_button(
        "Download bundle (zip)",
        lambda: export_comparison_bytes(chosen, sheet_png(), owner=owner),
        "comparison-bundle.zip",
        "application/zip",
    )
import_bundle_box()

st.subheader("Try your own image")
upload = st.file_uploader(
    "An image of your own (it stays on this machine)", type=["png", "jpg", "jpeg", "bmp", "webp"], key="own_image"
)
if upload:
    try:
        image = read_uploaded_image(upload.name, upload.getvalue())
    except SegcoreError as exc:
        st.error(error_text(exc))
        st.stop()
    image.thumbnail((640, 640))
    predictors = [predictor(str(r.path), r.checkpoint.stat().st_mtime) for r in chosen]  # a new image needs the models
    columns = st.columns(1 + len(predictors))
    columns[0].image(image, caption="your image", width="stretch")
    for column, p, run in zip(columns[1:], predictors, chosen):
        column.image(p.overlay(image, alpha), caption=escape_md(run.run_id), width="stretch")
    legend = " ".join(
        f"<span style='padding:2px 6px;border-radius:6px;background:rgb{tuple(c)};"
        f"color:{'#000' if sum(c) > 380 else '#fff'}'>{html_text(n)}</span>"
        for n, c in zip(predictors[0].classes, predictors[0].colours)
    )
    st.markdown(legend, unsafe_allow_html=True)
