"""The package layout holds (ARCHITECTURE.md): one import direction between segcore's sub-packages, no circle between
modules, pages and the engine kept apart, run file names spelled once; and work saved before the layout changed
still opens."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEGCORE = ROOT / "segcore"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "before_layout"

# lower layers first; a module may import its own package and the packages listed before it
LAYERS = ["base", "data", "models", "settings", "runs", "training", "jobs", ("teaching", "compare")]
TOP_LEVEL = {"__init__.py", "__main__.py", "cli.py", "domain.py", "advice.py"}  # the door, the CLI, README's shims


def layer_of(package: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if package == layer or isinstance(layer, tuple) and package in layer:
            return rank
    raise AssertionError(f"segcore/{package}/ is not a package of the layout")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import of a segcore module in a file, inside functions too."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("segcore"):
                continue
            if node.module is None or target == "segcore":  # `from . import x`: x may be a module
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("segcore")]
    return found


def engine_modules() -> list[Path]:
    return sorted(SEGCORE.rglob("*.py"))


def test_segcore_top_level_holds_only_the_door_the_cli_and_shims():
    loose = {p.name for p in SEGCORE.glob("*.py")} - TOP_LEVEL
    assert not loose, f"modules outside a sub-package: {sorted(loose)} — give each a room (ARCHITECTURE.md)"
    for package in (p for p in SEGCORE.iterdir() if p.is_dir() and p.name != "__pycache__"):
        layer_of(package.name)
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert doc and len(doc) < 400, (
            f"segcore/{package.name}/__init__.py needs a short docstring saying what lives there"
        )


def test_imports_run_one_way_between_the_packages():
    wrong = []
    for path in engine_modules():
        source = module_name(path).split(".")
        if len(source) < 3 and path.name != "__init__.py" or source == ["segcore"]:
            continue  # the door, the CLI and the shims may import anything
        source_package = source[1]
        for line, target in imported_modules(path):
            parts = target.split(".")
            if len(parts) < 2 or parts[1] in ("__init__",):
                continue
            target_package = parts[1]
            if (SEGCORE / target_package).is_dir():
                if target_package == source_package:
                    continue
                if layer_of(target_package) >= layer_of(source_package):
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
            else:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}, which is not in a sub-package")
    assert not wrong, (
        "imports against the direction base ← data ← models ← settings ← runs ← training ← jobs ← "
        "{teaching | compare}:\n" + "\n".join(wrong)
    )


def test_no_circle_between_modules():
    modules = {module_name(p): p for p in engine_modules()}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for _, target in imported_modules(path):
            while target and target not in modules:  # `from .x import name` names module x
                target = target.rpartition(".")[0]
            if target and target != name and target != "segcore":
                targets.add(target)
        graph[name] = targets
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" → ".join(trail[trail.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state and not name.startswith("segcore.__") and name != "segcore":
            visit(name, [name])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_base_and_settings_import_without_torch():
    code = (
        "import sys, importlib, pkgutil\n"
        "import segcore.base, segcore.settings\n"
        "for package in (segcore.base, segcore.settings):\n"
        "    for m in pkgutil.iter_modules(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "heavy = sorted(n for n in ('torch', 'timm', 'torchvision', 'streamlit') if n in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"importing segcore.base and segcore.settings imported {done.stdout.strip()}"


def test_the_engine_never_imports_streamlit_and_pages_hold_no_policy():
    for path in engine_modules():
        for _, target in [
            (n.lineno, a.name)
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Import)
            for a in n.names
        ] + [
            (n.lineno, n.module or "") for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)
        ]:
            assert not target.startswith("streamlit"), f"{path.relative_to(ROOT)} imports streamlit"
    banned = {"os", "subprocess", "threading", "shutil", "multiprocessing"}
    for path in sorted((ROOT / "views").glob("*.py")) + [ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            bad = {n.split(".")[0] for n in names} & banned
            assert not bad, (
                f"{path.relative_to(ROOT)} imports {bad}: environment, threads, processes and file copying live in segcore"
            )


def test_pages_draw_only_what_they_call():
    """A bare expression in a page (`widget(...) or default`) was drawn by Streamlit's magic as a stray "auto" line
    on the Model page: magic is off in the server's config, and no page holds such a statement."""
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert "magicEnabled = false" in config
    for path in sorted((ROOT / "views").glob("*.py")) + [ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Call):
                docstring = isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                assert docstring, f"{path.relative_to(ROOT)}:{node.lineno}: a bare expression would be drawn"


def test_each_run_file_name_is_spelled_once():
    from segcore.runs import files

    names = [v for k, v in vars(files).items() if k.isupper() and isinstance(v, str) and "." in v]
    for path in engine_modules():
        if path == SEGCORE / "runs" / "files.py":
            continue
        text = path.read_text()
        for name in names:
            assert f'"{name}"' not in text, f'{path.relative_to(ROOT)} spells "{name}": use segcore.runs.files'


# -- work saved before the layout changed ---------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGCORE_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "before_layout"
    shutil.copytree(FIXTURES, copy)
    return copy


def test_a_run_saved_before_the_layout_opens_and_predicts(saved):
    from PIL import Image

    from segcore import Predictor
    from segcore.runs.resume import read_resume_point
    from segcore.runs.run import Run

    run = Run.from_path(saved / "runs" / "made-before-layout")
    assert run.state == "done" and not run.broken and run.has_checkpoint()
    assert run.train_config.backbone == "test_efficientnet"
    assert run.summary_record.miou == pytest.approx(run.status_record.miou)
    assert read_resume_point(run.path)[0] is not None
    steps, epochs = run.curves()
    assert len(steps) == 2 and len(epochs) == 1
    mask = Predictor(run, device="cpu").predict(Image.new("RGB", (48, 40), (120, 60, 30)))
    assert mask.shape == (40, 48)


def test_a_lesson_saved_before_the_layout_opens_and_plans(saved):
    from segcore.teaching.lesson_files import open_lesson

    lesson = open_lesson(saved / "before-layout.lesson.zip")
    assert lesson.title == "Made before the layout"
    assert Path(lesson.data_source).is_dir() and Path(lesson.source_run).is_dir()
    plan = lesson.plan("class")
    assert [c.strategy for c in plan] == ["scratch", "structure"]
    assert plan[1].source_run == lesson.source_run


def test_a_bundle_saved_before_the_layout_imports(saved, tmp_path):
    from segcore.compare.bundle import import_comparison

    (run,) = import_comparison(saved / "before-layout-bundle.zip", tmp_path / "runs", owner="alice")
    assert run.state == "done" and run.owner == "alice" and not run.broken and run.has_checkpoint()
