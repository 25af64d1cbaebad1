"""python -m segcore: a thin argparse layer over the engine."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import fields
from pathlib import Path

from .base.errors import SegcoreError
from .base.paths import default_runs_dir
from .settings.config import TrainConfig, cli_option, describe

DEFAULTS = TrainConfig()


def parse_size(text: str) -> tuple[int, int]:
    """'160' → (160, 160); '192x256' → (height 192, width 256). The range is TrainConfig's to check."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size: use 160 or HEIGHTxWIDTH like 192x256") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size: use 160 or HEIGHTxWIDTH like 192x256")
    return values[0], values[1]


def parse_number(text: str) -> float:
    """A float that also reads 'nan' and 'inf', so that validation (not argparse) explains what is allowed."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None


def parse_whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None


def parse_optional_whole(text: str) -> int | None:
    return None if text.strip().lower() in ("none", "") else parse_whole(text)


def parse_train_size(text: str) -> float:
    value = parse_number(text)
    return int(value) if math.isfinite(value) and value > 1 and value == int(value) else value


def _runs_dir(args) -> Path:
    return Path(args.runs_dir)


def resolve_run(reference: str, runs_dir: Path):
    """A run by id inside the runs folder, or by the path of its folder."""
    from .runs.run import Run, is_run_folder

    path = Path(reference)
    if path.is_dir() and is_run_folder(path):
        return Run.from_path(path)
    return Run.open(runs_dir, reference)


def cmd_datasets(args) -> int:
    from .data.builtin import BUILTINS
    from .data.dataset import load_dataset
    from .data.downloads import DOWNLOADS
    from .data.report import dataset_report

    if not args.source:
        print("Built-in (offline):")
        for name, spec in BUILTINS.items():
            print(f"  builtin:{name:<16} {spec.description}")
        print("Downloadable (needs internet):")
        for name, text in DOWNLOADS.items():
            print(f"  download:{name:<15} {text}")
        print("Or a folder / .zip in one of the layouts: images/+masks/, SegNet/CamVid, Pascal VOC.")
        return 0
    report = dataset_report(load_dataset(args.source, ignore_index=args.ignore_index))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_text())
    return 0


def cmd_backbones(args) -> int:
    from .models.backbones import describe_backbone, list_backbones, search_timm

    infos = [describe_backbone(n) for n in search_timm(args.search)] if args.search else list_backbones()
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=2))
        return 0
    print(f"{'backbone':<26} {'params':>8}  {'feature channels':<26} pretrained weights")
    for info in infos:
        if info.usable:
            print(f"{info.name:<26} {info.encoder_params / 1e6:7.1f}M  {str(info.feature_channels):<26} {info.weights}")
        else:
            print(f"{info.name:<26} {'—':>8}  not usable: {info.problem[:60]}")
    return 0


def add_config_options(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    """One option per TrainConfig setting, from its declaration (help, choices); --size stands for height × width.
    defaults=False leaves an option out of the parsed namespace unless it is given (what a preset may not override)."""
    for spec in fields(TrainConfig):
        flag = cli_option(spec)
        if flag is None or spec.metadata.get("via"):
            continue
        meta, kind = spec.metadata, str(spec.type)
        default = describe(spec.name)["default"] if defaults else argparse.SUPPRESS
        options: dict = {"dest": spec.name, "default": default, "help": meta["help"]}
        if kind.startswith("bool"):
            options["action"] = argparse.BooleanOptionalAction
        elif kind.startswith("tuple"):
            options.update(type=parse_whole, nargs="+")
        elif spec.name == "train_size":
            options["type"] = parse_train_size
        elif kind.startswith("int"):
            options["type"] = parse_optional_whole if meta.get("optional") else parse_whole
        elif kind.startswith("float"):
            options["type"] = parse_number
        if meta.get("choices") is not None:
            options["choices"] = meta["choices"]()
        parser.add_argument(flag, **options)
    parser.add_argument(
        "--size",
        type=parse_size,
        default=(DEFAULTS.height, DEFAULTS.width) if defaults else argparse.SUPPRESS,
        help="training image size: 160 (square) or HEIGHTxWIDTH, e.g. 192x256 (multiples of 32)",
    )
    if defaults:
        from .settings.config import PRESETS

        parser.add_argument(
            "--preset",
            choices=list(PRESETS),
            help="start from a preset; options given on the command line win. "
            + "; ".join(f"{name}: {p.purpose}" for name, p in PRESETS.items()).replace("%", "%%"),
        )


def given_settings(argv: list[str]) -> set[str]:
    """The settings named on this command line (a preset fills in only the others)."""
    probe = argparse.ArgumentParser(add_help=False)
    add_config_options(probe, defaults=False)
    given = set(vars(probe.parse_known_args(argv)[0]))
    return given | {"height", "width"} if "size" in given else given


def config_from_args(args) -> TrainConfig:
    from .settings.config import PRESETS

    values = {
        spec.name: getattr(args, spec.name)
        for spec in fields(TrainConfig)
        if cli_option(spec) and not spec.metadata.get("via")
    }
    values["height"], values["width"] = args.size
    if args.preset:
        given = given_settings(args.argv)
        values.update({k: v for k, v in PRESETS[args.preset].settings.items() if k not in given})
    values["decoder_channels"] = tuple(values["decoder_channels"])
    return TrainConfig(**values)


def cmd_train(args) -> int:
    from tqdm import tqdm

    from .training.distributed import Distributed, check_devices, needs_relaunch, run_under_torchrun
    from .training.lifecycle import train

    config = config_from_args(args)
    if config.source_run:
        config.source_run = str(resolve_run(config.source_run, _runs_dir(args)).path)
    config.validate()
    if needs_relaunch(config.gpus):  # N processes, one per GPU: torchrun starts this same command N times
        check_devices(config.gpus)
        return run_under_torchrun(config.gpus, ["segcore", *args.argv])
    if not Distributed.from_env().is_main:
        train(config, _runs_dir(args))  # rank 0 shows progress and writes the run
        return 0
    bar = tqdm(total=None, unit="step", dynamic_ncols=True, disable=args.quiet, file=sys.stderr)

    def show(record: dict) -> None:
        if record["kind"] == "preparing":  # decoding the images before the first step
            bar.set_description(record["what"])
            bar.total, bar.n = record["total"], record["done"]
            bar.refresh()
            if record["done"] == record["total"]:
                bar.set_description(None)
                bar.reset(total=None)
        elif record["kind"] == "step":
            bar.total = record["total_steps"]
            bar.set_postfix(epoch=record["epoch"], loss=f"{record['loss']:.3f}", img_s=f"{record['images_per_s']:.1f}")
            bar.update(1)
        else:
            bar.write(
                f"epoch {record['epoch']}/{record['epochs']}  loss {record['train_loss']:.4f}  "
                f"mIoU {record['miou']:.3f}  pixel acc {record['pixel_accuracy']:.3f}  "
                f"dice {record['mean_dice']:.3f}  {record['epoch_time_s']:.1f}s"
            )

    run = train(config, _runs_dir(args), listener=show)
    bar.close()
    summary = run.summary()
    print(
        f"run {run.run_id}: {run.state}"
        + (
            f", best mIoU {summary['miou']:.3f} at epoch {summary['best_epoch']}"
            if summary
            else f" ({run.status.get('reason', '')})"
        )
    )
    print(f"folder: {run.path}")
    return 0 if run.state == "done" else 1


def cmd_resume(args) -> int:
    from .training.lifecycle import train

    run = resolve_run(args.run, _runs_dir(args))
    if run.state in ("running", "queued"):
        print(f"error: run {run.run_id} is {run.state}; only a failed or cancelled run can be resumed", file=sys.stderr)
        return 2
    resumed = train(TrainConfig.from_dict(run.config), run.path.parent, run_id=run.run_id, resume=True)
    summary = resumed.summary()
    print(f"run {resumed.run_id}: {resumed.state}" + (f", best mIoU {summary['miou']:.3f}" if summary else ""))
    return 0 if resumed.state == "done" else 1


def cmd_eval(args) -> int:
    from .runs.run_data import RUN_OWN, load_run_dataset
    from .training.evaluate import evaluate_run
    from .training.predict import Predictor

    run = resolve_run(args.run, _runs_dir(args))
    data = load_run_dataset(
        run, args.split, source=args.data, ignore_index=RUN_OWN if args.ignore_index == -1 else args.ignore_index
    )
    result = evaluate_run(Predictor(run, device=args.device), data, args.split, native=args.native)
    print(f"{run.run_id} on {result['data']} [{result['split']}, {result['images']} images, {result['resolution']}]")
    print(
        f"  mIoU {result['miou']:.4f}   pixel accuracy {result['pixel_accuracy']:.4f}   mean Dice {result['mean_dice']:.4f}"
    )
    for name, iou in result["per_class_iou"].items():
        print(f"  {name:<20} IoU {'—' if iou is None else f'{iou:.4f}'}")
    print(f"  ({result['miou_note']})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"metrics written to {args.json}")
    return 0


def output_names(inputs: list[str]) -> list[str]:
    """One distinct output name per input: the file stem, with its extension and then a counter added where two
    inputs share a stem (x/p0.tif and y/p0.gif must not overwrite each other's results)."""
    stems = [Path(p).stem for p in inputs]
    names, used = [], set()
    for path, stem in zip(map(Path, inputs), stems):
        name = stem if stems.count(stem) == 1 else f"{stem}-{path.suffix.lstrip('.') or 'file'}"
        candidate, counter = name, 1
        while candidate in used:
            counter += 1
            candidate = f"{name}-{counter}"
        used.add(candidate)
        names.append(candidate)
    return names


def cmd_predict(args) -> int:
    from PIL import Image

    from .base.drawing import colorize
    from .data.files import read_image
    from .training.predict import Predictor

    predictor = Predictor(resolve_run(args.run, _runs_dir(args)), device=args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path, name in zip(map(Path, args.images), output_names(args.images)):
        image = read_image(path)
        class_map = predictor.predict(image)
        Image.fromarray(class_map).save(out / f"{name}_classes.png")
        Image.fromarray(colorize(class_map, predictor.colours)).save(out / f"{name}_colour.png")
        Image.fromarray(predictor.overlay(image, args.alpha, class_map)).save(out / f"{name}_overlay.png")
        print(f"{path} → {out / (name + '_overlay.png')}")
    return 0


def cmd_compare(args) -> int:
    from .compare.sheet import save_comparison
    from .runs.run_data import load_run_dataset

    runs = [resolve_run(r, _runs_dir(args)) for r in args.runs]
    data = load_run_dataset(runs[0], args.split, source=args.data)
    output = save_comparison(
        [r.path for r in runs], data, args.out, split=args.split, count=args.count, show_errors=args.errors
    )
    print(f"comparison written to {output}")
    return 0


def cmd_adapt(args) -> int:
    from .data.unlabelled import decode_unlabelled, unlabelled_paths
    from .runs.run_data import load_run_dataset
    from .training.adapt import adapt_run

    run = resolve_run(args.run, _runs_dir(args))
    size = (run.train_config.height, run.train_config.width)
    data = load_run_dataset(run, "val", source=args.data) if args.data else None
    paths = unlabelled_paths(data or load_run_dataset(run), args.unlabelled)
    images = decode_unlabelled(paths, size, run.train_config.fit)  # as training saw them: squashed, or windows
    adapted = adapt_run(run, images, _runs_dir(args), data=data, about=args.unlabelled)
    miou = adapted.summary().get("miou")
    scored = f", mIoU {miou:.4f} on {args.data}" if data is not None and isinstance(miou, float) else ""
    print(f"run {adapted.run_id}: BatchNorm re-estimated on {len(images)} images{scored}")
    print(f"folder: {adapted.path}")
    return 0


def cmd_export(args) -> int:
    from .training.export import export_run

    result = export_run(resolve_run(args.run, _runs_dir(args)), args.out, onnx=not args.no_onnx)
    for key, value in result.items():
        print(f"{key:<18} {value}")
    return 0


# -- lessons ------------------------------------------------------------------------------------------------------
def parse_setting(text: str) -> tuple[str, object]:
    """'lr=0.001' → ('lr', 0.001): the value read as JSON where it is JSON (numbers, true, null, [64, 32]), else text."""
    name, separator, value = text.partition("=")
    if not separator or not name.strip():
        raise argparse.ArgumentTypeError(f"'{text}' is not NAME=VALUE (e.g. lr=0.001)")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return name.strip().replace("-", "_"), parsed


def _lesson_data_reference(source: str) -> str:
    """builtin:/download: as given; a path made absolute, so the lesson does not depend on where it is opened from."""
    return source if source.partition(":")[0] in ("builtin", "download") else str(Path(source).expanduser().resolve())


def cmd_lesson_create(args) -> int:
    from .data.dataset import resolve_source
    from .jobs.planning import comparison_order
    from .settings.config import PRESETS
    from .teaching.lesson import Lesson
    from .teaching.lesson_files import save_lesson

    try:
        instructions = Path(args.instructions).read_text(encoding="utf-8") if args.instructions else ""
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: the instructions file {args.instructions} cannot be read ({exc})", file=sys.stderr)
        return 2
    if args.embed_data and args.data.startswith("builtin:"):
        print(
            f"error: {args.data} is built into every workbench: refer to it instead of embedding it "
            "(leave out --embed-data)",
            file=sys.stderr,
        )
        return 2
    settings = {**(PRESETS[args.preset].settings if args.preset else {}), **dict(args.set or [])}
    source = resolve_run(args.source_run, _runs_dir(args)).path if args.source_run else None
    lesson = Lesson(
        title=args.title,
        instructions=instructions,
        data_source=_lesson_data_reference(args.data),
        settings=settings,
        strategies=args.strategies or comparison_order(),
        sweep=args.sweep,
        preset=args.preset,
    )
    dataset_folder = resolve_source(args.data) if args.embed_data else None
    path = save_lesson(lesson, args.out, dataset_folder=dataset_folder, source_run_folder=source)
    print(f"lesson written to {path} ({path.stat().st_size / 1024**2:.1f} MiB)")
    return 0


def cmd_lesson_show(args) -> int:
    from .teaching.lesson_files import resolve_lesson

    lesson = resolve_lesson(args.lesson)
    plan = lesson.plan("lesson")
    print(f"{lesson.title}  ({lesson.origin})")
    print(f"  dataset     {lesson.data_source}")
    print(
        f"  strategies  {', '.join(lesson.ordered_strategies())}"
        + ("  × training images 10/25/50/100 %" if lesson.sweep else "")
    )
    print(f"  preset      {lesson.preset or '—'}")
    print(f"  settings    {json.dumps(lesson.settings) if lesson.settings else 'the defaults'}")
    print(
        f"  source run  {lesson.source_run or ('trained first, on the source task' if any(c.run_name == 'lesson-source' for c in plan) else '—')}"
    )
    print(f"  runs        {len(plan)}: {', '.join(c.run_name for c in plan)}")
    print()
    print(lesson.instructions)
    return 0


def cmd_lesson_run(args) -> int:
    from dataclasses import replace

    from .jobs.queue import JobQueue, wait_for
    from .teaching.lesson_files import queue_lesson, resolve_lesson

    lesson = resolve_lesson(args.lesson)
    if args.set:  # this run's overrides (e.g. max_steps=3 for a smoke test), not the lesson's own settings
        lesson = replace(lesson, settings={**lesson.settings, **dict(args.set)})
    data = None
    if lesson.sweep and not lesson.data_source.startswith("builtin:"):  # the sweep's equal step budget needs its size
        from .data.dataset import load_dataset

        data = load_dataset(lesson.data_source, ignore_index=lesson.to_config().ignore_index)
    runs = queue_lesson(JobQueue(_runs_dir(args)), lesson, data=data)
    for run in runs:
        print(run.run_id)
    if not args.wait:
        return 0
    states = [wait_for(run, timeout_s=args.timeout) for run in runs]
    for run, state in zip(runs, states):
        print(f"{run.run_id}: {state}", file=sys.stderr)
    return 0 if all(state == "done" for state in states) else 1


def cmd_lesson_list(args) -> int:
    from .base.paths import default_lessons_dir
    from .teaching.builtin_lessons import BUILTIN_LESSONS
    from .teaching.lesson_files import list_lessons

    for key, lesson in BUILTIN_LESSONS.items():
        print(f"builtin:{key:<18} {lesson.title}")
    folder = Path(args.folder) if args.folder else default_lessons_dir(_runs_dir(args))
    for path, lesson in list_lessons(folder):
        print(f"{path}  {lesson.title}" if not isinstance(lesson, Exception) else f"{path}  cannot be used: {lesson}")
    return 0


def add_lesson_parsers(sub) -> None:
    from .settings.config import PRESETS
    from .settings.strategies import STRATEGIES

    lessons = sub.add_parser("lesson", help="lessons a teacher hands out: create, show, run, list").add_subparsers(
        dest="lesson_command", required=True
    )
    p = lessons.add_parser("create", help="write a lesson file (.lesson.zip)")
    p.add_argument("--title", required=True)
    p.add_argument("--instructions", help="a Markdown file with a few lines for the students")
    p.add_argument("--data", required=True, help="builtin:NAME, download:pet|voc, a folder, or a .zip")
    p.add_argument("--embed-data", action="store_true", help="put the dataset itself in the lesson file")
    p.add_argument("--strategies", nargs="+", choices=list(STRATEGIES), help="default: those of Train all")
    p.add_argument("--preset", choices=list(PRESETS), help="start the settings from a preset")
    p.add_argument(
        "--set",
        type=parse_setting,
        action="append",
        metavar="NAME=VALUE",
        help="fix a setting (TrainConfig name), e.g. --set lr=0.001 --set epochs=4",
    )
    p.add_argument("--sweep", action="store_true", help="the data-efficiency sweep: each strategy on 10/25/50/100 %%")
    p.add_argument("--source-run", help="a finished run (id in --runs-dir or folder) to embed for structure transfer")
    p.add_argument("--out", required=True, help="the lesson file to write (.lesson.zip or .segl)")
    p.set_defaults(func=cmd_lesson_create)
    p = lessons.add_parser("show", help="what a lesson holds and the runs it will queue")
    p.add_argument("lesson", help="a lesson file, or builtin:KEY (see 'lesson list')")
    p.set_defaults(func=cmd_lesson_show)
    p = lessons.add_parser("run", help="queue a lesson's runs and print their ids")
    p.add_argument("lesson", help="a lesson file, or builtin:KEY")
    p.add_argument("--runs-dir", default=argparse.SUPPRESS, help="folder for the runs (default: the global --runs-dir)")
    p.add_argument(
        "--set",
        type=parse_setting,
        action="append",
        metavar="NAME=VALUE",
        help="override a setting for these runs only, e.g. --set max_steps=3",
    )
    p.add_argument("--wait", action="store_true", help="wait until every run has ended; exit 1 unless all are done")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait per run with --wait")
    p.set_defaults(func=cmd_lesson_run)
    p = lessons.add_parser("list", help="the built-in lessons and the lesson files in a folder")
    p.add_argument("--folder", help="default: $SEGCORE_LESSONS, else lessons/ beside the runs folder")
    p.set_defaults(func=cmd_lesson_list)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m segcore", description="Transfer learning for semantic segmentation."
    )
    parser.add_argument(
        "--runs-dir",
        default=str(default_runs_dir()),
        help="folder that holds the run folders (default: $SEGCORE_RUNS, else runs)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datasets", help="list the built-in datasets, or report on one (layout, classes, mask values)")
    p.add_argument("source", nargs="?", help="builtin:NAME, download:pet|voc, a folder, or a .zip")
    p.add_argument(
        "--ignore-index", type=int, default=255, help="stored mask value to ignore (default 255; CamVid: 11)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("backbones", help="list usable timm backbones with parameters, channels, weights source")
    p.add_argument("--search", help="any timm model matching a wildcard, e.g. '*mobilenet*'")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_backbones)

    p = sub.add_parser("train", help="train one run", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resume", help="continue a failed or cancelled run from its last finished epoch")
    p.add_argument("run", help="run id (in --runs-dir) or run folder")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("eval", help="score a finished run on a split of a dataset")
    p.add_argument("run", help="run id (in --runs-dir) or run folder")
    p.add_argument("--data", help="dataset to score on (default: the run's own)")
    p.add_argument("--split", default="val", help="val or test (default val)")
    p.add_argument("--ignore-index", type=int, default=-1, help="default: the run's own")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="write the metrics to this JSON file")
    p.add_argument(
        "--native",
        action="store_true",
        help="score at each image's original size (logits upsampled before argmax), as published results are",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="segment images with a finished run")
    p.add_argument("run")
    p.add_argument("images", nargs="+")
    p.add_argument("--out", default="predictions")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("compare", help="render image | ground truth | one column per run, as a PNG")
    p.add_argument("runs", nargs="+")
    p.add_argument("--data", help="dataset (default: the first run's)")
    p.add_argument("--split", default="val")
    p.add_argument("--count", type=int, default=4, help="how many images (rows)")
    p.add_argument("--errors", action="store_true", help="paint wrongly classified pixels red")
    p.add_argument("--out", default="comparison.png")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("adapt", help="a new run: a finished run's BatchNorm statistics re-estimated on a new domain")
    p.add_argument("run", help="run id (in --runs-dir) or run folder")
    p.add_argument("--unlabelled", required=True, help="images of the new domain: a folder / .zip, or 'dataset'")
    p.add_argument("--data", help="a labelled dataset of the new domain to score the adapted run on (its val split)")
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("export", help="copy the checkpoint and write an ONNX file checked against PyTorch")
    p.add_argument("run")
    p.add_argument("--out", default="export")
    p.add_argument("--no-onnx", action="store_true")
    p.set_defaults(func=cmd_export)

    add_lesson_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --gpus N` runs itself again under torchrun
    try:
        return args.func(args)
    except SegcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
