"""Data: choose a dataset, see how its masks are read, look at samples and augmentations."""

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from segcore import SegcoreError, dataset_report
from segcore.base.paths import default_lessons_dir
from segcore.data.builtin import BUILTINS
from segcore.data.downloads import DOWNLOADS
from segcore.data.preview import augmentation_preview, sample_overlays
from segcore.data.report import RARE_SHARE
from segcore.data.roots import roots_problem
from segcore.data.transforms import AUGMENTATIONS
from segcore.data.uploads import save_uploads
from segcore.jobs.quotas import check_upload
from segcore.teaching.builtin_lessons import BUILTIN_LESSONS
from segcore.teaching.lesson_files import list_lessons, open_lesson
from views._shared import (
    choose_dataset,
    class_runs,
    current_dataset,
    dataset_display_name,
    dataset_settings,
    error_text,
    escape_md,
    html_text,
    plot_text,
    runs_dir,
    session_owner,
    workspace,
)
from views._teaching import domain_block

st.title("🖼️ Data")
st.caption("Pick the images and masks to learn from. Everything stays on this machine.")


@st.cache_data(ttl=10, show_spinner=False)
def teachers_lessons(folder: str, stamp: tuple) -> list:
    return list_lessons(folder)


def open_the_lesson(lesson) -> None:
    choose_dataset(lesson.data_source, lesson.settings.get("ignore_index", 255), None)
    st.session_state.update(lesson=lesson, lesson_pending=True)
    st.session_state.pop("lesson_result", None)  # the last lesson's "Queued …" is not this one's
    st.switch_page("views/model.py")


with st.expander("📚 Lessons from your teacher", expanded=False):
    folder = default_lessons_dir(runs_dir())
    files = sorted(folder.glob("*")) if folder.is_dir() else []
    listed = teachers_lessons(str(folder), tuple((f.name, f.stat().st_mtime) for f in files))
    offered = [*BUILTIN_LESSONS.values(), *[item for _, item in listed if not isinstance(item, Exception)]]
    for path, item in listed:
        if isinstance(item, Exception):
            st.warning(f"{escape_md(path.name)} cannot be opened: {error_text(item)}")
    c1, c2 = st.columns([3, 1])
    chosen_lesson = c1.selectbox(
        "Lesson", offered, format_func=lambda lesson: f"{lesson.title}  ({Path(lesson.origin).name})", key="lesson_pick"
    )
    if c2.button("Open", key="open_lesson", type="primary", width="stretch"):
        open_the_lesson(chosen_lesson)
    lesson_file = st.file_uploader("…or open a lesson file (.lesson.zip)", type=["zip", "segl"], key="lesson_file")
    if lesson_file and st.button("Open this file", key="open_lesson_file"):
        try:
            upload = [(lesson_file.name, lesson_file.getvalue())]
            check_upload(session_owner(), runs_dir(), class_runs(), upload)
            saved = save_uploads(upload)
            open_the_lesson(open_lesson(saved))
        except SegcoreError as exc:
            st.error(error_text(exc))

source, ignore_index, class_names = dataset_settings()
record = workspace()
ORIGINS = ["Built-in", "Upload", "Folder on this server", "Download (needs internet)"]
if source.startswith("builtin:"):
    current_origin = 0
elif record.upload_name(source) or "uploads" in Path(source).parts:
    current_origin = 1
else:
    current_origin = 3 if source.startswith("download:") else 2
# the radio starts from where the current dataset came from, so coming back to this page never changes it
choice = st.radio("Where is the data?", ORIGINS, index=current_origin, horizontal=True, key="data_origin")

new_source, uploaded_name = None, None
if choice == "Built-in":
    names = list(BUILTINS)
    current = (
        source.split(":", 1)[1] if source.startswith("builtin:") and source.split(":", 1)[1] in names else names[0]
    )
    name = st.selectbox(
        "Built-in dataset", names, index=names.index(current), format_func=lambda n: f"{n} — {BUILTINS[n].description}"
    )
    new_source = f"builtin:{name}"
elif choice == "Upload":
    earlier = [u for u in record.uploads or [] if Path(u["source"]).exists()]
    if earlier:
        sources = [u["source"] for u in earlier]
        picked = st.selectbox(
            "Your uploads",
            sources,
            index=sources.index(source) if source in sources else None,
            format_func=lambda s: record.upload_name(s) or s,
            placeholder="Use one you uploaded before",
            key="earlier_upload",
        )
        new_source = picked
    left, right = st.columns(2)
    archive = left.file_uploader("A .zip of the dataset folder", type=["zip"], key="upload_zip")
    folder = right.file_uploader("…or a whole folder", accept_multiple_files="directory", key="upload_folder")
    files = [(archive.name, archive.getvalue())] if archive else [(f.name, f.getvalue()) for f in folder or []]
    if files:
        try:
            check_upload(session_owner(), runs_dir(), class_runs(), files)
            new_source = str(save_uploads(files))
            uploaded_name = archive.name if archive else files[0][0].replace("\\", "/").split("/")[0]
        except SegcoreError as exc:
            st.error(error_text(exc))
    elif not earlier:
        st.info(
            "Layouts understood: `images/` + `masks/` (paired by file name), SegNet/CamVid "
            "(`train/` + `trainannot/`…), Pascal VOC (`JPEGImages/` + `SegmentationClass/`)."
        )
elif choice == "Folder on this server":
    path = st.text_input(
        "Folder path", value="" if source.startswith(("builtin:", "download:")) else source, placeholder="/data/camvid"
    )
    new_source = path.strip() or None
    outside = roots_problem(new_source) if new_source else None
    if outside:
        st.error(
            f"{escape_md(new_source)} {escape_md(outside)}: ask the teacher to put the dataset there, or upload it."
        )
        new_source = None
else:
    name = st.selectbox("Dataset to download", list(DOWNLOADS), format_func=lambda n: f"{n} — {DOWNLOADS[n]}")
    if st.button("Download and use it"):
        new_source = f"download:{name}"

with st.expander("How masks are read", expanded=False):
    ignore_text = st.text_input(
        "Ignore index (mask value that marks unlabelled pixels; CamVid uses 11, VOC 255; empty for none)",
        value="" if ignore_index is None else str(ignore_index),
    )
    names_text = st.text_area(
        "Class names, one per line (only when the dataset has no classes.txt / labelmap.txt)",
        value="\n".join(class_names or []),
        height=100,
    )

try:
    new_ignore = int(ignore_text) if ignore_text.strip() else None
except ValueError:
    st.error(f"'{escape_md(ignore_text)}' is not a number: type the mask value to ignore, e.g. 255 or 11")
    new_ignore = ignore_index
new_names = tuple(n.strip() for n in names_text.splitlines() if n.strip()) or None

if new_source and (new_source, new_ignore, new_names) != (source, ignore_index, class_names):
    choose_dataset(new_source, new_ignore, new_names, uploaded_name)
    st.rerun()

data, problem = current_dataset()
if problem:
    st.error(f"**This dataset cannot be used yet.**\n\n{problem}")  # problem: already made inert by error_text
    st.stop()

report = dataset_report(data)
st.success(f"Using **{escape_md(dataset_display_name(data.source))}** — {escape_md(report.layout)}")
cols = st.columns(5)
cols[0].metric("Training pairs", report.pairs_per_split.get("train", 0))
cols[1].metric("Validation pairs", report.pairs_per_split.get("val", 0))
cols[2].metric("Classes", len(report.classes))
cols[3].metric("Unlabelled images", report.unlabelled_images, help="images without a mask")
cols[4].metric("Ignored pixels", f"{report.ignored_share:.1%}")
st.markdown(f"**{report.labelled_images} labelled, {report.unlabelled_images} unlabelled** images.")
if report.unlabelled_images:
    st.info(
        "Images without a mask are **unlabelled**: no run learns from them unless you turn on *semi-supervised "
        "training* on the Model page (Unlabelled images → this dataset's own)."
    )
st.caption(
    f"Split: {escape_md(report.split_origin)}. Image sizes: "
    + ", ".join(f"{escape_md(k)} (×{v})" for k, v in list(report.image_sizes.items())[:4])
)

if report.warnings:
    with st.expander(f"⚠️ {len(report.warnings)} note(s) on the files", expanded=False):
        for warning in report.warnings[:100]:
            st.markdown(f"- {escape_md(warning)}")

left, right = st.columns([1, 1])
with left:
    st.subheader("Mask values → classes")
    st.caption(f"{escape_md(report.mask_encoding)}. Classes from {escape_md(report.class_source)}.")
    chips = " ".join(
        f"<span style='display:inline-block;margin:2px;padding:2px 8px;border-radius:8px;"
        f"background:rgb{tuple(c)};color:{'#000' if sum(c) > 380 else '#fff'}'>{i}: {html_text(n)}</span>"
        for i, (n, c) in enumerate(zip(report.classes, report.class_colours))
    )
    st.markdown(chips, unsafe_allow_html=True)
    st.dataframe(
        [{"stored value": k, "becomes": v} for k, v in report.value_to_class.items()],
        hide_index=True,
        height=min(35 * len(report.value_to_class) + 38, 300),
    )
with right:
    st.subheader("Share of pixels per class")
    figure = go.Figure(
        go.Bar(
            x=[plot_text(name) for name in report.pixel_share],
            y=[v * 100 for v in report.pixel_share.values()],
            marker_color=[f"rgb{tuple(c)}" for c in report.class_colours],
        )
    )
    figure.update_layout(yaxis_title="% of labelled pixels", height=320, margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(figure, key="pixel_share")
    rare = report.rare_classes()
    if rare:
        st.caption(
            f"Rare here (under {RARE_SHARE:.0%} of the pixels): {', '.join(escape_md(name) for name in rare)}. Rare classes "
            "are learned last: the default class weights weigh them up; watch their IoU on the Compare page."
        )
    else:
        st.caption("Rare classes are hard to learn: watch their IoU on the Compare page.")

domain_block(data, st.session_state.get("backbone") or "tf_efficientnet_lite0")

st.subheader("Samples")
alpha = st.slider("Mask opacity", 0.0, 1.0, 0.5, 0.05, key="sample_alpha")
samples = sample_overlays(data, "train", count=8, alpha=alpha)
for row in range(0, len(samples), 4):
    for column, (name, picture) in zip(st.columns(4), samples[row : row + 4]):
        column.image(picture, caption=escape_md(name), width="stretch")

st.subheader("Augmentation preview")
kind = (
    st.segmented_control(
        "Augmentation", list(AUGMENTATIONS), default="full", key="augment_preview", format_func=lambda k: k
    )
    or "full"
)
st.caption(
    AUGMENTATIONS[kind] + ". Training uses flips unless you pick *full* on the Model & strategy page; "
    "feature transfer can cache the frozen encoder's features only with flips or none."
)
for column, picture in zip(st.columns(4), augmentation_preview(data, kind, count=4)):
    column.image(picture, width="stretch")
