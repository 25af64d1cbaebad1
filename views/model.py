"""Model & strategy: pick a backbone and a transfer strategy, set the knobs, queue training."""

import time
from dataclasses import fields
from pathlib import Path

import streamlit as st

from segcore import REGULARIZERS, STRATEGIES, SegcoreError, TrainConfig, dataset_report
from segcore.base.paths import default_lessons_dir
from segcore.data.transforms import AUGMENTATIONS
from segcore.jobs.estimate import estimate_plan, estimate_seconds, forecast, queue_wait_s
from segcore.jobs.planning import (
    SWEEP_SIZES,
    comparison_order,
    comparison_plan,
    full_training_images,
    plan_train_images,
    queue_all_strategies,
    smallest_training_share,
    sweep_step_budget,
    training_ignore_index,
)
from segcore.models import SHORTLIST, describe_backbone
from segcore.models.losses import resolved_class_weighting
from segcore.runs.naming import default_group_name
from segcore.runs.run import Run
from segcore.settings.config import PRESETS, describe
from segcore.teaching.lesson import Lesson
from segcore.teaching.lesson_files import earlier_lesson_runs, lesson_file_bytes, publish_lesson, queue_lesson
from segcore.training.preparation import trainable_parameters
from views._shared import (
    class_runs,
    current_dataset,
    duration,
    error_text,
    escape_md,
    finished_runs,
    initial,
    queue,
    run_label,
    runs_dir,
    session_owner,
    setting_choice,
    setting_input,
    teacher_markdown,
    workspace,
)
from views._teaching import suggested_strategy_box

DEFAULTS = TrainConfig()
SIZES = [64, 96, 128, 160, 192, 224, 256, 320]

WIDGET_SETTINGS = {
    "height": "size",
    "epochs": "epochs",
    "min_steps": "min_steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "regularizer": "regularizer",
    "weight_decay": "lambda",
    "seed": "seed",
    "class_weights": "class_weights",
    "encoder_lr_factor": "enc_factor",
    "freeze_epochs": "freeze_epochs",
    "train_bn": "train_bn",
    "backbone": "backbone",
    "resize": "resize",
    "precision": "precision",
    "unlabelled": "unlabelled",
    "confidence": "confidence",
    "unlabelled_ratio": "unlabelled_ratio",
    "unlabelled_weight": "unlabelled_weight",
}
UNLABELLED_CHOICES = {
    "off": "off",
    "dataset": "this dataset's unlabelled images",
    "rest": "the training images left out (their masks unused)",
}


def apply_lesson(lesson) -> None:
    """Put a lesson's settings into this page's widgets (once, when it has just been opened)."""
    config = lesson.to_config()
    values = {key: getattr(config, name) for name, key in WIDGET_SETTINGS.items()}
    values["unlabelled"] = config.unlabelled or "off"
    values.update(
        strategy=lesson.ordered_strategies()[0],
        augment=config.resolved_augment(),
        preset=lesson.preset if lesson.preset in PRESETS else None,
        train_pct=100 if config.train_size is None else round(config.train_size * 100),
    )
    if values["size"] not in SIZES:
        values.pop("size")
    st.session_state.update(values)


# what the student chose on this page, kept across pages (Streamlit forgets a widget's value when its page is left)
# and reloads (the workspace on disk); the source run is picked again, since a run folder is no setting
KEPT = [key for key in WIDGET_SETTINGS.values()] + ["strategy", "preset", "train_pct", "augment", "sweep_seeds"]
CHOICES = {
    "strategy": list(STRATEGIES),
    "preset": list(PRESETS),
    "size": SIZES,
    "regularizer": list(REGULARIZERS),
    "augment": list(AUGMENTATIONS),
    "unlabelled": list(UNLABELLED_CHOICES),
    # the settings drawn by setting_choice: their options are their declarations'
    **{name: describe(name)["choices"]() for name in ("class_weights", "train_bn", "resize", "precision")},
}


def restore_settings() -> None:
    """Put back what the student chose here before (this session, else the workspace on disk): values of the wrong
    kind or not among a widget's options (a damaged record) are left out, the widget then starts from its default."""
    kept = st.session_state.get("kept_model_settings")
    if kept is None:
        kept = workspace().model_settings or {}
    for key, value in kept.items():
        if key not in KEPT or key in st.session_state:
            continue
        if key in CHOICES and value not in CHOICES[key] and not (key == "preset" and value is None):
            continue
        if key not in CHOICES and key != "backbone" and not isinstance(value, (int, float)):
            continue
        st.session_state[key] = value


def keep_settings() -> None:
    """Remember the current choices, in the session and (when they changed) in the workspace on disk."""
    values = {key: st.session_state[key] for key in KEPT if key in st.session_state}
    known = st.session_state.get("kept_model_settings")
    st.session_state["kept_model_settings"] = values
    if known is not None and values != known:  # a change the student made (a first look writes nothing)
        record = workspace()
        record.model_settings = values
        record.save(runs_dir())


def lesson_box(data):
    """The open lesson (if any): its instructions, Start and Close. Returns the lesson."""
    lesson = st.session_state.get("lesson")
    if lesson is not None:
        if st.session_state.pop("lesson_pending", False):
            apply_lesson(lesson)
        with st.container(border=True):
            st.markdown(f"**📚 Lesson: {escape_md(lesson.title)}**")
            st.markdown(teacher_markdown(lesson.instructions))
            b1, b2 = st.columns(2)
            b1.button(
                "▶ Start the lesson",
                type="primary",
                key="start_lesson",
                help="Queues exactly the runs the teacher planned, with the teacher's settings.",
                on_click=start_lesson_click,
                args=(False,),
            )
            # kept (not popped) while the lesson is open: a rerun from elsewhere (a timer, a sidebar click) must not
            # wipe the answer to the student's click before they read it
            outcome = st.session_state.get("lesson_result")
            if outcome and outcome[0] == "ask":
                st.warning(
                    f"You started this lesson before: {outcome[1]} of its runs are queued, training or done. "
                    "Starting it again queues all its runs once more."
                )
                st.button("Start it again", key="start_lesson_again", on_click=start_lesson_click, args=(True,))
            elif outcome and outcome[0] == "ok":
                st.success(f"Queued {outcome[1]} runs.")
                st.page_link("views/training.py", label="Watch them train →", icon="📈")
            elif outcome:
                st.error(outcome[1])
            if b2.button("Close the lesson", key="close_lesson"):
                del st.session_state["lesson"]
                st.session_state.pop("lesson_result", None)
                st.rerun()

    return lesson


def start_lesson_click(again: bool) -> None:
    """Start the lesson (a callback: the click queues even if the student leaves the page at once); when this student
    started it before, ask first."""
    lesson, (data, _) = st.session_state.get("lesson"), current_dataset()
    if lesson is None:
        return
    if not again and (earlier := earlier_lesson_runs(lesson, session_owner(), class_runs())):
        st.session_state["lesson_result"] = ("ask", len(earlier))
        return
    try:
        lesson_data = data if data is not None and data.source == lesson.data_source else None
        lesson_runs = queue_lesson(queue(), lesson, owner=session_owner(), data=lesson_data)
    except SegcoreError as exc:
        st.session_state["lesson_result"] = ("error", error_text(exc))
        return
    st.session_state["watch_group"] = lesson_runs[-1].config.get("group")
    st.session_state["lesson_result"] = ("ok", len(lesson_runs))


@st.cache_data(show_spinner="Looking up backbones…")
def backbone_table(names: tuple[str, ...]) -> list[dict]:
    return [describe_backbone(n).to_dict() for n in names]


@st.cache_data(show_spinner=False)
def parameter_counts(backbone: str, strategy: str, num_classes: int) -> tuple[int, int]:
    return trainable_parameters(TrainConfig(backbone=backbone, strategy=strategy), num_classes)


def backbone_section() -> tuple[str, str]:
    """The encoder: (backbone name, where its weights come from)."""
    st.subheader("1 · Backbone (encoder)")
    extra = st.text_input(
        "Search any timm model (optional)",
        placeholder="e.g. mobilenetv3_large_100",
        help="Any timm model that supports features_only works; the list below is CPU-friendly.",
    )
    names = tuple(dict.fromkeys([*SHORTLIST, *([extra.strip()] if extra.strip() else [])]))
    table = backbone_table(names)
    usable = [row for row in table if row["usable"]]
    for row in table:
        if not row["usable"]:
            st.warning(f"{escape_md(row['name'])} cannot be used here: {escape_md(row['problem'][:200])}")
    backbone = st.selectbox(
        "Backbone",
        [row["name"] for row in usable],
        **initial("backbone", "index", 0),
        key="backbone",
        format_func=lambda n: next(
            f"{r['name']} · {r['encoder_params'] / 1e6:.1f} M params · weights: {r['weights']}"
            for r in usable
            if r["name"] == n
        ),
    )
    with st.expander("All backbones", expanded=False):
        st.dataframe(
            [
                {
                    "backbone": r["name"],
                    "parameters (M)": round(r["encoder_params"] / 1e6, 2),
                    "feature channels": str(r["feature_channels"]),
                    "pretrained weights": r["weights"],
                }
                for r in usable
            ],
            hide_index=True,
        )
    weights = next(r["weights"] for r in usable if r["name"] == backbone)

    return backbone, weights


def strategy_section(data, backbone: str, weights: str):
    """The strategy, drawn as which part starts from where and learns. Returns (strategy, its record)."""
    st.subheader("2 · Strategy")
    strategy = st.radio(
        describe("strategy")["label"],
        list(STRATEGIES),
        key="strategy",
        horizontal=True,
        **initial("strategy", "index", list(STRATEGIES).index(DEFAULTS.strategy)),
        format_func=lambda s: STRATEGIES[s].title,
    )
    info = STRATEGIES[strategy]
    st.info(info.explanation.replace("\n", " ") + f"  \n**Pays off when:** {info.lesson}.")
    START_COLOURS = {
        "random": "#e2e8f0",
        "ImageNet": "#bfdbfe",
        "source run": "#fde68a",
        "random (new classes)": "#e2e8f0",
    }
    boxes = " <span style='font-size:1.4em'>→</span> ".join(
        f"<span style='display:inline-block;padding:8px 14px;border-radius:10px;background:{START_COLOURS[start]};"
        f"border:2px {'dashed #64748b' if learns == 'frozen' else 'solid #16a34a'};margin:4px'><b>{part}</b><br>"
        f"<small>starts: {start}<br>{'❄️ frozen' if learns == 'frozen' else '🔥 ' + learns}</small></span>"
        for part, start, learns in info.part_roles()
    )  # our own fixed words only: no user text in this HTML
    st.markdown(f"<div style='margin:6px 0 12px 0'>image → {boxes} → classes per pixel</div>", unsafe_allow_html=True)
    if info.pretrained_encoder and weights == "unavailable":
        st.error(
            f"No ImageNet weights for {escape_md(backbone)} here: choose tf_efficientnet_lite0 (bundled) or train from scratch."
        )
    elif info.pretrained_encoder and weights.startswith("downloadable"):
        st.warning(
            f"{escape_md(backbone)}'s weights must be downloaded on first use; offline, pick tf_efficientnet_lite0 (bundled)."
        )
    st.latex(r"\min_w \; \frac{1}{N}\sum_{i=1}^{N} L\big(y_i, f_w(x_i)\big) \;+\; \lambda\, R(w)")
    trainable, total = parameter_counts(backbone, strategy, data.num_classes)
    st.caption(
        f"Trainable parameters with this choice: **{trainable:,}** of {total:,} "
        f"({trainable / total:.0%}) for {data.num_classes} classes."
    )

    return strategy, info


# every setting some preset changes: switching presets sets each of them, to the preset's value or the default
PRESET_SETTINGS = sorted({name for p in PRESETS.values() for name in p.settings} - {"width"})


def chosen_preset():
    return PRESETS[st.session_state.get("preset") or "standard"]


def apply_preset() -> None:
    """Set the preset's values into the widgets (before they are drawn, hence a callback)."""
    preset = chosen_preset()
    for name in PRESET_SETTINGS:
        if name in WIDGET_SETTINGS:
            st.session_state[WIDGET_SETTINGS[name]] = preset.settings.get(name, getattr(DEFAULTS, name))


def _as_declared(name: str, value):
    """A number widget's value as its setting's type (a float field typed as 3 arrives as an int, and back)."""
    kind = str(next(f.type for f in fields(TrainConfig) if f.name == name))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value) if kind.startswith("int") else float(value) if kind.startswith("float") else value
    return value


def chosen_config(data) -> tuple[TrainConfig, int, str | None]:
    """The settings as the widgets hold them now (their session state): what the page shows and what a click on
    Train queues, so a callback can queue before the page draws anything. ConfigError when one is not allowed.
    Returns (the validated config, its training images, the source run folder or None)."""
    state, lesson = st.session_state, st.session_state.get("lesson")
    strategy = state.get("strategy", DEFAULTS.strategy)
    info = STRATEGIES[strategy]
    settings: dict = {
        "data": data.source,
        "backbone": state.get("backbone", DEFAULTS.backbone),
        "strategy": strategy,
        "ignore_index": training_ignore_index(data),
    }
    # what the preset or the lesson fixes that has no widget here (decoder widths, warm-up, …)
    settings.update({k: v for k, v in chosen_preset().settings.items() if k not in WIDGET_SETTINGS and k != "width"})
    if lesson is not None:
        settings.update({k: v for k, v in lesson.settings.items() if k not in WIDGET_SETTINGS and k != "width"})
    settings["height"] = settings["width"] = state.get("size", DEFAULTS.height)
    for name, key in WIDGET_SETTINGS.items():
        if name not in ("height", "backbone", "encoder_lr_factor", "freeze_epochs", "train_bn") and key in state:
            settings[name] = _as_declared(name, state[key])
    settings["unlabelled"] = None if state.get("unlabelled") in (None, "off") else state["unlabelled"]
    settings["resize"] = state.get("resize") or DEFAULTS.resize
    settings["precision"] = state.get("precision") or DEFAULTS.precision
    if not settings.get("class_weights"):
        settings["class_weights"] = DEFAULTS.class_weights
    settings["augment"] = state.get("augment") or "flip"
    percent = state.get("train_pct", 100) if len(data.pairs("train")) > 1 else 100
    settings["train_size"] = None if percent == 100 else percent / 100
    if info.tunes_encoder_rate and "enc_factor" in state:
        settings["encoder_lr_factor"] = float(state["enc_factor"])
    if info.frozen_warmup and "freeze_epochs" in state:
        settings["freeze_epochs"] = int(state["freeze_epochs"])
    if info.transfers_encoder:
        settings["train_bn"] = state.get("train_bn") or DEFAULTS.train_bn
    source = state.get("source_run") if info.needs_source_run else None
    source_run = str(source.path) if isinstance(source, Run) else None
    if source_run:
        settings["source_run"] = source_run
    config = TrainConfig(**settings).validate()
    return config, len(data.train_indices(config.train_size, config.seed)), source_run


def settings_section(data, backbone: str, strategy: str, info, lesson):
    """Every setting, from the preset, the lesson and the widgets; the validated config (or the page stops).
    Returns (config, training images, source run folder or None)."""
    st.subheader("3 · Settings")

    st.segmented_control(
        "Preset",
        list(PRESETS),
        **initial("preset", "default", "standard"),
        key="preset",
        on_change=apply_preset,
        format_func=lambda p: PRESETS[p].title,
        help="; ".join(f"{p.title}: {p.purpose}" for p in PRESETS.values()),
    )
    rare = dataset_report(data).rare_classes()
    if rare:
        listed = ", ".join(
            f"{escape_md(name)} ({share:.1%})" for name, share in sorted(rare.items(), key=lambda kv: kv[1])
        )
        unweighted = (
            resolved_class_weighting(st.session_state.get("class_weights") or DEFAULTS.class_weights, data.num_classes)
            == "none"
        )
        st.info(
            f"Rare classes in this dataset: {listed} of the pixels. They are learned last: the default class weights "
            "(auto: `sqrt` for three classes or more) weigh them up; if their IoU stays near 0 on Compare, train more "
            "epochs. "
            + (
                "**With plain cross-entropy (none) a short run may never predict them** (measured on CamVid frames: "
                "pedestrians and bicyclists 0.00 IoU, against 0.28 and 0.30 with the default)."
                if unweighted
                else "(measured on CamVid frames: pedestrians 0.28 and bicyclists 0.30 IoU with the default, 0.00 without "
                "weights.)"
            ),
            icon="🔎",
        )
    c1, c2, c3, c4, c5 = st.columns([1.3, 1, 1, 1, 1])
    c1.select_slider(
        "Image size",
        SIZES,
        **initial("size", "value", DEFAULTS.height),
        key="size",
        help=describe("height")["help"] + " and width (square)",
    )
    setting_input(c2, "epochs", "epochs", max_value=200)
    setting_input(c3, "min_steps", "min_steps", max_value=5000, step=50)
    setting_input(c4, "batch_size", "batch_size", max_value=128)
    setting_input(c5, "lr", "lr", min_value=1e-5, max_value=1.0, format="%.5f")
    c1, c2, c3, c4 = st.columns(4)
    regularizer = c1.selectbox(
        describe("regularizer")["label"], list(REGULARIZERS), key="regularizer", format_func=lambda r: r.upper()
    )
    setting_input(c2, "weight_decay", "lambda", format="%.5f")
    total_train = len(data.pairs("train"))
    if total_train > 1:
        low = smallest_training_share(total_train)
        if st.session_state.get("train_pct", 100) < low:
            st.session_state["train_pct"] = low
        c3.slider(
            "Training images used (%)",
            low,
            100,
            step=5,
            **initial("train_pct", "value", 100),
            key="train_pct",
            help="Fewer images show where transfer pays off (the data-efficiency experiment). "
            f"This dataset has {total_train} training images, so at least {low} % keeps one.",
        )
    else:
        c3.caption("Training images used: the only one there is.")
    setting_input(c4, "seed", "seed", max_value=10_000)
    st.caption(REGULARIZERS[regularizer])
    c1, c2, c3 = st.columns(3)
    setting_choice(c3, "resize", {"squash": "squash to the size", "crop": "keep the aspect"})
    augment = (
        c1.segmented_control(
            describe("augment")["label"],
            list(AUGMENTATIONS),
            **initial("augment", "default", "flip"),
            key="augment",
            help="; ".join(f"{k}: {v}" for k, v in AUGMENTATIONS.items()),
        )
        or "flip"
    )
    setting_choice(c2, "class_weights")
    setting_choice(st, "precision", {"auto": "auto", "fp32": "fp32", "bf16": "bf16: less memory"})
    if info.caches_features and augment == "full":
        st.caption(
            "With *full* augmentation every input differs, so feature transfer cannot cache its features: "
            "epochs get slower."
        )

    if info.tunes_encoder_rate or info.frozen_warmup:
        c1, c2 = st.columns(2)
        if info.tunes_encoder_rate:
            setting_input(c1, "encoder_lr_factor", "enc_factor", max_value=1.0)
        if info.frozen_warmup:
            setting_input(c2, "freeze_epochs", "freeze_epochs", max_value=50)
    if info.transfers_encoder:
        setting_choice(st, "train_bn", {"auto": "auto", "on": "adapt", "off": "keep"})
    semi_supervised_section(data)
    if info.needs_source_run:
        lesson = st.session_state.get("lesson")
        lesson_source = [Run(Path(lesson.source_run))] if lesson and lesson.source_run else []
        sources = [r for r in lesson_source + finished_runs(include_class=True) if r.config.get("backbone") == backbone]
        if sources:
            st.selectbox(
                describe("source_run")["label"] + " to carry over", sources, format_func=run_label, key="source_run"
            )
        else:
            st.warning(
                "No finished run with this backbone to carry over yet. *Train all strategies* first trains "
                "one on the built-in source task (ellipses, rings, crosses)."
            )

    try:
        config, train_images, source_run = chosen_config(data)
    except (SegcoreError, TypeError) as exc:
        st.error(error_text(exc))
        st.stop()
    planned_epochs = config.planned_epochs(train_images)
    if planned_epochs > config.epochs:
        per_epoch = config.steps_per_epoch(train_images)
        st.caption(
            f"{train_images} training images make only {per_epoch} optimiser step{'s' if per_epoch > 1 else ''} per "
            f"epoch: training runs **{planned_epochs} epochs**, so that it gets at least {config.min_steps} steps."
        )

    return config, train_images, source_run


def semi_supervised_section(data) -> None:
    """Semi-supervised training: which unlabelled images, offered only where there are some."""
    offered = ["off"]
    if data.unlabelled:
        offered.append("dataset")
    if st.session_state.get("train_pct", 100) < 100:
        offered.append("rest")
    if st.session_state.get("unlabelled") not in offered:
        st.session_state["unlabelled"] = "off"
    if offered == ["off"]:
        st.caption(
            "Semi-supervised training (learning from images without masks too) needs unlabelled images: this dataset "
            "has none, and all its training images are labelled and used. Use fewer training images above to try it "
            "with the rest as unlabelled."
        )
        return
    choice = (
        st.segmented_control(
            describe("unlabelled")["label"],
            offered,
            key="unlabelled",
            format_func=UNLABELLED_CHOICES.get,
            help="Semi-supervised training: the network's confident predictions on unlabelled images become the "
            "targets for a strongly changed copy of them (colour, blur, a pasted patch). "
            + (f"This dataset has {len(data.unlabelled)} unlabelled images." if data.unlabelled else ""),
        )
        or "off"
    )
    if choice != "off":
        c1, c2, c3 = st.columns(3)
        setting_input(c1, "confidence", "confidence", step=0.01, format="%.2f")
        setting_input(c2, "unlabelled_ratio", "unlabelled_ratio")
        setting_input(c3, "unlabelled_weight", "unlabelled_weight", step=0.5)
        st.caption(
            f"Each step also learns from {int(st.session_state.get('unlabelled_ratio', 1))} unlabelled image(s) per "
            "labelled one: about that much more compute per step."
        )


def train_section(data, config, train_images: int, source_run, info) -> None:
    """Estimates and the three ways to queue: one run, every strategy, the data-efficiency sweep."""
    st.subheader("4 · Train")
    group_name = "cmp"
    all_plan = comparison_plan(config, group_name, source_run)
    full_images = full_training_images(config, data)
    c1, c2 = st.columns([1, 3])
    sweep_seeds = int(
        c1.number_input(
            "Seeds per sweep point",
            min_value=1,
            max_value=5,
            key="sweep_seeds",
            help="Train each point of the data-efficiency sweep with this many seeds (seed, seed + 1, …): Compare then "
            "draws each point's mean and spread. Multiplies the sweep's time.",
        )
    )
    c2.caption(
        f"📉 The sweep trains every point for the same **{sweep_step_budget(config, full_images):,} optimiser "
        f"steps** (those of a run on all {full_images:,} training images), so its points differ in the data alone."
    )
    sweep_plan = comparison_plan(
        config, group_name, source_run, SWEEP_SIZES, seeds=sweep_seeds, full_train_images=full_images
    )
    everyone = class_runs()
    history = [r for r in everyone if r.state == "done"]  # the server's speed, from anyone's runs
    one_s, basis = estimate_seconds(config, train_images, history)
    all_s = estimate_plan(list(zip(all_plan, plan_train_images(all_plan, data))), history)
    sweep_s = estimate_plan(list(zip(sweep_plan, plan_train_images(sweep_plan, data))), history)
    running = [r for r in everyone if r.state == "running"]
    waiting = queue().queued(everyone)
    wait_s = queue_wait_s(forecast(waiting, running, history, queue().max_running), queue().max_running)
    ahead = (
        f" — {len(running) + len(waiting)} run(s) ahead in the queue, about {duration(wait_s)} of work"
        if (running or waiting)
        else ""
    )
    done_by = time.strftime("%H:%M", time.localtime(time.time() + wait_s + all_s))
    st.caption(
        f"⏱️ On this server now: ▶ Train about **{duration(one_s)}** · ▶▶ Train all "
        f"({len(all_plan)} runs) about **{duration(all_s)}**, done by about **{done_by}** · 📉 sweep "
        f"({len(sweep_plan)} runs) about **{duration(sweep_s)}**{ahead}. Speed: {basis}."
    )
    b1, b2, b3 = st.columns(3)
    b1.button(
        "▶ Train",
        type="primary",
        width="stretch",
        disabled=info.needs_source_run and not source_run,
        on_click=queue_click,
        args=("one",),
        key="train_one",
    )
    b2.button(
        "▶▶ Train all strategies",
        width="stretch",
        help="One run per strategy with identical settings (plus the source run structure transfer needs).",
        on_click=queue_click,
        args=("all",),
        key="train_all",
    )
    b3.button(
        "📉 Data-efficiency sweep",
        width="stretch",
        help=f"Every strategy × {', '.join(f'{s:.0%}' for s in SWEEP_SIZES)} of the training images.",
        on_click=queue_click,
        args=("sweep",),
        key="train_sweep",
    )
    # what was queued stays said until the next click (a timer's or a setting's rerun must not wipe it unread); an
    # error is said once, as the next rerun may follow the fix
    outcome = st.session_state.get("train_result")
    if outcome and outcome[0] != "ok":
        del st.session_state["train_result"]
    if outcome and outcome[0] == "ok":
        queued = outcome[1]
        st.success(
            f"Queued **{escape_md(queued[0])}**."
            if len(queued) == 1
            else f"Queued {len(queued)} runs: "
            + ", ".join(f"**{escape_md(r)}**" for r in queued[:6])
            + ("…" if len(queued) > 6 else "")
        )
        st.page_link("views/training.py", label="Watch them train →", icon="📈")
    elif outcome:
        st.error(outcome[1])


def queue_click(kind: str) -> None:
    """A Train button's callback: it runs before the page draws anything, so the click queues even when the student
    leaves the page at once; the page shows the outcome (or the Training page shows the runs)."""
    data, problem = current_dataset()
    try:
        if problem:
            raise SegcoreError("choose a usable dataset on the Data page first")
        config, train_images, source_run = chosen_config(data)
        if kind == "one":
            group = default_group_name(config.data)
            runs = [queue().submit(config, group=group, owner=session_owner(), train_images=train_images)]
        else:
            sweep = {"train_sizes": SWEEP_SIZES, "seeds": int(st.session_state.get("sweep_seeds", 1))}
            runs = queue_all_strategies(
                queue(),
                config,
                source_run=source_run,
                owner=session_owner(),
                data=data,
                **(sweep if kind == "sweep" else {}),
            )
    except SegcoreError as exc:
        st.session_state["train_result"] = ("error", error_text(exc))
        return
    st.session_state["watch_group"] = runs[-1].config.get("group")
    st.session_state["train_result"] = ("ok", [r.run_id for r in runs])


def lesson_maker(data, config) -> None:
    """Save these settings as a lesson file (and publish it for the class when signed in as teacher)."""
    with st.expander("📚 Save these settings as a lesson", expanded=False):
        st.caption(
            "A lesson is one file: the dataset (or a reference to a built-in one), these settings, the strategies "
            "to compare and your instructions. Students open it from the Data page and land here with "
            "everything set."
        )
        title = st.text_input("Title", max_chars=80, key="lesson_title")
        instructions = st.text_area("Instructions for students (Markdown)", key="lesson_instructions", height=120)
        c1, c2 = st.columns(2)
        lesson_strategies = c1.multiselect(
            "Strategies to compare",
            list(STRATEGIES),
            default=comparison_order(),
            format_func=lambda s: STRATEGIES[s].title,
            key="lesson_strategies",
        )
        sweep = c2.checkbox("A data-efficiency sweep (every training-set size)", key="lesson_sweep")
        embed = c2.checkbox(
            "Put the dataset inside the lesson file",
            value=not data.source.startswith("builtin:"),
            disabled=data.source.startswith("builtin:"),
            key="lesson_embed",
            help="Needed when students' machines do not have this dataset; built-in data needs nothing.",
        )
        if st.button("Make the lesson file", key="make_lesson", disabled=not title.strip() or not lesson_strategies):
            fixed = {name: getattr(config, name) for name in WIDGET_SETTINGS if name != "backbone"}
            fixed.update(
                backbone=config.backbone,
                width=config.width,
                augment=config.augment,
                ignore_index=config.ignore_index,
                **({} if sweep else {"train_size": config.train_size}),
            )
            new_lesson = Lesson(
                title=title.strip(),
                instructions=instructions,
                data_source=data.source,
                settings=fixed,
                strategies=lesson_strategies,
                sweep=sweep,
                preset=st.session_state.get("preset"),
            )
            try:
                name, content = lesson_file_bytes(new_lesson, dataset_folder=data.root if embed else None)
                st.download_button("Download the lesson file", content, name, "application/zip")
                if st.session_state.get("teacher"):  # only the teacher publishes to the class's list
                    publish_lesson(name, content, default_lessons_dir(runs_dir()))
                    st.success(f"Saved for the class as {escape_md(name)}: students find it on the Data page.")
                else:
                    st.caption("Open the Teacher page with the PIN to publish lessons to the whole class.")
            except SegcoreError as exc:
                st.error(error_text(exc))


st.title("🧠 Model & strategy")
data, problem = current_dataset()
if problem:
    st.error(f"Choose a usable dataset on the Data page first.\n\n{problem}")
    st.stop()
restore_settings()
lesson = lesson_box(data)
backbone, weights = backbone_section()
strategy, info = strategy_section(data, backbone, weights)
config, train_images, source_run = settings_section(data, backbone, strategy, info, lesson)
keep_settings()
train_section(data, config, train_images, source_run, info)
suggested_strategy_box(data, config, train_images, source_run)
lesson_maker(data, config)
