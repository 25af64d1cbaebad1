"""Why thin and rare CamVid classes score ~0: what the data allows before any model is trained.

    python bench/thin_classes.py            # tuning split of CamVid train (never val)

1. Pixel share of each class in the training part (what the loss sees).
2. Resolution ceiling: each tuning mask resized nearest-neighbour to H×W (as training decodes masks) and back
   to 360×480, scored per class against the original: the best IoU any model predicting at H×W can reach.
   Our decoder predicts at stride 2 (logits at H/2×W/2, then bilinear), so 192×256 training means a 96×128 map.
Writes bench/results/thin-classes.json.
"""

from __future__ import annotations

import numpy as np
import torch
from common import CAMVID, print_table, write_results
from PIL import Image

from segcore import load_dataset
from segcore.data.eval_splits import protocol_view
from segcore.data.files import read_mask_raw
from segcore.models.metrics import ConfusionMatrix

SIZES = [(96, 128), (144, 192), (192, 256), (288, 384)]


def main() -> None:
    data = protocol_view(load_dataset(CAMVID, ignore_index=11), "tune")
    names = data.class_names
    train = data.load("train", (192, 256)).masks
    counts = torch.bincount(train[train != 255].long(), minlength=len(names))[: len(names)].double()
    share = (counts / counts.sum()).tolist()
    presence = [(train == c).flatten(1).any(1).float().mean().item() for c in range(len(names))]
    masks = [data.encoding.apply(read_mask_raw(p.mask), p.mask) for p in data.pairs("val")]
    ceilings = {}
    for h, w in SIZES:
        matrix = ConfusionMatrix(len(names))
        for mask in masks:
            small = Image.fromarray(mask).resize((w, h), Image.NEAREST)
            back = np.asarray(small.resize((mask.shape[1], mask.shape[0]), Image.NEAREST))
            back = np.where(
                back == 255, 0, back
            )  # an ignored pixel carried onto a labelled one: count it wrong (as sky)
            matrix.update(torch.from_numpy(mask), torch.from_numpy(back))
        result = matrix.compute()
        ceilings[f"{h}x{w}"] = {"miou": result["miou"], "per_class": dict(zip(names, result["per_class_iou"]))}
    rows = [
        {
            "class": n,
            "pixel share %": 100 * share[i],
            "in % of images": 100 * presence[i],
            **{f"ceiling {k}": v["per_class"][n] for k, v in ceilings.items()},
        }
        for i, n in enumerate(names)
    ]
    rows.append({"class": "mIoU", **{f"ceiling {k}": v["miou"] for k, v in ceilings.items()}})
    print(f"{data.split_origin}\nresolution ceiling: masks resized nearest to H×W and back, IoU against the original")
    print_table(rows, list(rows[0]))
    write_results("thin-classes", {"split": data.split_origin, "rows": rows})


if __name__ == "__main__":
    main()
