"""The feature-transfer cache: a frozen encoder gives the same features for the same input every epoch,
so compute them once per distinct input (both orientations when flips are on) and train the decoder on them."""

from __future__ import annotations

from typing import Callable

import torch

from .data.dataset import ImageSet
from .models import SegmentationModel


class FeatureCache:
    def __init__(self, model: SegmentationModel, normalize: Callable, device: torch.device, autocast: Callable) -> None:
        assert model.encoder_frozen and not model.encoder_bn_trains, "only a fully frozen encoder can be cached"
        self.model, self.normalize, self.device, self.autocast = model, normalize, device, autocast
        self.store: dict[tuple[int, bool], list[torch.Tensor]] = {}

    @torch.no_grad()
    def ensure(self, images: ImageSet, flips: bool, batch_size: int, exact: bool = False) -> None:
        """Compute missing features; `exact` keeps full precision (validation: the run's reported mIoU must be
        what `eval` recomputes from the checkpoint), otherwise fp16 halves the memory (training)."""
        encoder = self.model.encoder
        was_training = encoder.training
        encoder.eval()
        for flip in (False, True) if flips else (False,):
            key = (id(images), flip)
            if key in self.store:
                continue
            levels: list[list[torch.Tensor]] = []
            for start in range(0, len(images), batch_size):
                batch = images.images[start : start + batch_size].to(self.device)
                if flip:
                    batch = batch.flip(-1)
                with self.autocast():
                    features = encoder(self.normalize(batch))
                levels.append([f if exact else f.to(torch.float16) for f in features])  # decoder casts back
            self.store[key] = [torch.cat(level) for level in zip(*levels)]
        encoder.train(was_training)

    def batch(self, images: ImageSet, indices, flip: bool) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Cached features and masks for `indices`; with flip, each sample takes a random orientation."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        masks = images.masks[index].to(self.device)
        plain = self.store[(id(images), False)]
        if not flip:
            return [level[index.to(level.device)].float() for level in plain], masks
        flipped = self.store[(id(images), True)]
        chosen = torch.rand(len(index)) < 0.5
        features = []
        for straight, mirrored in zip(plain, flipped):
            level = straight[index].clone()
            level[chosen] = mirrored[index[chosen]]
            features.append(level.float())
        masks = masks.clone()
        masks[chosen.to(masks.device)] = masks[chosen.to(masks.device)].flip(-1)
        return features, masks

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for levels in self.store.values() for t in levels)
