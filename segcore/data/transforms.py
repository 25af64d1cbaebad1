"""Joint image+mask augmentation with torchvision.transforms.v2, and normalisation from timm's data config."""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

AUGMENTATIONS = {
    "none": "no augmentation",
    "flip": "random horizontal flip",
    "full": "random scale-crop (50–100 % of the area), horizontal flip, colour jitter",
}


def make_augmentation(kind: str, size: tuple[int, int], crop: bool = False) -> v2.Transform:
    """The training augmentation; `crop`: the stored images are larger than the training size (resize 'crop', which
    keeps the aspect), and each sample first gets a random window of the training size, its mask the same window."""
    if crop:
        return v2.Compose([v2.RandomCrop(size), make_augmentation(kind, size)])
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation '{kind}': choose one of {sorted(AUGMENTATIONS)}")
    if kind == "none":
        return v2.Identity()
    if kind == "flip":
        return v2.RandomHorizontalFlip()
    aspect = size[1] / size[0]
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.5, 1.0), ratio=(aspect * 0.8, aspect * 1.25), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.2, hue=0.02),
        ]
    )


def augment_batch(
    transform: v2.Transform, images: torch.Tensor, masks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample gets its own random draw; the mask follows its image's geometry (nearest-neighbour)."""
    if isinstance(transform, v2.Identity):
        return images, masks
    out_images, out_masks = [], []
    for image, mask in zip(images, masks):
        image, mask = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        out_images.append(image.as_subclass(torch.Tensor))
        out_masks.append(mask.as_subclass(torch.Tensor))
    return torch.stack(out_images), torch.stack(out_masks)


class Normalizer:
    """uint8 (N,3,H,W) → float, normalised with the backbone's own mean and std."""

    def __init__(self, mean, std, device: torch.device | str = "cpu") -> None:
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() - self.mean) / self.std
