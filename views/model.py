"""Model & strategy: pick a backbone and a transfer strategy, set the knobs, queue training."""

import time

import streamlit as st

from views._shared import current_dataset, finished_runs, queue, run_label
from segcore import REGULARIZERS, STRATEGIES, SegcoreError, TrainConfig
from segcore.strategies import part_roles
from segcore.data.transforms import AUGMENTATIONS
from segcore.models import SHORTLIST, describe_backbone
from segcore.losses import CLASS_WEIGHTINGS
from segcore.planning import SWEEP_SIZES, queue_all_strategies

st.title("🧠 Model & strategy")
DEFAULTS = TrainConfig()

data, problem = current_dataset()
if problem:
    st.error(f"Choose a usable dataset on the Data page first.\n\n{problem}")
    st.stop()


@st.cache_data(show_spinner="Looking up backbones…")
def backbone_table(names: tuple[str, ...]) -> list[dict]:
    return [describe_backbone(n).to_dict() for n in names]


@st.cache_data(show_spinner=False)
def trainable_parameters(backbone: str, strategy: str, num_classes: int) -> tuple[int, int]:
    import torch

    from segcore.models import SegmentationModel, count_parameters

    with torch.device("meta"):
        model = SegmentationModel(backbone, num_classes)
    if strategy == "feature":
        model.freeze_encoder()
    return count_parameters(model, trainable_only=True), count_parameters(model)


st.subheader("1 · Backbone (encoder)")
extra = st.text_input("Search any timm model (optional)", placeholder="e.g. mobilenetv3_large_100",
                      help="Any timm model that supports features_only works; the list below is CPU-friendly.")
names = tuple(dict.fromkeys([*SHORTLIST, *([extra.strip()] if extra.strip() else [])]))
table = backbone_table(names)
usable = [row for row in table if row["usable"]]
for row in table:
    if not row["usable"]:
        st.warning(f"`{row['name']}` cannot be used here: {row['problem'][:200]}")
backbone = st.selectbox(
    "Backbone", [row["name"] for row in usable], index=0, key="backbone",
    format_func=lambda n: next(f"{r['name']} · {r['encoder_params'] / 1e6:.1f} M params · weights: {r['weights']}"
                               for r in usable if r["name"] == n))
with st.expander("All backbones", expanded=False):
    st.dataframe([{"backbone": r["name"], "parameters (M)": round(r["encoder_params"] / 1e6, 2),
                   "feature channels": str(r["feature_channels"]), "pretrained weights": r["weights"]} for r in usable],
                 hide_index=True)
weights = next(r["weights"] for r in usable if r["name"] == backbone)

st.subheader("2 · Strategy")
strategy = st.radio("Transfer strategy", list(STRATEGIES), key="strategy", horizontal=True, index=2,
                    format_func=lambda s: STRATEGIES[s].title)
info = STRATEGIES[strategy]
st.info(info.explanation.replace("\n", " "))
START_COLOURS = {"random": "#e2e8f0", "ImageNet": "#bfdbfe", "source run": "#fde68a", "random (new classes)": "#e2e8f0"}
boxes = " <span style='font-size:1.4em'>→</span> ".join(
    f"<span style='display:inline-block;padding:8px 14px;border-radius:10px;background:{START_COLOURS[start]};"
    f"border:2px {'solid #16a34a' if learns else 'dashed #64748b'};margin:4px'><b>{part}</b><br>"
    f"<small>starts: {start}<br>{'🔥 learns' if learns else '❄️ frozen'}</small></span>"
    for part, start, learns in part_roles(strategy))
st.markdown(f"<div style='margin:6px 0 12px 0'>image → {boxes} → classes per pixel</div>", unsafe_allow_html=True)
if info.pretrained_encoder and weights == "unavailable":
    st.error(f"No ImageNet weights for `{backbone}` here: choose tf_efficientnet_lite0 (bundled) or train from scratch.")
elif info.pretrained_encoder and weights.startswith("downloadable"):
    st.warning(f"`{backbone}`'s weights must be downloaded on first use; offline, pick tf_efficientnet_lite0 (bundled).")
st.latex(r"\min_w \; \frac{1}{N}\sum_{i=1}^{N} L\big(y_i, f_w(x_i)\big) \;+\; \lambda\, R(w)")
trainable, total = trainable_parameters(backbone, strategy, data.num_classes)
st.caption(f"Trainable parameters with this choice: **{trainable:,}** of {total:,} "
           f"({trainable / total:.0%}) for {data.num_classes} classes.")

st.subheader("3 · Settings")
c1, c2, c3, c4, c5 = st.columns([1.3, 1, 1, 1, 1])
size = c1.select_slider("Image size", [64, 96, 128, 160, 192, 224, 256, 320], value=DEFAULTS.height, key="size")
epochs = c2.number_input("Epochs", 1, 200, DEFAULTS.epochs, key="epochs")
min_steps = c3.number_input("At least N steps", 0, 5000, DEFAULTS.min_steps, 50, key="min_steps",
                            help="Small training sets get extra epochs until they reach this many optimiser steps: "
                                 "30 images at batch 8 are only 4 steps an epoch. 0 switches this off.")
batch_size = c4.number_input("Batch size", 1, 128, DEFAULTS.batch_size, key="batch_size")
lr = c5.number_input("Learning rate", 1e-5, 1.0, DEFAULTS.lr, format="%.5f", key="lr")
c1, c2, c3, c4 = st.columns(4)
regularizer = c1.selectbox("Regulariser R(w)", list(REGULARIZERS), key="regularizer", format_func=lambda r: r.upper())
weight_decay = c2.number_input("λ", 0.0, 100.0, DEFAULTS.weight_decay, format="%.5f", key="lambda")
train_pct = c3.slider("Training images used (%)", 5, 100, 100, 5, key="train_pct",
                      help="Fewer images show where transfer pays off (the data-efficiency experiment).")
seed = c4.number_input("Seed", 0, 10_000, DEFAULTS.seed, key="seed")
st.caption(REGULARIZERS[regularizer])
c1, c2 = st.columns(2)
augment = c1.segmented_control("Augmentation", list(AUGMENTATIONS), default="flip", key="augment",
                               help="; ".join(f"{k}: {v}" for k, v in AUGMENTATIONS.items())) or "flip"
class_weights = c2.segmented_control(
    "Class weights in the loss", list(CLASS_WEIGHTINGS), default=DEFAULTS.class_weights, key="class_weights",
    help="none: every pixel counts the same, so small classes (poles, signs, people) may never be predicted; "
         "balanced: each class weighted by median frequency ÷ its frequency; sqrt: the square root of that, "
         "a milder push.") or DEFAULTS.class_weights
if strategy == "feature" and augment == "full":
    st.caption("With *full* augmentation every input differs, so feature transfer cannot cache its features: "
               "epochs get slower.")

freeze_epochs, train_bn, encoder_lr_factor, source_run = 0, DEFAULTS.train_bn, DEFAULTS.encoder_lr_factor, None
if strategy in ("parameter", "structure"):
    c1, c2 = st.columns(2)
    encoder_lr_factor = c1.number_input("Encoder learning rate × ", 0.0, 1.0, DEFAULTS.encoder_lr_factor, key="enc_factor")
    if strategy == "parameter":
        freeze_epochs = c2.number_input("Warm-up epochs with the encoder frozen", 0, 50, 0, key="freeze_epochs")
if strategy != "scratch":
    train_bn = st.toggle("Let the transferred encoder's BatchNorm statistics adapt", value=DEFAULTS.train_bn,
                         key="train_bn",
                         help="Off: the running statistics stay as transferred (smp's choice for frozen encoders); "
                              "with small batches this keeps pretrained features intact, and feature transfer can "
                              "cache its features. On: BatchNorm keeps re-estimating them on your images (fastai's "
                              "choice).")
if strategy == "structure":
    sources = [r for r in finished_runs() if r.config.get("backbone") == backbone]
    if sources:
        picked = st.selectbox("Source run to carry over", sources, format_func=run_label, key="source_run")
        source_run = str(picked.path)
    else:
        st.warning("No finished run with this backbone to carry over yet. *Train all strategies* first trains "
                   "one on the built-in source task (ellipses, rings, crosses).")

config = TrainConfig(
    data=data.source, backbone=backbone, strategy=strategy, epochs=int(epochs), min_steps=int(min_steps), batch_size=int(batch_size),
    lr=float(lr), encoder_lr_factor=float(encoder_lr_factor), freeze_epochs=int(freeze_epochs), train_bn=train_bn,
    regularizer=regularizer, weight_decay=float(weight_decay), height=size, width=size, seed=int(seed),
    ignore_index=data.ignore_index if data.encoding.kind == "index" else 255,
    train_size=None if train_pct == 100 else train_pct / 100, source_run=source_run, augment=augment,
    class_weights=class_weights,
)
train_images = len(data.train_indices(config.train_size, config.seed))
planned_epochs = config.planned_epochs(train_images)
if planned_epochs > config.epochs:
    st.caption(f"{train_images} training images make only {config.steps_per_epoch(train_images)} optimiser steps "
               f"per epoch: training runs **{planned_epochs} epochs**, so that it gets at least {config.min_steps} steps.")

st.subheader("4 · Train")
b1, b2, b3 = st.columns(3)
try:
    if b1.button("▶ Train", type="primary", width="stretch", disabled=strategy == "structure" and not source_run):
        run = queue().submit(config, group=time.strftime("run-%Y%m%d-%H%M%S"))
        st.session_state["watch_group"] = run.config.get("group")
        st.success(f"Queued **{run.run_id}**.")
        st.page_link("views/training.py", label="Watch it train →", icon="📈")
    if b2.button("▶▶ Train all strategies", width="stretch",
                 help="One run per strategy with identical settings (plus the source run structure transfer needs)."):
        runs = queue_all_strategies(queue(), config, source_run=source_run)
        st.session_state["watch_group"] = runs[-1].config.get("group")
        st.success("Queued " + ", ".join(f"**{r.run_id}**" for r in runs) + ".")
        st.page_link("views/training.py", label="Watch them train →", icon="📈")
    if b3.button("📉 Data-efficiency sweep", width="stretch",
                 help=f"Every strategy × {', '.join(f'{s:.0%}' for s in SWEEP_SIZES)} of the training images."):
        runs = queue_all_strategies(queue(), config, source_run=source_run, train_sizes=SWEEP_SIZES)
        st.session_state["watch_group"] = runs[-1].config.get("group")
        st.success(f"Queued {len(runs)} runs.")
        st.page_link("views/training.py", label="Watch them train →", icon="📈")
except SegcoreError as exc:
    st.error(str(exc))
