"""Peak memory and time of hostile uploads: the dataset report and the Data page's load path, each in a
fresh process. Prints a table (not a test); target: every row under 1 GiB and 10 s.

    python bench/memory.py [--out bench/results/memory.txt]

Inputs, generated into a temporary folder:
  pixel bomb   eight 9400×9400 PNG image/mask pairs in a ~3 MB zip (each under PIL's own pixel limit)
  class bomb   a 32-bit TIFF mask with one pixel of 2³¹−1; a 16-bit PNG mask with one pixel of 65535
  many files   a zip of 10,000 entries (5,000 small image/mask pairs)
and, to show what decoding costs within the limits, eight 6000×6000 PNG pairs (36 megapixels, under the default
40 M) and the pixel bomb with SEGCORE_MAX_PIXELS raised to 100 M.

Paths: report = load_dataset + dataset_report; preview = + the Data page's sample overlays and augmentation
preview; page = + data.load("train", (160, 160)), the decode training does.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def pixel_bomb(folder: Path, side: int = 9400) -> Path:
    """side 9400: 88.4 megapixels, just under PIL's 89.5 M warning limit."""
    image = np.full((side, side, 3), 90, dtype=np.uint8)
    image[1000:3000, 1000:3000] = (230, 210, 40)
    image[:350, :350] = np.random.default_rng(0).integers(0, 256, (350, 350, 3))  # some texture: ~3 MB zipped
    mask = np.zeros((side, side), dtype=np.uint8)
    mask[1000:3000, 1000:3000] = 1
    image_png, mask_png = _png(image), _png(mask)
    del image, mask
    archive = folder / f"pixel-bomb-{side}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(8):
            z.writestr(f"bomb/images/{i}.png", image_png)
            z.writestr(f"bomb/masks/{i}.png", mask_png)
    return archive


def _small_pairs(rng: np.random.Generator, count: int, size: int = 64):
    for i in range(count):
        image = np.full((size, size, 3), 90, dtype=np.uint8)
        mask = np.zeros((size, size), dtype=np.uint8)
        y, x, s = rng.integers(0, size // 2), rng.integers(0, size // 2), rng.integers(8, size // 2)
        image[y : y + s, x : x + s] = (230, 210, 40)
        mask[y : y + s, x : x + s] = 1
        yield i, image, mask


def class_bomb(folder: Path, bits: int) -> Path:
    archive = folder / f"class-bomb-{bits}bit.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for i, image, mask in _small_pairs(np.random.default_rng(bits), 8):
            z.writestr(f"cls/images/{i}.png", _png(image))
            buffer = io.BytesIO()
            if bits == 32:
                wide = mask.astype(np.int32)
                wide[0, 0] = 2**31 - 1
                Image.fromarray(wide, "I").save(buffer, "TIFF")
                z.writestr(f"cls/masks/{i}.tif", buffer.getvalue())
            else:
                wide = mask.astype(np.uint16)
                wide[0, 0] = 65535
                Image.fromarray(wide).save(buffer, "PNG")
                z.writestr(f"cls/masks/{i}.png", buffer.getvalue())
    return archive


def many_files(folder: Path) -> Path:
    archive = folder / "many-files.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for i, image, mask in _small_pairs(np.random.default_rng(0), 5000):
            z.writestr(f"many/images/{i:05d}.png", _png(image))
            z.writestr(f"many/masks/{i:05d}.png", _png(mask))
    return archive


# -- one measurement, in a fresh child process --------------------------------------------------


def child(mode: str, source: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["SEGCORE_CACHE"] = tempfile.mkdtemp(prefix="segcore-bench-memory-")
    start = time.perf_counter()
    refused = ""
    try:
        from segcore import SegcoreError, dataset_report, load_dataset
        from segcore.data.preview import augmentation_preview, sample_overlays

        if mode == "import":
            pass
        else:
            try:
                data = load_dataset(source)
                dataset_report(data).to_text()
                if mode in ("preview", "page"):  # what the Data page draws
                    sample_overlays(data, "train", count=8)
                    augmentation_preview(data, "full", count=4)
                if mode == "page":  # what training then decodes
                    data.load("train", (160, 160))
            except SegcoreError as exc:
                refused = " / ".join(line.strip() for line in str(exc).splitlines()[:2])
    finally:
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
        print(json.dumps({"peak_bytes": peak, "wall_s": wall, "refused": refused}))


def measure(mode: str, source: Path | str, env: dict | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(source)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    if result.returncode:
        return {"peak_bytes": 0, "wall_s": 0, "refused": f"CRASHED: {result.stderr.strip().splitlines()[-1]}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "SOURCE"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="segcore-bench-inputs-") as tmp:
        folder = Path(tmp)
        inputs = [
            ("pixel bomb (8 × 9400² PNG pairs)", pixel_bomb(folder), {}),
            ("class bomb (32-bit TIFF, 2³¹−1)", class_bomb(folder, 32), {}),
            ("class bomb (16-bit PNG, 65535)", class_bomb(folder, 16), {}),
            ("10,000-entry zip (5,000 pairs)", many_files(folder), {}),
        ]
        bomb = inputs[0][1]
        raised = [
            ("8 × 6000² PNG pairs (under the limit)", pixel_bomb(folder, 6000), {}),
            ("pixel bomb, SEGCORE_MAX_PIXELS=100M", bomb, {"SEGCORE_MAX_PIXELS": "100000000"}),
        ]
        lines = [
            f"python {sys.version.split()[0]}, {os.cpu_count()} cores; peak RSS of a fresh process each",
            "",
            f"{'input':<36} {'zip MiB':>7} {'path':<7} {'peak MiB':>8} {'wall s':>7}  {'ok':<3} result",
        ]
        base = measure("import", "-")
        lines.append(
            f"{'(baseline: import segcore, torch)':<36} {'':>7} {'import':<7} {base['peak_bytes'] / 1024**2:8.0f} "
            f"{base['wall_s']:7.1f}  {'':<3} —"
        )
        for label, archive, env in inputs + raised:
            for mode in ("report", "preview", "page"):
                row = measure(mode, archive, env)
                ok = row["peak_bytes"] < GIB and row["wall_s"] < 10 and not row["refused"].startswith("CRASHED")
                lines.append(
                    f"{label:<36} {archive.stat().st_size / 1024**2:7.1f} {mode:<7} {row['peak_bytes'] / 1024**2:8.0f} "
                    f"{row['wall_s']:7.1f}  {'yes' if ok else 'NO':<3} {('refused: ' + row['refused']) if row['refused'] else 'loaded'}"
                )
                print(lines[-1], flush=True)
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
