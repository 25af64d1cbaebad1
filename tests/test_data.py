"""Every layout and mask format loads; every bad input gives a message that names the file and the fix."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segcore import DatasetError, dataset_report, load_dataset
from segcore.data.classes import voc_palette
from segcore.data.masks import IGNORE
from segcore.data.transforms import augment_batch, make_augmentation

from .conftest import CAMVID, MEMBRANE, needs_camvid, needs_membrane, synthetic_pair, write_images_masks


def test_images_masks_layout_pairs_by_stem_and_splits_with_seed(small_dataset):
    data = load_dataset(small_dataset, seed=3)
    assert data.layout.startswith("images/ + masks/")
    assert len(data.pairs("train")) + len(data.pairs("val")) == 12
    assert data.class_names == ["background", "square", "disc"]
    assert "seeded split" in data.split_origin
    again = load_dataset(small_dataset, seed=3)
    assert [p.name for p in again.pairs("val")] == [p.name for p in data.pairs("val")]


def test_segnet_layout_uses_its_own_split(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2), ("test", 2)):
        (tmp_path / split).mkdir()
        (tmp_path / f"{split}annot").mkdir()
        for i in range(count):
            image, mask = synthetic_pair(rng)
            Image.fromarray(image).save(tmp_path / split / f"f{i}.png")
            Image.fromarray(mask).save(tmp_path / f"{split}annot" / f"f{i}.png")
    data = load_dataset(tmp_path)
    assert data.layout.startswith("SegNet/CamVid")
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 4, "val": 2, "test": 2}
    assert data.split_origin == "the dataset's own split"


def test_voc_layout_reads_palette_indices_and_ignores_border(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    rng = np.random.default_rng(1)
    palette = [v for colour in voc_palette(256) for v in colour]
    for i in range(4):
        image, mask = synthetic_pair(rng)
        mask[0, :] = 255  # VOC's object border
        Image.fromarray(image).save(root / "JPEGImages" / f"2007_{i}.jpg")
        stored = Image.fromarray(mask, mode="L").convert("P")
        stored.putpalette(palette)
        stored.putdata(mask.flatten().tolist())
        stored.save(root / "SegmentationClass" / f"2007_{i}.png")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_0\n2007_1\n2007_2\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_3\n")
    data = load_dataset(tmp_path)  # finds VOCdevkit/VOC2012 by itself
    assert data.layout.startswith("Pascal VOC")
    assert len(data.pairs("train")) == 3 and len(data.pairs("val")) == 1
    assert data.class_names[0] == "background" and len(data.class_names) == 21
    _, mask = data.load_pair(data.pairs("val")[0])
    assert (mask[0] == IGNORE).all() and set(np.unique(mask[1:])) <= {0, 1, 2}


def test_binary_0_255_masks_become_0_1(tmp_path):
    root = write_images_masks(
        tmp_path / "bin",
        count=6,
        classes=2,
        class_file=False,
        mask_fn=lambda m: Image.fromarray((m * 255).astype(np.uint8)),
    )
    data = load_dataset(root)
    assert data.encoding.kind == "binary"
    assert data.class_names == ["background", "foreground"]
    _, mask = data.load_pair(data.pairs("train")[0])
    assert set(np.unique(mask)) <= {0, 1}


def test_colour_masks_map_through_labelmap(tmp_path):
    colours = [(0, 0, 0), (250, 50, 83), (51, 221, 255)]
    lut = np.array(colours, dtype=np.uint8)
    root = write_images_masks(tmp_path / "rgb", count=6, class_file=False, mask_fn=lambda m: Image.fromarray(lut[m]))
    (root / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\nsquare:250,50,83::\ndisc:51,221,255::\n"
    )
    data = load_dataset(root)
    assert data.encoding.kind == "colour"
    assert data.class_names == ["background", "square", "disc"]
    assert data.class_colours == colours
    pair = data.pairs("train")[0]
    _, mask = data.load_pair(pair)
    expected = np.asarray(Image.open(pair.mask).convert("RGB"))
    assert (lut[mask] == expected).all()


def test_sixteen_bit_masks_keep_their_values(tmp_path):
    root = write_images_masks(tmp_path / "m16", count=4, mask_fn=lambda m: Image.fromarray(m.astype(np.uint16)))
    data = load_dataset(root)
    _, mask = data.load_pair(data.pairs("train")[0])
    assert set(np.unique(mask)) <= {0, 1, 2} and len(np.unique(mask)) > 1


def test_ignore_index_is_configurable_and_reported(tmp_path):
    def with_void(m):
        m = m.copy()
        m[:2] = 3  # a 'void' value just past the classes, like CamVid's 11
        return Image.fromarray(m)

    root = write_images_masks(tmp_path / "void", count=4, mask_fn=with_void)
    with pytest.raises(DatasetError, match=r"mask values \[3\] are outside the classes.*set the ignore index to 3"):
        load_dataset(root)
    data = load_dataset(root, ignore_index=3)
    report = dataset_report(data)
    assert report.ignore_index == 3
    assert report.value_to_class["3"] == "ignored"
    assert report.value_to_class["1"] == "1 square"
    assert 0 < report.ignored_share < 0.1
    assert abs(sum(report.pixel_share.values()) - 1) < 1e-6
    _, mask = data.load_pair(data.pairs("train")[0])
    assert (mask[:2] == IGNORE).all()


def test_zip_of_a_dataset_folder_loads(tmp_path, small_dataset):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in small_dataset.rglob("*"):
            z.write(path, Path("mydata") / path.relative_to(small_dataset))
    data = load_dataset(archive)
    assert len(data.pairs("train")) + len(data.pairs("val")) == 12


def test_in_memory_tensors_have_requested_size_and_train_subsets_nest(small_dataset):
    data = load_dataset(small_dataset)
    images = data.load("train", (32, 48))
    assert images.images.shape[1:] == (3, 32, 48) and images.images.dtype == torch.uint8
    assert images.masks.shape[1:] == (32, 48)
    assert data.load("train", (32, 48)) is images  # decoded once
    quarter, half = data.train_indices(0.25, seed=1), data.train_indices(0.5, seed=1)
    assert set(quarter) < set(half)
    assert len(data.train_indices(3, seed=1)) == 3


def test_joint_augmentation_moves_mask_with_image():
    image = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    image[..., :, :20] = 255
    mask = torch.zeros(1, 64, 64, dtype=torch.uint8)
    mask[..., :, :20] = 1
    transform = make_augmentation("full", (64, 64))
    torch.manual_seed(0)
    for _ in range(5):
        out_image, out_mask = augment_batch(transform, image, mask)
        bright = out_image[0].float().mean(0) > 128
        assert ((out_mask[0] == 1) == bright).float().mean() > 0.97


# -- bad input: each names the file and what to do ------------------------------------------------


def test_an_image_without_a_mask_is_an_unlabelled_image_and_said_so(small_dataset):
    (small_dataset / "masks" / "img_004.png").unlink()
    data = load_dataset(small_dataset)
    assert [p.name for p in data.unlabelled] == ["img_004.png"]
    assert not any(pair.image.name == "img_004.png" for pairs in data.splits.values() for pair in pairs)
    assert any("img_004.png" in w and "unlabelled" in w for w in data.warnings)


def test_images_with_no_mask_at_all_name_the_first_image(small_dataset):
    for mask in (small_dataset / "masks").iterdir():
        mask.unlink()
    with pytest.raises(DatasetError, match=r"img_000\.png: no image has a mask"):
        load_dataset(small_dataset)


def test_a_validation_image_without_a_mask_is_still_an_error(tmp_path, small_dataset):
    root = tmp_path / "split"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for pair in sorted((small_dataset / "images").iterdir())[:3]:
            (root / split / pair.name).write_bytes(pair.read_bytes())
            (root / f"{split}annot" / pair.name).write_bytes((small_dataset / "masks" / pair.name).read_bytes())
    (root / "valannot" / "img_001.png").unlink()
    with pytest.raises(DatasetError, match=r"img_001\.png: this image has no mask in valannot/"):
        load_dataset(root)


def test_mask_size_mismatch_names_the_mask(small_dataset):
    Image.new("L", (10, 10)).save(small_dataset / "masks" / "img_002.png")
    with pytest.raises(DatasetError, match=r"img_002\.png: the mask is 10×10 but its image is 64×64"):
        load_dataset(small_dataset)


def test_truncated_image_names_the_file(small_dataset):
    path = small_dataset / "masks" / "img_001.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DatasetError, match=r"img_001\.png: the image file is damaged or truncated"):
        load_dataset(small_dataset)


def test_text_file_named_png_is_reported_as_not_an_image(small_dataset):
    (small_dataset / "masks" / "img_003.png").write_text("hello")
    with pytest.raises(DatasetError, match=r"img_003\.png: this is not an image file"):
        load_dataset(small_dataset)


def test_mask_values_outside_classes(small_dataset):
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[5, 5] = 7
    Image.fromarray(mask).save(small_dataset / "masks" / "img_005.png")
    with pytest.raises(DatasetError, match=r"img_005\.png: mask values \[7\] are outside the classes"):
        load_dataset(small_dataset)


def test_empty_dataset(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DatasetError, match="holds no image/mask pairs"):
        load_dataset(tmp_path)


def test_unknown_layout_lists_the_layouts_we_read(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "a.txt").write_text("x")
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetError, match="no dataset layout recognised.*images/ \\+ masks/"):
        load_dataset(tmp_path)


def test_stray_files_are_skipped_with_a_warning(small_dataset):
    (small_dataset / "images" / "notes.txt").write_text("my notes")
    (small_dataset / "images" / ".DS_Store").write_bytes(b"\0")
    data = load_dataset(small_dataset)
    assert any("notes.txt" in w and "not an image" in w for w in data.warnings)


def test_duplicate_stems_are_refused(small_dataset):
    Image.new("RGB", (64, 64)).save(small_dataset / "images" / "img_000.jpg")
    with pytest.raises(DatasetError, match="two files share the name 'img_000'"):
        load_dataset(small_dataset)


def test_zip_slip_is_refused_before_extraction(tmp_path, monkeypatch):
    cache = tmp_path / "cache"  # extraction happens under the cache: '../../' from there lands in tmp_path
    monkeypatch.setenv("SEGCORE_CACHE", str(cache))
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("data/images/a.png", "written first, if anything were")
        z.writestr("../../escaped.txt", "gotcha")
    with pytest.raises(DatasetError, match="evil.zip: the entry '../../escaped.txt' points outside the archive folder"):
        load_dataset(archive)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cache", "evil.zip", "unzipped"]  # nothing written anywhere


def test_non_zip_named_zip(tmp_path):
    fake = tmp_path / "data.zip"
    fake.write_text("not a zip")
    with pytest.raises(DatasetError, match="not a valid zip archive"):
        load_dataset(fake)


def test_download_offline_fails_with_a_message_not_a_traceback(monkeypatch):
    from segcore.data import downloads

    def offline(root):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(downloads, "_pet", offline)
    with pytest.raises(DatasetError, match="download failed.*offline: use a built-in dataset"):
        load_dataset("download:pet")


def fake_pet_download(root, names=("Abyssinian_1", "Abyssinian_2", "beagle_1", "beagle_2")):
    """The layout torchvision's OxfordIIITPet leaves after its download (so none is attempted): jpgs, trimaps
    (1 pet, 2 background, 3 border) and the trainval list."""
    base = root / "downloads" / "pet" / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    trimap = np.full((24, 32), 2, np.uint8)
    trimap[6:18, 8:24] = 3
    trimap[8:16, 10:22] = 1
    lines = []
    for i, name in enumerate(names):
        Image.fromarray(np.full((24, 32, 3), 40 * i, np.uint8)).save(base / "images" / f"{name}.jpg")
        Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{name}.png")
        lines.append(f"{name} {1 + i // 2} {1 + i // 2} 1")
    (base / "annotations" / "trainval.txt").write_text("\n".join(lines) + "\n")


def test_download_pet_survives_a_killed_conversion_and_two_students_at_once(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("SEGCORE_CACHE", str(tmp_path))
    fake_pet_download(tmp_path)
    torn = tmp_path / "downloads" / "pet-folder" / "images"  # what a conversion killed half-way left before
    torn.mkdir(parents=True)
    (torn / "Abyssinian_1.jpg").symlink_to(tmp_path / "downloads" / "pet" / "oxford-iiit-pet/images/Abyssinian_1.jpg")

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: load_dataset("download:pet"), range(2))
    for data in (first, second):
        assert data.class_names == ["background", "pet"]
        assert sum(len(pairs) for pairs in data.splits.values()) == 4
    mask = np.asarray(Image.open(tmp_path / "downloads" / "pet-folder" / "masks" / "beagle_2.png"))
    assert set(np.unique(mask)) == {0, 1, 255}  # background, pet, the uncertain border ignored
    assert mask[12, 16] == 1 and mask[0, 0] == 0 and mask[7, 9] == 255
    assert not list((tmp_path / "downloads").glob(".pet-folder-*"))  # no scratch folder left behind


# -- built-in and real data ---------------------------------------------------------------------


def test_builtin_source_and_target_tasks_have_different_classes():
    target, source = load_dataset("builtin:shapes"), load_dataset("builtin:shapes-source")
    assert target.class_names != source.class_names
    assert target.num_classes == 4 and source.num_classes == 4
    report = dataset_report(target)
    assert all(share > 0.02 for share in report.pixel_share.values())  # every class really appears


@needs_camvid
def test_camvid_loads_with_its_void_ignored():
    data = load_dataset(CAMVID, ignore_index=11)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 367, "val": 101}
    report = dataset_report(data)
    assert report.value_to_class["11"] == "ignored" and len(report.classes) == 11


@needs_membrane
def test_membrane_greyscale_binary_masks_load():
    data = load_dataset(MEMBRANE)
    assert data.encoding.kind == "binary" and data.class_names == ["membrane", "cell"]
    images = data.load("val", (64, 64))
    assert images.images.shape[1] == 3 and set(images.masks.unique().tolist()) <= {0, 1}
