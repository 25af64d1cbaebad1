import math

import pytest
import torch

from segcore.models.metrics import ConfusionMatrix


def test_metrics_match_a_hand_computed_confusion_matrix():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    prediction = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    matrix = ConfusionMatrix(4)
    matrix.update(target, prediction)
    # by hand (rows truth, columns prediction), the ignored pixel left out:
    # class 0: tp 1, fn 1 (→1), fp 1 (from 2) → IoU 1/3;  class 1: tp 3, fp 1 → IoU 3/4
    # class 2: tp 1, fn 1 → IoU 1/2;  class 3: absent from truth and prediction → not in the mean
    expected = torch.tensor([[1, 1, 0, 0], [0, 3, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    assert torch.equal(matrix.matrix, expected)
    result = matrix.compute()
    assert result["per_class_iou"][:3] == pytest.approx([1 / 3, 3 / 4, 1 / 2])
    assert result["per_class_iou"][3] is None
    assert result["miou"] == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert result["pixel_accuracy"] == pytest.approx(5 / 7)
    assert result["mean_dice"] == pytest.approx((2 / 4 + 6 / 7 + 2 / 3) / 3)


def test_a_class_only_predicted_counts_with_iou_zero():
    matrix = ConfusionMatrix(3)
    matrix.update(torch.tensor([0, 0]), torch.tensor([0, 2]))
    result = matrix.compute()
    assert result["per_class_iou"] == [pytest.approx(0.5), None, 0.0]
    assert not math.isnan(result["miou"])
