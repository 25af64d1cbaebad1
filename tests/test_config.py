"""Settings are declared once and checked where a run is created: the same message from the API, the CLI, the
queue and the Model page, naming the setting, the value and what is allowed."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest

from segcore import TrainConfig
from segcore.base.errors import ConfigError
from segcore.cli import build_parser, main
from segcore.settings.config import cli_option, describe

INVALID = [
    ("lr", ["--lr", "nan"], {"lr": math.nan}, "must be a finite number"),
    ("lr", ["--lr", "inf"], {"lr": math.inf}, "must be a finite number"),
    ("weight_decay", ["--weight-decay", "nan"], {"weight_decay": math.nan}, "must be a finite number"),
    ("encoder_lr_factor", ["--encoder-lr-factor", "nan"], {"encoder_lr_factor": math.nan}, "finite"),
    ("warmup_epochs", ["--warmup-epochs", "nan"], {"warmup_epochs": math.nan}, "finite"),
    ("epochs", ["--epochs", "0"], {"epochs": 0}, "between 1 and 1,000"),
    ("epochs", ["--epochs", "-3"], {"epochs": -3}, "between 1 and 1,000"),
    ("batch_size", ["--batch-size", "0"], {"batch_size": 0}, "between 1 and 1,024"),
    ("batch_size", ["--batch-size", "-1"], {"batch_size": -1}, "between 1 and 1,024"),
    ("threads", ["--threads", "-1"], {"threads": -1}, "between 0 and"),
    ("seed", ["--seed", "-1"], {"seed": -1}, "between 0 and 4,294,967,295"),
    ("decoder_channels", ["--decoder-channels", "0"], {"decoder_channels": (0,)}, "from 4 to 1024"),
    ("device", ["--device", "meta"], {"device": "meta"}, "auto, cpu, cuda, cuda:N or mps"),
    ("train_size", ["--train-size", "inf"], {"train_size": math.inf}, "finite"),
    ("train_size", ["--train-size", "1.5"], {"train_size": 1.5}, "whole number of images"),
    ("max_steps", ["--max-steps", "-1"], {"max_steps": -1}, "between 0 and"),
    ("height", ["--size", "100"], {"height": 100, "width": 100}, "multiple of 8"),
    ("source_run", ["--strategy", "structure"], {"strategy": "structure"}, "needs a source run"),
]


@pytest.mark.parametrize("setting, argv, values, allowed", INVALID, ids=[" ".join(c[1]) for c in INVALID])
def test_every_invalid_setting_is_refused_by_name(setting, argv, values, allowed, tmp_path, capsys):
    with pytest.raises(ConfigError, match=allowed) as raised:
        TrainConfig(**values).validate()
    assert raised.value.setting == setting and f"setting {setting}" in str(raised.value)
    assert main(["--runs-dir", str(tmp_path / "runs"), "train", *argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"setting {setting}" in err and allowed in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing was created


def test_the_queue_refuses_invalid_settings_before_queueing(tmp_path):
    from segcore.jobs.queue import JobQueue

    with pytest.raises(ConfigError, match="setting lr"):
        JobQueue(tmp_path / "runs").submit(TrainConfig(lr=math.nan), start=False)
    assert not [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]


def test_every_setting_has_one_declaration_the_cli_reads():
    """Adding a setting means adding a field: the CLI option, its help and choices come from it."""
    options = {a.dest: a for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions}
    for spec in fields(TrainConfig):
        if cli_option(spec) and not spec.metadata.get("via"):
            assert spec.name in options, spec.name
            assert options[spec.name].help == spec.metadata["help"]
            if spec.metadata.get("choices"):
                assert list(options[spec.name].choices) == spec.metadata["choices"]()
    assert describe("strategy")["choices"]() == list(__import__("segcore").STRATEGIES)


def test_model_page_inputs_carry_the_declared_ranges(tmp_path, monkeypatch):
    from tests.test_app import open_page

    monkeypatch.setenv("SEGCORE_RUNS", str(tmp_path / "runs"))
    app = open_page("model")
    for key, setting in (
        ("epochs", "epochs"),
        ("batch_size", "batch_size"),
        ("lambda", "weight_decay"),
        ("min_steps", "min_steps"),
    ):
        widget, declared = app.number_input(key=key), describe(setting)
        assert widget.min == declared["low"] and widget.max <= declared["high"], key
        assert widget.help == declared["help"]


def test_a_preset_fills_in_what_the_command_line_does_not_say():
    from segcore.cli import config_from_args
    from segcore.settings.config import PRESETS

    def config(*argv):
        args = build_parser().parse_args(["train", *argv])
        args.argv = ["train", *argv]
        return config_from_args(args)

    quick = config("--preset", "quick")
    assert (quick.height, quick.epochs, quick.min_steps) == tuple(
        PRESETS["quick"].settings[k] for k in ("height", "epochs", "min_steps")
    )
    given = config("--preset", "quick", "--size", "96", "--epochs", "4")  # the options given win
    assert (given.height, given.width, given.epochs, given.min_steps) == (
        96,
        96,
        4,
        PRESETS["quick"].settings["min_steps"],
    )
    assert config().epochs == TrainConfig().epochs


def test_every_preset_sets_the_model_page_and_reaches_the_queued_run(tmp_path, monkeypatch):
    """Switching presets sets each widget a preset touches (to the preset's value or back to the default)."""
    from segcore.jobs.queue import JobQueue
    from segcore.runs.run import list_runs
    from segcore.settings.config import PRESETS
    from tests.test_app import open_page

    monkeypatch.setenv("SEGCORE_RUNS", str(tmp_path / "runs"))
    app = open_page("model")
    for name in [*PRESETS, "quick", "standard"]:  # each one, and back from one to another
        app.segmented_control(key="preset").set_value(name).run()
        assert not app.exception, [e.value for e in app.exception]
        wanted = {**{k: getattr(TrainConfig(), k) for p in PRESETS.values() for k in p.settings}}
        wanted.update(PRESETS[name].settings)
        assert app.select_slider(key="size").value == wanted["height"]
        assert app.number_input(key="epochs").value == wanted["epochs"]
        assert app.number_input(key="min_steps").value == wanted["min_steps"]
    for name in ("quick", "detailed"):
        app = open_page("model")
        app.segmented_control(key="preset").set_value(name).run()
        next(b for b in app.button if b.label == "▶ Train").click().run()
        queued = next(r for r in list_runs(tmp_path / "runs") if r.state in ("queued", "running"))
        JobQueue(tmp_path / "runs").cancel(queued.run_id)  # the point was what it queued
        wanted = {**TrainConfig().to_dict(), **PRESETS[name].settings}
        assert all(queued.config[k] == wanted[k] for k in ("epochs", "min_steps", "height", "width")), name


def test_export_refuses_a_model_with_non_finite_weights(tmp_path, train_dataset):
    import torch
    from safetensors.torch import load_file, save_file

    from segcore import train
    from segcore.base.errors import RunError
    from segcore.training.export import export_run

    run = train(
        TrainConfig(data=str(train_dataset), epochs=1, min_steps=0, max_steps=1, height=64, width=64), tmp_path / "runs"
    )
    weights = load_file(run.path / "best.safetensors")
    weights["head.weight"] = torch.full_like(weights["head.weight"], math.nan)
    save_file(weights, run.path / "best.safetensors")
    with pytest.raises(RunError, match="non-finite weights or outputs"):
        export_run(run, tmp_path / "export", onnx=False)
    assert not (tmp_path / "export").exists()
