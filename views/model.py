"""Model & strategy: pick a backbone and a transfer strategy, set the knobs, queue training."""


import streamlit as st

from segcore.runs import list_runs
from views._shared import current_dataset, duration, error_text, finished_runs, md, queue, run_label, runs_dir, session_owner, setting_input
from segcore import REGULARIZERS, STRATEGIES, SegcoreError, TrainConfig
from segcore.config import describe
from segcore.strategies import trainable_parameters
from segcore.data.transforms import AUGMENTATIONS
from segcore.models import SHORTLIST, describe_backbone
from segcore.losses import CLASS_WEIGHTINGS
from segcore.config import PRESETS
from segcore.naming import default_group_name
from segcore.estimate import estimate_plan, estimate_seconds
from segcore.planning import (SWEEP_SIZES, comparison_plan, plan_train_images, queue_all_strategies,
                              smallest_training_share, training_ignore_index)

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
def parameter_counts(backbone: str, strategy: str, num_classes: int) -> tuple[int, int]:
    return trainable_parameters(TrainConfig(backbone=backbone, strategy=strategy), num_classes)


st.subheader("1 · Backbone (encoder)")
extra = st.text_input("Search any timm model (optional)", placeholder="e.g. mobilenetv3_large_100",
                      help="Any timm model that supports features_only works; the list below is CPU-friendly.")
names = tuple(dict.fromkeys([*SHORTLIST, *([extra.strip()] if extra.strip() else [])]))
table = backbone_table(names)
usable = [row for row in table if row["usable"]]
for row in table:
    if not row["usable"]:
        st.warning(f"{md(row['name'])} cannot be used here: {md(row['problem'][:200])}")
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
strategy = st.radio(describe("strategy")["label"], list(STRATEGIES), key="strategy", horizontal=True,
                    index=list(STRATEGIES).index(DEFAULTS.strategy), format_func=lambda s: STRATEGIES[s].title)
info = STRATEGIES[strategy]
st.info(info.explanation.replace("\n", " ") + f"  \n**Pays off when:** {info.lesson}.")
START_COLOURS = {"random": "#e2e8f0", "ImageNet": "#bfdbfe", "source run": "#fde68a", "random (new classes)": "#e2e8f0"}
boxes = " <span style='font-size:1.4em'>→</span> ".join(
    f"<span style='display:inline-block;padding:8px 14px;border-radius:10px;background:{START_COLOURS[start]};"
    f"border:2px {'dashed #64748b' if learns == 'frozen' else 'solid #16a34a'};margin:4px'><b>{part}</b><br>"
    f"<small>starts: {start}<br>{'❄️ frozen' if learns == 'frozen' else '🔥 ' + learns}</small></span>"
    for part, start, learns in info.part_roles())  # our own fixed words only: no user text in this HTML
st.markdown(f"<div style='margin:6px 0 12px 0'>image → {boxes} → classes per pixel</div>", unsafe_allow_html=True)
if info.pretrained_encoder and weights == "unavailable":
    st.error(f"No ImageNet weights for {md(backbone)} here: choose tf_efficientnet_lite0 (bundled) or train from scratch.")
elif info.pretrained_encoder and weights.startswith("downloadable"):
    st.warning(f"{md(backbone)}'s weights must be downloaded on first use; offline, pick tf_efficientnet_lite0 (bundled).")
st.latex(r"\min_w \; \frac{1}{N}\sum_{i=1}^{N} L\big(y_i, f_w(x_i)\big) \;+\; \lambda\, R(w)")
trainable, total = parameter_counts(backbone, strategy, data.num_classes)
st.caption(f"Trainable parameters with this choice: **{trainable:,}** of {total:,} "
           f"({trainable / total:.0%}) for {data.num_classes} classes.")

st.subheader("3 · Settings")


def apply_preset() -> None:
    """Set the preset's values into the widgets (before they are drawn, hence a callback)."""
    preset = PRESETS[st.session_state["preset"] or "standard"]
    values = {**{k: getattr(DEFAULTS, k) for k in ("height", "epochs", "min_steps")}, **preset.settings}
    st.session_state.update(size=values["height"], epochs=values["epochs"], min_steps=values["min_steps"])


st.segmented_control("Preset", list(PRESETS), default="standard", key="preset", on_change=apply_preset,
                     format_func=lambda p: PRESETS[p].title,
                     help="; ".join(f"{p.title}: {p.purpose}" for p in PRESETS.values()))
settings: dict = {"data": data.source, "backbone": backbone, "strategy": strategy,
                  "ignore_index": training_ignore_index(data)}
c1, c2, c3, c4, c5 = st.columns([1.3, 1, 1, 1, 1])
size = c1.select_slider("Image size", [64, 96, 128, 160, 192, 224, 256, 320], value=DEFAULTS.height, key="size",
                        help=describe("height")["help"] + " and width (square)")
settings["height"] = settings["width"] = size
settings["epochs"] = int(setting_input(c2, "epochs", "epochs", max_value=200))
settings["min_steps"] = int(setting_input(c3, "min_steps", "min_steps", max_value=5000, step=50))
settings["batch_size"] = int(setting_input(c4, "batch_size", "batch_size", max_value=128))
settings["lr"] = float(setting_input(c5, "lr", "lr", min_value=1e-5, max_value=1.0, format="%.5f"))
c1, c2, c3, c4 = st.columns(4)
settings["regularizer"] = c1.selectbox(describe("regularizer")["label"], list(REGULARIZERS), key="regularizer",
                                       format_func=lambda r: r.upper())
settings["weight_decay"] = float(setting_input(c2, "weight_decay", "lambda", format="%.5f"))
total_train = len(data.pairs("train"))
if total_train > 1:
    low = smallest_training_share(total_train)
    train_pct = c3.slider("Training images used (%)", low, 100, 100, 5, key="train_pct",
                          help="Fewer images show where transfer pays off (the data-efficiency experiment). "
                               f"This dataset has {total_train} training images, so at least {low} % keeps one.")
else:
    train_pct = 100
    c3.caption("Training images used: the only one there is.")
settings["train_size"] = None if train_pct == 100 else train_pct / 100
settings["seed"] = int(setting_input(c4, "seed", "seed", max_value=10_000))
st.caption(REGULARIZERS[settings["regularizer"]])
c1, c2 = st.columns(2)
settings["augment"] = c1.segmented_control(
    describe("augment")["label"], list(AUGMENTATIONS), default="flip", key="augment",
    help="; ".join(f"{k}: {v}" for k, v in AUGMENTATIONS.items())) or "flip"
settings["class_weights"] = c2.segmented_control(
    describe("class_weights")["label"], list(CLASS_WEIGHTINGS), default=DEFAULTS.class_weights, key="class_weights",
    help=describe("class_weights")["help"]) or DEFAULTS.class_weights
if info.caches_features and settings["augment"] == "full":
    st.caption("With *full* augmentation every input differs, so feature transfer cannot cache its features: "
               "epochs get slower.")

source_run = None
if info.tunes_encoder_rate or info.frozen_warmup:
    c1, c2 = st.columns(2)
    if info.tunes_encoder_rate:
        settings["encoder_lr_factor"] = float(setting_input(c1, "encoder_lr_factor", "enc_factor", max_value=1.0))
    if info.frozen_warmup:
        settings["freeze_epochs"] = int(setting_input(c2, "freeze_epochs", "freeze_epochs", max_value=50))
if info.transfers_encoder:
    settings["train_bn"] = st.toggle(describe("train_bn")["label"], value=DEFAULTS.train_bn, key="train_bn",
                                     help=describe("train_bn")["help"])
if info.needs_source_run:
    sources = [r for r in finished_runs() if r.config.get("backbone") == backbone]
    if sources:
        picked = st.selectbox(describe("source_run")["label"] + " to carry over", sources, format_func=run_label,
                              key="source_run")
        source_run = settings["source_run"] = str(picked.path)
    else:
        st.warning("No finished run with this backbone to carry over yet. *Train all strategies* first trains "
                   "one on the built-in source task (ellipses, rings, crosses).")

try:
    config = TrainConfig(**settings).validate()
    train_images = len(data.train_indices(config.train_size, config.seed))
except (SegcoreError, TypeError) as exc:
    st.error(error_text(exc))
    st.stop()
planned_epochs = config.planned_epochs(train_images)
if planned_epochs > config.epochs:
    st.caption(f"{train_images} training images make only {config.steps_per_epoch(train_images)} optimiser steps "
               f"per epoch: training runs **{planned_epochs} epochs**, so that it gets at least {config.min_steps} steps.")

st.subheader("4 · Train")
history = finished_runs()
group_name = "cmp"
all_plan = comparison_plan(config, group_name, source_run)
sweep_plan = comparison_plan(config, group_name, source_run, SWEEP_SIZES)
one_s, basis = estimate_seconds(config, train_images, history)
all_s = estimate_plan(list(zip(all_plan, plan_train_images(all_plan, data))), history)
sweep_s = estimate_plan(list(zip(sweep_plan, plan_train_images(sweep_plan, data))), history)
ahead = [r for r in list_runs(runs_dir()) if r.state in ("queued", "running")]
wait = f" — after {len(ahead)} run(s) already in the queue" if ahead else ""
st.caption(f"⏱️ Estimated on this machine: ▶ Train about **{duration(one_s)}** · ▶▶ Train all "
           f"({len(all_plan)} runs) about **{duration(all_s)}** · 📉 sweep ({len(sweep_plan)} runs) about "
           f"**{duration(sweep_s)}**{wait}. Speed: {basis}.")
b1, b2, b3 = st.columns(3)
try:
    if b1.button("▶ Train", type="primary", width="stretch", disabled=info.needs_source_run and not source_run):
        run = queue().submit(config, group=default_group_name(config.data), owner=session_owner(),
                             train_images=train_images)
        st.session_state["watch_group"] = run.config.get("group")
        st.success(f"Queued **{md(run.run_id)}**.")
        st.page_link("views/training.py", label="Watch it train →", icon="📈")
    if b2.button("▶▶ Train all strategies", width="stretch",
                 help="One run per strategy with identical settings (plus the source run structure transfer needs)."):
        runs = queue_all_strategies(queue(), config, source_run=source_run, owner=session_owner(), data=data)
        st.session_state["watch_group"] = runs[-1].config.get("group")
        st.success("Queued " + ", ".join(f"**{md(r.run_id)}**" for r in runs) + ".")
        st.page_link("views/training.py", label="Watch them train →", icon="📈")
    if b3.button("📉 Data-efficiency sweep", width="stretch",
                 help=f"Every strategy × {', '.join(f'{s:.0%}' for s in SWEEP_SIZES)} of the training images."):
        runs = queue_all_strategies(queue(), config, source_run=source_run, train_sizes=SWEEP_SIZES,
                                    owner=session_owner(), data=data)
        st.session_state["watch_group"] = runs[-1].config.get("group")
        st.success(f"Queued {len(runs)} runs.")
        st.page_link("views/training.py", label="Watch them train →", icon="📈")
except SegcoreError as exc:
    st.error(error_text(exc))

# --- teaching: suggested strategy (issue 15) — one call; the block lives in views/_teaching.py ---
from views._teaching import suggested_strategy_box  # noqa: E402

suggested_strategy_box(data, config, train_images, source_run)
# --- end teaching ---
