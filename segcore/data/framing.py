"""How an image meets a training size: squashed to it (the aspect lost), or covered keeping the aspect (the resize
`resize: crop` asks for: resized by one factor until it covers the size, the middle cut out for splits stored at one
size; training then takes random crops of the training size from them, scoring takes the whole image).

A split trained with crops is stored at the *framed size*: the training size grown to the aspect of the dataset's
typical image (CamVid's 4:3 frames at 256×256 are stored at 256×341), so a 4:3 street scene keeps its shapes and
only images of another aspect lose a strip of their border."""

from __future__ import annotations

SQUASH, COVER = "squash", "cover"


def framed_size(size: tuple[int, int], typical: tuple[int, int]) -> tuple[int, int]:
    """(H, W): `size` grown along one side to the aspect of a typical (width, height) image, never shrunk."""
    height, width = size
    typical_width, typical_height = typical
    scale = max(height / typical_height, width / typical_width)
    return max(height, round(typical_height * scale)), max(width, round(typical_width * scale))


def cover_box(image_size: tuple[int, int], size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((W', H') to resize an image of (width, height) to, keeping its aspect, so it covers size=(H, W); (top, left)
    of the H×W window in its middle)."""
    width, height = image_size
    target_height, target_width = size
    scale = max(target_height / height, target_width / width)
    resized = (max(target_width, round(width * scale)), max(target_height, round(height * scale)))
    return resized, ((resized[1] - target_height) // 2, (resized[0] - target_width) // 2)
