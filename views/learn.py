"""Learn: the lesson in short, and what the encoders 'see' (feature maps projected to colour)."""

import streamlit as st

from segcore.base.errors import SegcoreError
from segcore.settings.strategies import STRATEGIES
from segcore.teaching.feature_pictures import FEATURE_VIEW_SIZE, encoders_to_compare, feature_pca_image
from segcore.teaching.pseudo_label_picture import pseudo_label_picture, unlabelled_images_of
from views._shared import current_dataset, error_text, finished_runs, run_label
from views._teaching import reference_scale_block, structure_evidence_block

st.title("🎓 Learn: transfer learning for segmentation")

st.markdown("""
A segmentation network here has three parts: an **encoder** (a timm image backbone) that turns pixels into
features, a **decoder** that brings those features back to full resolution, and a **head** that gives every pixel
a class. *Transfer learning* means starting some of these parts from knowledge learnt elsewhere.
""")
st.latex(
    r"\min_w \; \underbrace{\frac{1}{N}\sum_{i=1}^{N} L\big(y_i, f_w(x_i)\big)}_{\text{fit your data}}"
    r"\;+\; \lambda \underbrace{R(w)}_{\text{stay reasonable}}, \qquad "
    r"R_{L2}(w)=\tfrac12\lVert w\rVert^2,\quad R_{L2\text{-}SP}(w)=\tfrac12\lVert w-w_0\rVert^2"
)
st.markdown("""
*The symbols.* **xᵢ** is the i-th training image and **yᵢ** its mask (a class for every pixel); **N** is the number
of training images; **f_w** is the network with weights **w**, so f_w(xᵢ) is its predicted mask; **L** is the loss
that compares a predicted mask with the true one, pixel by pixel (cross-entropy, plus Dice if you ask for it);
**R(w)** is the regulariser and **λ** its weight (the *λ* setting on the *Model & strategy* page); **w₀** are the weights a transfer starts from. Every strategy
minimises the same objective: what differs is where **w** starts and which parts of it may move.
""")
st.table(
    [
        {
            "strategy": "scratch (baseline)",
            "encoder starts from": "random",
            "decoder starts from": "random",
            "what learns": "everything",
            "pays off when": "lots of data, or data unlike anything seen before",
        },
        {
            "strategy": "parameter transfer",
            "encoder starts from": "ImageNet",
            "decoder starts from": "random",
            "what learns": "everything (encoder slowly)",
            "pays off when": "moderate data, photos like ImageNet's",
        },
        {
            "strategy": "partial fine-tuning (a parameter transfer setting)",
            "encoder starts from": "ImageNet",
            "decoder starts from": "random",
            "what learns": "decoder + head first, then the encoder too, at a lower learning rate",
            "pays off when": "little data: the new decoder settles before it can disturb the encoder",
        },
        {
            "strategy": "feature transfer",
            "encoder starts from": "ImageNet",
            "decoder starts from": "random",
            "what learns": "decoder + head only",
            "pays off when": "very little data, a CPU, or a quick first result",
        },
        {
            "strategy": "structure transfer",
            "encoder starts from": "a source segmentation run",
            "decoder starts from": "the same source run",
            "what learns": "everything (new head)",
            "pays off when": "a related segmentation task was already solved",
        },
    ]
)
st.markdown("""
**L2 vs L2-SP.** Plain L2 pulls every weight towards zero — it quietly *forgets* what was transferred.
L2-SP pulls the transferred weights towards where they started (w₀), so fine-tuning keeps what ImageNet taught
(Li, Grandvalet & Davoine, 2018). It helps most when the new task looks like the old one.

**Partial fine-tuning** sits between feature and parameter transfer: on the *Model & strategy* page, *Warm-up
epochs with the encoder frozen* trains only the decoder and head first, then lets the encoder learn too, and
*Encoder learning rate ×* keeps it learning more slowly than the rest (0.1 by default), so it moves away from what
ImageNet taught only as far as your data asks.

**Frozen means frozen?** Freezing an encoder stops its gradients, but its BatchNorm layers still update their
running statistics unless they are put in eval mode too. smp freezes them; fastai lets them adapt. The *Model &
strategy* page has the switch.
""")
st.page_link("views/data.py", label="1 · Choose data", icon="🖼️")
st.page_link("views/model.py", label="2 · Choose a backbone and strategy", icon="🧠")
st.page_link("views/training.py", label="3 · Watch the curves", icon="📈")
st.page_link("views/compare.py", label="4 · Compare the segmentations", icon="🔍")

st.header("When does each strategy win?")
st.markdown("""
**Structure transfer** carries over a whole segmentation network — encoder *and* decoder — from a source task. It
wins when that source task is **close**: the same kind of images, related classes, many labels there and very few
here. The lesson *When does structure transfer win?* builds exactly that: a source of 320 labelled images with four
shapes, and a target with 16 labelled images of three of them. The network already finds and names these objects;
only the classifier is new.

It does **not** win when the source task is far: in *Why transfer learning?* the source (ellipses, rings, crosses in
warm colours) shares neither the classes nor the look of the target, so what its decoder learnt is of little use: it
is no better than ImageNet's encoder with a fresh decoder (parameter transfer), and behind feature transfer. Closeness is not enough on its own either:
in our measurements a source that only outlined the objects without naming them did worse than parameter transfer,
and one with six shapes, too many to learn in the lesson's short source run, only tied it. What the source network
has *learnt* is what is carried over.
""")
structure_evidence_block()
st.markdown("""
**Why a far domain gains less.** Every normalisation layer of the ImageNet encoder holds statistics it measured on
ImageNet photos: the colours and textures its first layers expect, the object parts its last ones expect. Feeding it
your images shows how far they pull those layers from what they expect: the *domain distance* (0 = looks like
ImageNet). Street scenes stay close — cars, roads and buildings are ImageNet's world;
electron-microscopy membranes are far — grey, textured, nothing like a photo. The further the images, the less the
transferred features fit, the less a frozen encoder (feature transfer) can do and the more the encoder must adapt
(parameter transfer) — or, with plenty of data and a GPU, training from scratch becomes competitive.
The *Model & strategy* page turns this into a suggested strategy with its reasons.
""")
reference_scale_block()

st.header("Why it works: what the encoder sees")
st.markdown(
    "Each picture colours the pixels by the first three principal components of the encoder's features. "
    "Pixels the encoder finds alike get alike colours. Pretrained features already separate objects, "
    "parts and edges; a random encoder's features blur into smooth blobs that follow brightness, not "
    "objects — there is nothing in them yet for a decoder to build on."
)

data, problem = current_dataset()
if problem:
    st.error(problem)  # made inert by error_text
    st.stop()
c1, c2, c3 = st.columns(3)
val = data.load("val", FEATURE_VIEW_SIZE)
index = c1.slider("Image", 0, len(val) - 1, 0, key="learn_image") if len(val) > 1 else 0
level = c2.select_slider(
    "Encoder level",
    [1, 2, 3],
    value=2,
    key="learn_level",
    format_func=lambda level: {1: "early (edges)", 2: "middle (parts)", 3: "late (objects)"}[level],
)
runs = [
    r
    for r in finished_runs()
    if STRATEGIES.get(r.config.get("strategy")) and STRATEGIES[r.config["strategy"]].encoder_learns
]
run = c3.selectbox(
    "A run whose encoder was fine-tuned (optional)",
    [None, *runs],
    key="learn_run",
    format_func=lambda r: "—" if r is None else run_label(r),
)


@st.cache_resource(max_entries=4, show_spinner="Loading the run…")
def predictor(run_path: str):
    from segcore import Predictor

    return Predictor(run_path, device="cpu")


@st.cache_resource(max_entries=4, show_spinner="Preparing encoders…")
def encoders(run_path: str | None):
    from segcore import Predictor

    return encoders_to_compare(run_model=Predictor(run_path, device="cpu").model if run_path else None)


from PIL import Image  # noqa: E402

image = Image.fromarray(val.images[index].permute(1, 2, 0).numpy())
models = encoders(str(run.path) if run else None)
columns = st.columns(1 + len(models))
columns[0].image(image, caption="image", width="stretch")
for column, (name, model) in zip(columns[1:], models.items()):
    column.image(feature_pca_image(model, image, FEATURE_VIEW_SIZE, level), caption=name, width="stretch")

st.header("Learning from unlabelled images")
st.markdown("""
Labels are expensive: a mask can take an hour to draw, a photo costs nothing. **Semi-supervised training** uses the
photos without masks too. For each unlabelled image the network makes its own guess, the **pseudo-label**, on a
lightly changed copy (a mirror image). Where it is **sure** (its probability for the class is above the threshold),
that guess becomes the target for a **strongly changed** copy of the same image: other colours, blur, a patch pasted
from another photo. The network learns to give the same answer however the image looks (*consistency*), and the
confident region grows as it learns. Where it is confidently wrong, it teaches itself the mistake: that is why only
sure pixels count. The lesson *Labels are expensive* measures what this adds.
""")
semi_runs = [r for r in finished_runs() if r.config.get("unlabelled")]
if not semi_runs:
    st.caption(
        "Train a run with unlabelled images (the lesson *Labels are expensive*, or *Unlabelled images* on the Model "
        "page) to see what your own network takes from them."
    )
else:
    c1, c2, c3 = st.columns(3)
    semi_run = c1.selectbox("Your semi-supervised run", semi_runs, key="learn_semi_run", format_func=run_label)
    threshold = c3.slider(
        "Confidence threshold",
        0.5,
        0.99,
        float(semi_run.config.get("confidence") or 0.95),
        0.01,
        key="learn_threshold",
    )
    try:
        paths = unlabelled_images_of(semi_run)
        shown = c2.slider("Unlabelled image", 0, len(paths) - 1, 0, key="learn_unlabelled") if len(paths) > 1 else 0
        picture = pseudo_label_picture(predictor(str(semi_run.path)), paths[shown], threshold)
    except SegcoreError as exc:
        st.error(error_text(exc))
    else:
        columns = st.columns(3)
        columns[0].image(picture.image, caption="an unlabelled image", width="stretch")
        columns[1].image(picture.pseudo_label, caption="its pseudo-label (the run's guess)", width="stretch")
        columns[2].image(
            picture.confident,
            caption=f"what it learns from: {picture.confident_share:.0%} of the pixels are sure enough (grey: not)",
            width="stretch",
        )
