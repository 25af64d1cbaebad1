"""Hostile and odd inputs, generated here: each gives a specific message naming the file and what to do,
and none changes or loses existing runs."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segcore import DatasetError, RunError, dataset_report, load_dataset
from segcore.data.masks import IGNORE
from segcore.data.uploads import save_uploads
from segcore.runs.run import Run, check_run_id

from .conftest import synthetic_pair, write_images_masks


def zip_of(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for path in folder.rglob("*"):
            z.write(path, path.relative_to(folder.parent))
    return archive


# -- archives --------------------------------------------------------------------------------------


def test_zip_with_absolute_paths_is_refused(tmp_path):
    archive = tmp_path / "abs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("/etc/cron.d/evil", "x")
    with pytest.raises(DatasetError, match="abs.zip: the entry '/etc/cron.d/evil' points outside"):
        load_dataset(archive)


def test_zip_with_a_symbolic_link_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as z:
        info = zipfile.ZipInfo("data/images/a.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetError, match="is a symbolic link"):
        load_dataset(archive)


def test_zip_bomb_by_size_is_refused_before_extraction(tmp_path, monkeypatch):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data/images/zeros.png", b"\0" * (64 * 1024**2))  # 64 MiB of zeros packs to ~64 KiB
    monkeypatch.setenv("SEGCORE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DatasetError, match="would unpack to 64 MiB.*zip bomb"):
        load_dataset(archive)
    assert not list((tmp_path / "cache").rglob("zeros.png"))


def test_zip_bomb_by_file_count_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("segcore.data.archives.MAX_ZIP_MEMBERS", 50)
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(51):
            z.writestr(f"data/{i}.txt", "x")
    with pytest.raises(DatasetError, match="holds 51 entries, more than the limit of 50"):
        load_dataset(archive)


def test_a_zip_made_on_windows_with_backslashes_and_a_macos_folder_loads(tmp_path):
    root = write_images_masks(tmp_path / "ds", count=4)
    archive = tmp_path / "win.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in root.rglob("*"):
            if path.is_file():
                z.write(path, str(path.relative_to(tmp_path)))
        z.writestr("__MACOSX/ds/._img_000.png", b"\0\1junk")
    assert len(load_dataset(archive).pairs("train")) == 3


# -- images -----------------------------------------------------------------------------------------


def test_decompression_bomb_image_is_refused(small_dataset, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # our 64×64 images now exceed PIL's pixel limit
    with pytest.raises(DatasetError, match="too large to decode safely"):
        load_dataset(small_dataset)


def test_truncated_jpeg_names_the_file(tmp_path):
    root = write_images_masks(tmp_path / "jpg", count=4, image_ext=".jpg")
    path = root / "images" / "img_002.jpg"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DatasetError, match=r"img_002\.jpg: the image file is damaged or truncated"):
        load_dataset(root)  # every file is opened when the dataset is read, before any training


def test_every_broken_file_is_listed_not_just_the_first(tmp_path):
    root = write_images_masks(tmp_path / "many", count=6)
    (root / "images" / "img_001.png").write_text("not an image")
    Image.new("L", (5, 5)).save(root / "masks" / "img_004.png")
    with pytest.raises(DatasetError) as caught:
        load_dataset(root)
    assert "2 files have problems" in str(caught.value)
    assert [Path(p.path).name for p in caught.value.problems] == ["img_001.png", "img_004.png"]


def test_greyscale_and_cmyk_images_become_rgb(tmp_path):
    root = write_images_masks(tmp_path / "modes", count=4)
    Image.open(root / "images" / "img_000.png").convert("L").save(root / "images" / "img_000.png")
    Image.open(root / "images" / "img_001.png").convert("CMYK").save(root / "images" / "img_001.jpg")
    (root / "images" / "img_001.png").unlink()
    data = load_dataset(root, val_fraction=0.25)
    images = data.load("train", (32, 32))
    assert images.images.shape[1] == 3
    assert len(data.pairs("train")) + len(data.pairs("val")) == 4


def test_exif_rotated_photo_is_turned_upright_and_matches_its_mask(tmp_path):
    root = write_images_masks(tmp_path / "exif", count=3, size=(40, 60))
    image = Image.open(root / "images" / "img_000.png")
    stored = image.transpose(Image.Transpose.ROTATE_90)  # what a phone stores sideways...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...with 'rotate 90° clockwise to view'
    stored.save(root / "images" / "img_000.jpg", exif=exif, quality=98)
    (root / "images" / "img_000.png").unlink()
    data = load_dataset(root)
    pair = next(p for p in data.pairs("train") + data.pairs("val") if p.name == "img_000")
    upright, mask = data.load_pair(pair)
    assert upright.size == (60, 40) and mask.shape == (40, 60)
    difference = np.abs(np.asarray(upright, dtype=int) - np.asarray(image.convert("RGB"), dtype=int)).mean()
    assert difference < 12  # the same picture, upright (JPEG noise aside)


def test_rgba_and_sixteen_bit_masks(tmp_path):
    def rgba(mask):
        grey = np.stack([mask] * 3 + [np.full_like(mask, 255)], -1)
        return Image.fromarray(grey, "RGBA")

    root = write_images_masks(tmp_path / "rgba", count=4, mask_fn=rgba)
    data = load_dataset(root)
    assert data.encoding.kind == "index"
    _, mask = data.load_pair(data.pairs("train")[0])
    assert set(np.unique(mask)) <= {0, 1, 2}

    def sixteen_bit_with_void(mask):
        wide = mask.astype(np.uint16)
        wide[:4] = 65535  # void, as some annotation tools store it in 16-bit masks
        return Image.fromarray(wide)

    root = write_images_masks(tmp_path / "m16", count=4, mask_fn=sixteen_bit_with_void)
    assert Image.open(root / "masks" / "img_000.png").mode.startswith("I;16")  # really a 16-bit file
    with pytest.raises(
        DatasetError,
        match=r"img_00\d\.png: mask values \[65535\] are outside the classes.*"
        r"set the ignore index to 65535",
    ):
        load_dataset(root)
    data = load_dataset(root, ignore_index=65535)
    _, mask = data.load_pair(data.pairs("train")[0])
    assert (mask[:4] == IGNORE).all() and set(np.unique(mask[4:])) == {0, 1, 2}
    assert dataset_report(data).value_to_class["65535"] == "ignored"
    assert set(data.load("train", (32, 32)).masks[:, 4:].unique().tolist()) <= {0, 1, 2}


def test_a_dataset_of_one_image_trains_on_it_and_says_so(tmp_path):
    root = write_images_masks(tmp_path / "one", count=1)
    data = load_dataset(root)
    assert data.pairs("train") == data.pairs("val")
    assert any("only one image" in w for w in data.warnings)


def test_zero_usable_pairs(tmp_path):
    root = tmp_path / "nopairs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "images" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="holds no image/mask pairs"):
        load_dataset(root)


def test_file_names_with_spaces_and_non_ascii_characters(tmp_path):
    root = tmp_path / "données été"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for name in ("photo 1", "café crème", "東京", "naïve-ß"):
        image, mask = synthetic_pair(rng)
        Image.fromarray(image).save(root / "images" / f"{name}.png")
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    data = load_dataset(root)
    names = {p.name for p in data.pairs("train") + data.pairs("val")}
    assert names == {"photo 1", "café crème", "東京", "naïve-ß"}
    assert data.load("train", (32, 32)).images.shape[0] == 3


# -- uploads and paths ---------------------------------------------------------------------------


def test_an_upload_over_the_size_limit_is_refused_with_the_limit(small_dataset):
    files = [(f"ds/{p.relative_to(small_dataset)}", p.read_bytes()) for p in small_dataset.rglob("*") if p.is_file()]
    with pytest.raises(DatasetError, match="over the limit of 0 MiB"):
        save_uploads(files, max_bytes=1000)


def test_an_uploaded_folder_keeps_its_layout_and_rejects_escaping_names(small_dataset):
    files = [(f"ds/{p.relative_to(small_dataset)}", p.read_bytes()) for p in small_dataset.rglob("*") if p.is_file()]
    source = save_uploads(files)
    assert len(load_dataset(source).pairs("train")) == 10
    with pytest.raises(DatasetError, match="points outside the upload folder"):
        save_uploads([("../../evil.png", b"x")])


def test_an_uploaded_zip_loads_like_a_folder(tmp_path, small_dataset):
    archive = zip_of(small_dataset, tmp_path / "upload.zip")
    source = save_uploads([("upload.zip", archive.read_bytes())])
    assert len(load_dataset(source).pairs("train")) == 10


@pytest.mark.parametrize("name", ["../outside", "/etc", "a/../../b", "..", "", "name with space", "x" * 200])
def test_run_ids_that_could_reach_outside_runs_are_refused(name, tmp_path):
    with pytest.raises(RunError, match="not a valid run name"):
        check_run_id(name)
    with pytest.raises(RunError):
        Run.open(tmp_path, name)


def test_bad_input_leaves_existing_runs_untouched(tmp_path, train_dataset):
    from segcore import TrainConfig, train

    runs = tmp_path / "runs"
    run = train(
        TrainConfig(data=str(train_dataset), epochs=1, min_steps=0, height=64, width=64, batch_size=4),
        runs,
        run_id="keep",
    )
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    not_a_zip = tmp_path / "data.zip"
    not_a_zip.write_text("not a zip")
    for bad, problem in (
        (tmp_path / "missing", "missing: no such file or folder"),
        (not_a_zip, "data.zip: this file is not a valid zip archive"),
    ):
        with pytest.raises(DatasetError, match=problem):
            train(TrainConfig(data=str(bad), epochs=1), runs, run_id="keep-2")
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == before
    assert Run.open(runs, "keep-2").state == "failed"
