"""Datasets and uploads on a shared server: limits against memory bombs, masks that would be silently
mislabelled, races between sessions on first use, and archives that used to end in a traceback."""

from __future__ import annotations

import ast
import errno
import json
import os
import struct
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segcore import DatasetError, dataset_report, load_dataset
from segcore.base import safezip
from segcore.base.atomic import build_folder_once
from segcore.data.preview import augmentation_preview, sample_overlays
from segcore.data.uploads import save_uploads

from .conftest import write_images_masks

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A private cache, so a test can see everything that was (or was not) written to it."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("SEGCORE_CACHE", str(folder))
    return folder


def leftovers(cache: Path, kind: str) -> list[Path]:
    folder = cache / kind
    return sorted(folder.iterdir()) if folder.exists() else []


# -- 1. limits: nothing a small upload holds can exhaust memory --------------------------------------


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(small_dataset, monkeypatch):
    monkeypatch.setenv("SEGCORE_MAX_PIXELS", "4000")  # the 64×64 images have 4096 pixels

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded before the limit was checked")

    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_decoding)
    with pytest.raises(DatasetError) as caught:
        load_dataset(small_dataset)
    first = caught.value.problems[0] if caught.value.problems else caught.value
    assert "64×64 (0.0 megapixels): too large to decode safely on a shared server" in str(first)
    assert "limit 0.0 megapixels, SEGCORE_MAX_PIXELS" in first.problem and "raise SEGCORE_MAX_PIXELS" in first.hint


def test_a_dataset_over_the_image_limit_is_refused_with_the_limit(small_dataset, monkeypatch):
    monkeypatch.setenv("SEGCORE_MAX_IMAGES", "5")
    with pytest.raises(DatasetError, match=r"holds 12 image/mask pairs, over the limit of 5 \(SEGCORE_MAX_IMAGES\)"):
        load_dataset(small_dataset)


def test_a_split_over_the_memory_limit_is_read_from_disk_and_a_smaller_size_stays_in_memory(
    small_dataset, monkeypatch, tmp_path
):
    monkeypatch.setenv("SEGCORE_MAX_DECODED_MB", "1")
    monkeypatch.setenv("SEGCORE_CACHE", str(tmp_path / "cache"))
    data = load_dataset(small_dataset)
    assert data.load("train", (256, 256)).on_disk  # 10 pairs at 256×256: 2.5 MiB
    small = data.load("train", (64, 64))
    assert not small.on_disk and small.images.shape == (10, 3, 64, 64)


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(tmp_path, monkeypatch):
    root = write_images_masks(tmp_path / "big", count=3, size=(1200, 1600), image_ext=".jpg")
    data = load_dataset(root)
    from segcore.data import files

    decoded_sizes = []
    real_decode = files._decode

    def spy(path, draft_size=None):
        image = real_decode(path, draft_size)
        decoded_sizes.append(image.size)
        return image

    monkeypatch.setattr(files, "_decode", spy)
    images = data.load("train", (120, 160))
    assert images.images.shape[2:] == (120, 160)
    jpeg_sizes = [s for s in decoded_sizes if s[0] < 1600]
    # a 1/4 DCT scale still covers 160 px either way round (EXIF may turn it), and is never 1600×1200
    assert jpeg_sizes and all(s == (400, 300) for s in jpeg_sizes)


def test_previews_decode_only_the_pictures_they_show(tmp_path, monkeypatch):
    root = write_images_masks(tmp_path / "forty", count=50)
    data = load_dataset(root)
    decoded = []
    real = type(data)._decode_pair
    monkeypatch.setattr(
        type(data), "_decode_pair", lambda self, pair, size, *fit: decoded.append(pair) or real(self, pair, size, *fit)
    )
    assert len(sample_overlays(data, "train", count=8)) == 8
    assert len(decoded) == 8  # not the 40 training pairs
    assert len(augmentation_preview(data, "full", count=4)) == 4
    assert len(decoded) == 9


def test_values_of_a_sixteen_bit_mask_are_counted_in_bounded_memory(tmp_path):
    from segcore.data.dataset import _count_values

    mask = np.zeros((300, 300), dtype=np.uint16)
    mask[0, 0] = 65535
    counts = _count_values(mask, tmp_path / "m.png")
    assert counts == Counter({0: 89999, 65535: 1})
    noisy = np.arange(300 * 300, dtype=np.int32).reshape(300, 300)
    with pytest.raises(DatasetError, match=r"holds 89744 different values outside 0…255"):
        _count_values(noisy, tmp_path / "m.tif")


# -- 2. masks are never silently mislabelled ---------------------------------------------------------


def _save(mask: np.ndarray, path: Path, **kwargs) -> None:
    Image.fromarray(mask).save(path, **kwargs)


def test_a_thirty_two_bit_mask_with_a_huge_value_is_refused_without_building_classes(small_dataset):
    mask = np.zeros((64, 64), dtype=np.int32)
    mask[3, 3] = 2**31 - 1
    (small_dataset / "classes.txt").unlink()
    Image.fromarray(mask, "I").save(small_dataset / "masks" / "img_004.tif")
    (small_dataset / "masks" / "img_004.png").unlink()
    with pytest.raises(
        DatasetError,
        match=r"img_004\.tif: the mask value 2147483647 cannot be a class: index masks hold "
        r"at most 255 classes .*set the ignore index to 2147483647",
    ):
        load_dataset(small_dataset)


@pytest.mark.parametrize("value", [256, 300])
def test_values_above_255_are_refused_never_wrapped(tmp_path, value):
    def wide(mask):
        mask = mask.astype(np.uint16)
        mask[0, :8] = value  # a uint8 cast would make these class 0 or 44
        return Image.fromarray(mask)

    root = write_images_masks(tmp_path / "wide", count=4, class_file=False, mask_fn=wide)
    with pytest.raises(DatasetError, match=rf"the mask value {value} cannot be a class"):
        load_dataset(root)
    (root / "classes.txt").write_text("background\nsquare\ndisc\n")
    with pytest.raises(DatasetError, match=rf"mask values \[{value}\] are outside the classes"):
        load_dataset(root)


def test_with_no_ignore_index_value_255_is_not_silently_ignored(tmp_path):
    def with_border(mask):
        mask = mask.copy()
        mask[0] = 255
        return Image.fromarray(mask)

    root = write_images_masks(tmp_path / "border", count=4, class_file=False, mask_fn=with_border)
    with pytest.raises(DatasetError, match=r"the mask value 255 cannot be a class.*set the ignore index to 255"):
        load_dataset(root, ignore_index=None)
    data = load_dataset(root, ignore_index=255)
    assert data.num_classes == 3 and dataset_report(data).value_to_class["255"] == "ignored"


def test_binary_masks_saved_as_jpeg_are_snapped_with_a_warning(tmp_path):
    root = write_images_masks(tmp_path / "jpegmasks", count=6, classes=2, class_file=False)
    for path in sorted((root / "masks").iterdir()):
        mask = np.asarray(Image.open(path)) * 255
        _save(mask.astype(np.uint8), path.with_suffix(".jpg"), quality=75)
        path.unlink()
    data = load_dataset(root)
    report = dataset_report(data)
    assert data.encoding.kind == "binary" and data.encoding.snapped and report.classes == ["background", "foreground"]
    assert any("look binary" in w and "save masks as PNG" in w for w in report.warnings)
    assert report.pixel_share["foreground"] > 0.05  # the foreground is kept, not ignored as 255
    masks = data.load("train", (64, 64)).masks
    assert set(masks.unique().tolist()) == {0, 1}


def test_class_masks_saved_as_jpeg_are_refused_with_the_reason(tmp_path):
    root = write_images_masks(tmp_path / "jpegclasses", count=4, class_file=False)
    for path in sorted((root / "masks").iterdir()):
        _save(np.asarray(Image.open(path)) * 40, path.with_suffix(".jpg"), quality=75)
        path.unlink()
    with pytest.raises(
        DatasetError,
        match=r"img_000\.jpg: this mask is saved as JPEG \(4 masks are\), whose lossy "
        r"compression changes class values.*save the masks as PNG",
    ):
        load_dataset(root)


def test_a_labelmap_of_more_than_255_classes_is_refused(tmp_path):
    root = write_images_masks(tmp_path / "lm", count=3, class_file=False)
    (root / "labelmap.txt").write_text("".join(f"c{i}:{i // 65536},{i // 256 % 256},{i % 256}::\n" for i in range(300)))
    with pytest.raises(DatasetError, match=r"labelmap\.txt: 300 classes are listed, more than the limit of 255"):
        load_dataset(root)


def test_duplicate_labelmap_colours_are_refused_naming_both_lines(tmp_path):
    root = write_images_masks(tmp_path / "dup", count=3, class_file=False)
    (root / "labelmap.txt").write_text("background:0,0,0::\nsquare:250,50,83::\nvoid:0,0,0::\n")
    with pytest.raises(DatasetError, match=r"lines 1 \('background'\) and 3 \('void'\) both use the colour 0,0,0"):
        load_dataset(root)


@pytest.mark.parametrize("kind", ["index", "colour-255-classes", "near-binary"])
def test_the_report_and_training_count_the_same_classes(tmp_path, kind):
    colours = np.array([(0, 0, 0), (250, 50, 83), (51, 221, 255)], dtype=np.uint8)
    if kind == "colour-255-classes":
        # the disc is the last of 255 classes (index 254): training once took 254 for 'unknown colour'
        root = write_images_masks(
            tmp_path / kind, count=6, class_file=False, mask_fn=lambda m: Image.fromarray(colours[m])
        )
        filler = [f"unused{i}:{i},{i},7::" for i in range(1, 253)]
        lines = ["background:0,0,0::", "square:250,50,83::", *filler, "disc:51,221,255::"]
        (root / "labelmap.txt").write_text("\n".join(lines) + "\n")
    elif kind == "index":
        root = write_images_masks(tmp_path / kind, count=6)
    else:  # soft edges: a blurred binary mask

        def soft(mask):
            from PIL import ImageFilter

            return Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))

        root = write_images_masks(tmp_path / kind, count=6, classes=2, class_file=False, mask_fn=soft)
    data = load_dataset(root)
    report = dataset_report(data)
    counts = np.zeros(data.num_classes)
    for pair in data.pairs("train") + data.pairs("val"):
        _, mask = data.load_pair(pair)
        counts += np.bincount(mask.ravel(), minlength=256)[: data.num_classes]
    trained = dict(zip(data.class_names, counts / counts.sum()))
    assert trained == pytest.approx(report.pixel_share)
    assert sum(share > 0 for share in trained.values()) == (2 if kind == "near-binary" else 3)


# -- 3. races on first use, with real processes ------------------------------------------------------

RACER = """
import json, os, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
start_at = float(sys.argv[1])
task = sys.argv[2]
from segcore import load_dataset
from segcore.data.uploads import save_uploads
while time.time() < start_at:
    time.sleep(0.005)
if task == "upload":
    archive = Path(sys.argv[3])
    source = save_uploads([(archive.name, archive.read_bytes())])
else:
    from segcore.data.builtin import builtin_dataset_dir
    source = builtin_dataset_dir("shapes")
data = load_dataset(source)
print(json.dumps({{"source": str(source), "pairs": len(data.pairs("train")) + len(data.pairs("val"))}}))
"""


def race(count: int, *args: str, cache: Path) -> list[dict]:
    script = RACER.format(root=str(ROOT))
    start_at = time.time() + 8  # every process is imported and waiting before the first one starts
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(start_at), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "SEGCORE_CACHE": str(cache)},
        )
        for _ in range(count)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.slow
def test_six_sessions_uploading_the_same_zip_at_once_all_get_the_dataset(tmp_path, cache):
    root = write_images_masks(tmp_path / "ds", count=40)
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in root.rglob("*"):
            z.write(path, path.relative_to(tmp_path))
    results = race(6, "upload", str(archive), cache=cache)
    assert {r["pairs"] for r in results} == {40} and len({r["source"] for r in results}) == 1
    assert len(leftovers(cache, "uploads")) == 1 and len(leftovers(cache, "unzipped")) == 1  # no staging left


@pytest.mark.slow
def test_four_processes_generating_the_built_in_data_into_an_empty_cache_all_succeed(cache):
    results = race(4, "builtin", cache=cache)
    assert {r["pairs"] for r in results} == {128} and len({r["source"] for r in results}) == 1
    assert [p.name for p in leftovers(cache, "builtin")] == ["shapes-v2"]


def test_a_builder_that_loses_the_race_uses_the_winners_folder(tmp_path):
    target = tmp_path / "data"

    def build_while_another_process_wins(staging: Path) -> None:
        (staging / "mine.txt").write_text("loser")
        build_folder_once(target, lambda other: (other / "theirs.txt").write_text("winner"))

    assert build_folder_once(target, build_while_another_process_wins) == target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # the loser's copy is gone
    assert (target / "theirs.txt").read_text() == "winner" and not (target / "mine.txt").exists()


def test_an_incomplete_folder_left_by_a_crash_is_replaced(tmp_path):
    target = tmp_path / "data"
    (target / "images").mkdir(parents=True)  # half-written by an older version, no .complete
    build_folder_once(target, lambda staging: (staging / "ok.txt").write_text("ok"))
    assert (target / "ok.txt").exists() and not (target / "images").exists()


# -- 4. archives and uploads: "file: problem — fix", never a traceback, nothing half-extracted ------


def dataset_zip(tmp_path: Path, extra=None, compression=zipfile.ZIP_STORED) -> Path:
    root = write_images_masks(tmp_path / "ds", count=4)
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w", compression) as z:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(tmp_path))
        if extra:
            extra(z)
    return archive


def patch_headers(archive: Path, local_offset: int, central_offset: int, value: int) -> None:
    """Set one 2-byte field in every local and central header (flags, compression method)."""
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", local_offset), (b"PK\x01\x02", central_offset)):
        at = data.find(signature)
        while at != -1:
            struct.pack_into("<H", data, at + offset, value)
            at = data.find(signature, at + 4)
    archive.write_bytes(bytes(data))


def test_a_zip_entry_with_a_bad_crc_names_the_entry_and_leaves_nothing(tmp_path, cache):
    archive = dataset_zip(tmp_path)
    data = bytearray(archive.read_bytes())
    at = data.find(b"IDAT")  # inside the first stored PNG: its bytes no longer match the zip's CRC
    data[at + 8] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(
        DatasetError, match=r"upload\.zip: the entry 'ds/.*' is damaged \(Bad CRC-32.*zip the dataset again"
    ):
        load_dataset(archive)
    assert leftovers(cache, "unzipped") == []


def test_an_encrypted_zip_is_refused_before_extraction(tmp_path, cache):
    archive = dataset_zip(tmp_path)
    patch_headers(archive, 6, 8, 0x1)  # general-purpose flag bit 0: encrypted
    with pytest.raises(
        DatasetError,
        match=r"the entry 'ds/.*' is encrypted \(password-protected\) — zip the dataset without a password",
    ):
        load_dataset(archive)
    assert leftovers(cache, "unzipped") == []


def test_a_deflate64_zip_is_refused_naming_the_method(tmp_path, cache):
    archive = dataset_zip(tmp_path)
    patch_headers(archive, 8, 10, 9)  # compression method 9: Deflate64, which zipfile cannot read
    with pytest.raises(
        DatasetError, match=r"uses a compression method that cannot be unpacked here \(deflate64\) — re-create the zip"
    ):
        load_dataset(archive)
    assert leftovers(cache, "unzipped") == []


@pytest.mark.parametrize(
    "extra, problem",
    [
        (
            lambda z: z.writestr("ds/x/", b"data in a folder entry"),
            r"the entry 'ds/x/' is named like a folder but holds 22 bytes",
        ),
        (
            lambda z: (z.writestr("ds/notes", b"a file"), z.writestr("ds/notes/a.txt", b"and a folder")),
            r"the entry 'ds/notes' is both a file and a folder",
        ),
        (
            lambda z: z.writestr("ds/images/" + "n" * 270 + ".png", b"x"),
            r"has a name part 274 bytes long, over the limit of 255",
        ),
        (lambda z: (z.writestr("ds/a.txt", b"1"), z.writestr("ds/a.txt", b"2")), r"the entry 'ds/a.txt' appears twice"),
    ],
    ids=["folder-with-data", "file-and-folder", "long-name", "duplicate-entry"],
)
def test_odd_zip_entries_are_refused_naming_the_entry(tmp_path, cache, extra, problem):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it is asked to write
        archive = dataset_zip(tmp_path, extra)
    with pytest.raises(DatasetError, match=problem):
        load_dataset(archive)
    assert leftovers(cache, "unzipped") == []


def test_a_full_disk_while_unzipping_is_said_and_nothing_is_left(tmp_path, cache, monkeypatch):
    archive = dataset_zip(tmp_path)
    real_open = open

    class FullDisk:
        def __init__(self, handle):
            self.handle, self.writes = handle, 0

        def write(self, chunk):
            self.writes += 1
            if self.writes > 0 and self.handle.name.endswith("img_002.png"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(chunk)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(safezip, "open", lambda path, mode="r": FullDisk(real_open(path, mode)), raising=False)
    with pytest.raises(
        DatasetError, match=r"upload\.zip → ds/.*img_002\.png: the server's disk is full.*nothing was kept"
    ):
        load_dataset(archive)
    assert leftovers(cache, "unzipped") == []


@pytest.mark.parametrize(
    "name, problem",
    [
        ("ds/images/a\0b.png", r"ds/images/a\\0b\.png: the file name contains a NUL character — rename the file"),
        ("ds/images/" + "é" * 140 + ".png", r"a part of the file name is 284 bytes long, over the limit of 255"),
        ("ds/" + "/".join(["deep"] * 300) + "/a.png", r"the file path is over 1024 bytes long"),
    ],
    ids=["nul", "long-name", "long-path"],
)
def test_folder_uploads_with_impossible_names_are_refused_before_writing(cache, name, problem):
    with pytest.raises(DatasetError, match=problem):
        save_uploads([("ds/images/ok.png", b"x"), (name, b"x")])
    assert leftovers(cache, "uploads") == []


def test_a_full_disk_while_saving_an_upload_is_said_and_nothing_is_left(cache, monkeypatch):
    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(
        DatasetError, match=r"ds/images/a\.png: the server's disk is full, so the upload could not be saved"
    ):
        save_uploads([("ds/images/a.png", b"x")])
    assert leftovers(cache, "uploads") == []


# -- 5. the data side does not know the network ------------------------------------------------------


def test_data_and_drawing_modules_import_nothing_from_the_model_side():
    network = {"predict", "checkpoints", "models", "training", "strategies", "features", "export"}
    for path in [*sorted((ROOT / "segcore" / "data").glob("*.py")), ROOT / "segcore" / "base" / "drawing.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = (node.module or "").split(".")
                assert not network & set(module), f"{path.name} imports {node.module}"
            elif isinstance(node, ast.Import):
                assert not any("segcore.predict" in alias.name for alias in node.names), path.name
    from segcore.base import drawing
    from segcore.training import predict

    assert (predict.overlay, predict.colorize, predict.unpainted_classes) == (
        drawing.overlay,
        drawing.colorize,
        drawing.unpainted_classes,
    )
