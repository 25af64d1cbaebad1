"""How far is a dataset from what the pretrained encoder was trained on? A measured distance, for the lesson
"transfer helps less the further the domain".

The ImageNet images themselves are not here, but statistics of them are: every BatchNorm layer's running mean and
running variance are the per-channel mean and variance of its input over ImageNet training batches. We feed the
dataset's images through the frozen pretrained encoder and express each BatchNorm layer's input in the units
ImageNet gave it: z = (x − running_mean) / √(running_var + eps). On ImageNet-like images z has mean 0 and variance
about 1 in every channel of every layer; that standard Gaussian is the "ImageNet" anchor.

The distance is the Fréchet distance between the dataset's Gaussian of z and the anchor N(0, I), per channel,
averaged over the channels of every BatchNorm layer of the encoder:

    d = 1/L · Σ_layers 1/C · Σ_c [ m_c² + (s_c − 1)² ]

where m_c is channel c's mean over the dataset and s_c its standard deviation over all positions (the running
variance measures per-position spread: pooled vectors would shrink it and read as "far" for every dataset).
Covariances are diagonal because the anchor knows only variances. 0 means "looks like ImageNet to this encoder".

Every layer, not only the last: early layers see colour and texture, late ones objects. The last layer alone
(the first version of this meter) put CamVid's street scenes (0.33) and 48 horse photos further from ImageNet than
the flat-coloured synthetic shapes (0.29); over every layer natural photos, CamVid, the shapes and microscopy
fall in that order for both lite0 and lite1 (bench/README.md, "Domain distance").

A bare number means little, so a distance comes with reference points measured the same way (same backbone and
size): the built-in shapes, and, where their folders are present, CamVid street scenes and membrane microscopy.
Results are cached per dataset content, backbone, weights and size under <cache>/domain/.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..base.errors import SegcoreError
from ..base.paths import cache_dir, reference_data_dir

METHOD_VERSION = 2  # part of the cache key: a change in how the distance is computed must not reuse old values
DEFAULT_SIZE = 160  # the training default: what runs see
DEFAULT_MAX_IMAGES = 100
BATCH = 25
STREET, MICROSCOPY, SHAPES = "street scenes (CamVid)", "microscopy (membrane)", "built-in shapes"


@dataclass(frozen=True)
class ReferenceDataset:
    name: str
    source: str  # builtin:NAME, or a folder name under the reference data folder
    ignore_index: int | None = 255


REFERENCES = (
    ReferenceDataset(SHAPES, "builtin:shapes"),
    ReferenceDataset(STREET, "camvid", ignore_index=11),
    ReferenceDataset(MICROSCOPY, "membrane"),
)


class DomainError(SegcoreError):
    pass


@dataclass(frozen=True)
class DomainDistance:
    """A dataset's distance from the encoder's ImageNet statistics, with reference points measured the same way."""

    value: float
    reference_points: dict[str, float] = field(default_factory=dict)
    backbone: str = ""
    size: int = DEFAULT_SIZE
    images: int = 0
    seconds: float = 0.0  # computing this dataset's value (0 when read from the cache)
    cached: bool = False
    missing_references: tuple[str, ...] = ()  # reference datasets not present on this machine

    def is_far(self) -> bool | None:
        """Further than halfway from street scenes to microscopy (None without both reference points)."""
        street, micro = self.reference_points.get(STREET), self.reference_points.get(MICROSCOPY)
        if street is None or micro is None:
            return None
        return self.value > (street + micro) / 2

    def nearest_reference(self) -> str | None:
        if not self.reference_points:
            return None
        return min(self.reference_points, key=lambda name: abs(self.reference_points[name] - self.value))

    def sentence(self) -> str:
        """What the number means, for a student."""
        nearest = self.nearest_reference()
        where = f"; closest to the reference point '{nearest}'" if nearest else ""
        if nearest and self.reference_points[nearest] == self.value:  # measured on the same images
            where = f"; the same as the reference point '{nearest}': these are its images"
        far = self.is_far()
        verdict = (
            ""
            if far is None
            else " — a far domain: ImageNet features fit it less well"
            if far
            else " — a near domain: ImageNet features fit it well"
        )
        return f"distance {self.value:.2f} from ImageNet (to {self.backbone} at {self.size} px){where}{verdict}"


def encoder_batchnorms(encoder: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm of the encoder that carries running statistics (ImageNet's, for a pretrained one)."""
    found = [
        module
        for module in encoder.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None
    ]
    if not found:
        raise DomainError(
            "this backbone has no BatchNorm statistics to compare with ImageNet; "
            "pick an EfficientNet, MobileNet, ResNet or RegNet backbone"
        )
    return found


def _evenly_spaced(count: int, limit: int) -> list[int]:
    if count <= limit:
        return list(range(count))
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)}) if limit > 1 else [0]


_FILE_DIGESTS: dict[tuple[str, int, int], bytes] = {}


def _file_digest(path: Path) -> bytes:
    """An image's content hash, read once per process while its size and modification time stay the same (every
    new page session asks for the stored distance: the images are not read again each time)."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = hashlib.sha256(path.read_bytes()).digest()
    return _FILE_DIGESTS[key]


def _content_key(paths: list[Path], backbone: str, weights: str, size: int) -> str:
    digest = hashlib.sha256(f"v{METHOD_VERSION}|{backbone}|{weights}|{size}".encode())
    for path in paths:
        digest.update(_file_digest(path))
    return digest.hexdigest()[:32]


_ENCODERS: dict[str, tuple[nn.Module, str, dict]] = {}


def pretrained_encoder(backbone: str) -> tuple[nn.Module, str, dict]:
    """(frozen ImageNet encoder in eval mode, where its weights came from, its normalisation), built once."""
    if backbone not in _ENCODERS:
        from ..models import build

        model, origin = build(backbone, 2, pretrained=True)
        model.eval()
        _ENCODERS[backbone] = (model.encoder, origin, model.data_config())
    return _ENCODERS[backbone]


class _WhitenedMoments:
    """One BatchNorm layer's input statistics per channel, merged batch by batch (Chan's parallel formula, so a
    batch's mean and variance come from one fused pass), expressed in ImageNet units at the end."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm):
        self.bn = bn
        self.count = 0
        self.mean = self.m2 = 0.0  # float64 tensors after the first batch

    def __call__(self, module, inputs, output) -> None:
        x = inputs[0]
        variance, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
        count = x.numel() // x.shape[1]
        mean, m2 = mean.double(), variance.double() * count
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.count * count / total)
        self.count = total

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of z = (x − running_mean) / √(running_var + eps)."""
        scale = (self.bn.running_var.double() + self.bn.eps).sqrt()
        mean = (self.mean - self.bn.running_mean.double()) / scale
        return mean, (self.m2 / self.count).clamp(min=0).sqrt() / scale


@torch.no_grad()
def layer_moments(encoder: nn.Module, normalizer, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(mean, std) per channel of every BatchNorm layer's input in ImageNet units, over the images' positions."""
    moments = [_WhitenedMoments(bn) for bn in encoder_batchnorms(encoder)]
    hooks = [m.bn.register_forward_hook(m) for m in moments]
    try:
        for start in range(0, len(images), BATCH):
            encoder(normalizer(images[start : start + BATCH]))
    finally:
        for hook in hooks:
            hook.remove()
    return [m.mean_std() for m in moments]


def frechet_to_anchor(mean: torch.Tensor, std: torch.Tensor) -> float:
    """Fréchet distance between N(mean, diag(std²)) and N(0, I), per channel."""
    return float(((mean * mean) + (std - 1) ** 2).mean())


def distance_over_layers(moments: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """The meter's number: each layer's per-channel Fréchet distance to the anchor, averaged over the layers."""
    return sum(frechet_to_anchor(mean, std) for mean, std in moments) / len(moments)


def _cached_value_path(data, backbone: str, size: int, max_images: int, split: str) -> tuple[Path, list[int]]:
    """Where a dataset's value is kept (keyed by the chosen images' bytes, backbone, weights and size), and those
    images' indices."""
    from ..models.weights import default_origin

    pairs = data.pairs(split)
    indices = _evenly_spaced(len(pairs), max_images)
    # the weights' origin as loading them would name it, without building the encoder (a page asks this at start-up)
    key = _content_key([pairs[i].image for i in indices], backbone, default_origin(backbone) or "none", size)
    return cache_dir() / "domain" / f"{key}.json", indices


def _read_cached(path: Path) -> tuple[float, int] | None:
    try:
        stored = json.loads(path.read_text())
        return float(stored["value"]), int(stored["images"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def dataset_value(
    data, backbone: str, size: int = DEFAULT_SIZE, max_images: int = DEFAULT_MAX_IMAGES, split: str = "train"
) -> tuple[float, int, float, bool]:
    """(distance, images used, seconds, read from the cache) for one dataset: up to max_images evenly spaced images
    of a split, resized to size × size as training does."""
    from ..data.transforms import Normalizer

    cached, indices = _cached_value_path(data, backbone, size, max_images, split)
    stored = _read_cached(cached)
    if stored is not None:
        return stored[0], stored[1], 0.0, True
    encoder, origin, normalisation = pretrained_encoder(backbone)
    started = time.perf_counter()
    images = data.load_subset(split, (size, size), indices).images
    value = distance_over_layers(layer_moments(encoder, Normalizer(**normalisation), images))
    seconds = time.perf_counter() - started
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(
        json.dumps(
            {
                "value": value,
                "images": len(indices),
                "backbone": backbone,
                "size": size,
                "weights": origin,
                "source": str(data.source),
                "seconds": seconds,
            }
        )
    )
    partial.replace(cached)  # atomic: another process may be writing the same key
    return value, len(indices), seconds, False


_REFERENCE_DATA: dict[tuple[str, str], object] = {}


def load_reference(reference: ReferenceDataset):
    """The reference dataset, or None when its folder is not on this machine. Scanned once per process: the
    reference folders do not change while a server runs, and a page asks on every rerun."""
    from ..data.dataset import load_dataset

    folder = reference_data_dir() / reference.source
    key = (reference.source, str(folder))
    if key not in _REFERENCE_DATA:
        if reference.source.startswith("builtin:"):
            _REFERENCE_DATA[key] = load_dataset(reference.source)
        else:
            _REFERENCE_DATA[key] = (
                load_dataset(folder, ignore_index=reference.ignore_index) if folder.is_dir() else None
            )
    return _REFERENCE_DATA[key]


def reference_points(
    backbone: str,
    size: int = DEFAULT_SIZE,
    max_images: int = DEFAULT_MAX_IMAGES,
    measure: bool = True,
) -> tuple[dict[str, float], tuple[str, ...]] | None:
    """({reference name: distance}, names of the references not present here). measure=False: only what the cache
    holds, None when a present reference has not been measured yet."""
    points, missing = {}, []
    for reference in REFERENCES:
        data = load_reference(reference)
        if data is None:
            missing.append(reference.name)
        elif measure:
            points[reference.name] = dataset_value(data, backbone, size, max_images)[0]
        else:
            stored = _read_cached(_cached_value_path(data, backbone, size, max_images, "train")[0])
            if stored is None:
                return None
            points[reference.name] = stored[0]
    return points, tuple(missing)


def domain_distance(
    data,
    backbone: str = "tf_efficientnet_lite0",
    size: int = DEFAULT_SIZE,
    max_images: int = DEFAULT_MAX_IMAGES,
    with_references: bool = True,
) -> DomainDistance:
    """The distance of `data` (a SegmentationData) from the encoder's ImageNet statistics, with reference points."""
    value, images, seconds, cached = dataset_value(data, backbone, size, max_images)
    points, missing = reference_points(backbone, size, max_images) if with_references else ({}, ())
    return DomainDistance(value, points, backbone, size, images, seconds, cached, missing)


def stored_distance(
    data, backbone: str = "tf_efficientnet_lite0", size: int = DEFAULT_SIZE, max_images: int = DEFAULT_MAX_IMAGES
) -> DomainDistance | None:
    """The distance as measured before (by anyone, on the same images, backbone and size), read from the cache
    without running the encoder; None when this dataset or a present reference has not been measured yet."""
    stored = _read_cached(_cached_value_path(data, backbone, size, max_images, "train")[0])
    references = reference_points(backbone, size, max_images, measure=False) if stored is not None else None
    if references is None:
        return None
    points, missing = references
    return DomainDistance(stored[0], points, backbone, size, stored[1], 0.0, True, missing)


def to_dict(distance: DomainDistance) -> dict:
    return asdict(distance)
