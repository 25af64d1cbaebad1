"""Class names and colours: from classes.txt or a VOC/CVAT labelmap.txt, else generated."""

from __future__ import annotations

from pathlib import Path

from ..base.errors import DatasetError
from .limits import MAX_INDEX_CLASSES

VOC_CLASSES = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]


# bright, distinct colours (Tableau 10 order) that read well over photos; class 0 is usually background
BRIGHT = [
    (60, 60, 60),
    (255, 127, 14),
    (31, 119, 180),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
    (255, 187, 120),
    (152, 223, 138),
]


def default_palette(count: int) -> list[tuple[int, int, int]]:
    """Bright colours for up to 12 classes; beyond that Pascal VOC's bit-interleaved palette."""
    if count <= len(BRIGHT):
        return BRIGHT[:count]
    return voc_palette(count)


def voc_palette(count: int) -> list[tuple[int, int, int]]:
    """Pascal VOC's bit-interleaved palette: distinct, stable colours for any class count."""
    colours = []
    for index in range(count):
        r = g = b = 0
        value = index
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colours.append((r, g, b))
    if count > 1 and colours[0] == (0, 0, 0):
        colours[0] = (40, 40, 40)  # class 0 stays visible over a dark image
    return colours


def read_classes_txt(path: Path) -> list[str]:
    names = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    names = [name for name in names if name and not name.startswith("#")]
    if not names:
        raise DatasetError(path, "the class file lists no class names", "write one class name per line")
    check_class_count(path, len(names))
    return names


def check_class_count(path, count: int) -> None:
    if count > MAX_INDEX_CLASSES:
        raise DatasetError(
            path,
            f"{count} classes are listed, more than the limit of {MAX_INDEX_CLASSES}",
            "merge or drop classes: a mask holds at most 255 classes (0…254, 255 marks ignored pixels)",
        )


def read_labelmap(path: Path) -> tuple[list[str], list[tuple[int, int, int]]]:
    """Parse `name:r,g,b:parts:actions` lines (the VOC export of CVAT and similar tools)."""
    names: list[str] = []
    colours: list[tuple[int, int, int]] = []
    line_of: dict[tuple[int, int, int], tuple[int, str]] = {}  # colour → (line number, name) that claimed it
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        try:
            rgb = tuple(int(v) for v in fields[1].split(","))
            if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
                raise ValueError
        except (IndexError, ValueError):
            raise DatasetError(
                path, f"line {number} is not of the form 'name:r,g,b::'", "fix that line or remove labelmap.txt"
            ) from None
        name = fields[0].strip()
        if rgb in line_of:  # one colour for two classes: a mask pixel could not say which it is
            first_line, first_name = line_of[rgb]
            raise DatasetError(
                path,
                f"lines {first_line} ('{first_name}') and {number} ('{name}') both use the colour {','.join(map(str, rgb))}",
                "give each class its own colour, or merge the two lines",
            )
        line_of[rgb] = (number, name)  # type: ignore[index]
        names.append(name)
        colours.append(rgb)  # type: ignore[arg-type]
    if not names:
        raise DatasetError(path, "the labelmap lists no classes", "write one 'name:r,g,b::' line per class")
    check_class_count(path, len(names))
    return names, colours


def find_class_file(root: Path) -> tuple[list[str] | None, list[tuple[int, int, int]] | None, str | None]:
    """Class names (and colours, from a labelmap) found at the dataset root, with the file they came from."""
    for candidate in ("labelmap.txt", "classes.txt", "class_names.txt"):
        path = root / candidate
        if path.is_file():
            if candidate == "labelmap.txt":
                names, colours = read_labelmap(path)
                return names, colours, candidate
            return read_classes_txt(path), None, candidate
    return None, None, None
