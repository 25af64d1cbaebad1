import pytest
import torch

from segcore.models.losses import class_balance_weights, segmentation_loss


def test_median_frequency_weights_favour_rare_classes_and_skip_ignored_and_absent_ones():
    # class 0: 4 pixels, class 1: 2, class 2: 1, class 3: none; 255 is ignored and must not count
    masks = torch.tensor([[0, 0, 0, 0, 1, 1, 2, 255, 255, 255]], dtype=torch.uint8)
    weights = class_balance_weights(masks, 4)
    # frequencies 4/7, 2/7, 1/7 → median 2/7 → weights 0.5, 1, 2; absent class → 0
    assert weights.tolist() == pytest.approx([0.5, 1.0, 2.0, 0.0])


def test_median_frequency_weights_are_capped():
    masks = torch.zeros(1, 1000, dtype=torch.uint8)
    masks[0, :2] = 1
    masks[0, 2:4] = 2  # two rare classes: the median is theirs, so class 0 is down-weighted, not the rare ones up
    masks[0, 4] = 3
    weights = class_balance_weights(masks, 4, max_weight=1.5)
    assert weights.max() <= 1.5
    assert weights[0] < weights[1] <= weights[3]


def test_balanced_loss_counts_a_missed_rare_class_more_than_plain_cross_entropy():
    target = torch.zeros(1, 4, 4, dtype=torch.uint8)
    target[0, 0, 0] = 1  # one rare pixel
    logits = torch.zeros(1, 2, 4, 4)
    logits[:, 0] = 3.0  # the model says "class 0" everywhere: right 15 times, wrong on the rare pixel
    plain = segmentation_loss(logits, target)
    balanced = segmentation_loss(logits, target, class_weights=class_balance_weights(target, 2))
    assert balanced > plain


def test_sqrt_weighting_is_the_milder_square_root_of_balanced():
    masks = torch.tensor([[0] * 16 + [1] * 4 + [2]], dtype=torch.uint8)
    balanced = class_balance_weights(masks, 3)
    milder = class_balance_weights(masks, 3, power=0.5)
    assert milder.tolist() == pytest.approx(balanced.sqrt().tolist())
    assert milder[2] < balanced[2] and milder[0] > balanced[0]


def test_an_unknown_class_weighting_is_refused_with_the_choices():
    from segcore import TrainingFailed
    from segcore.models.losses import class_weights_for

    masks = torch.zeros(1, 4, dtype=torch.uint8)
    assert class_weights_for("none", masks, 2) is None
    with pytest.raises(TrainingFailed, match="choose one of auto, none, balanced, sqrt"):
        class_weights_for("inverse", masks, 2)


def test_the_default_weighting_is_plain_cross_entropy_for_two_classes_and_sqrt_for_more():
    from segcore import TrainConfig
    from segcore.models.losses import class_weights_for

    assert TrainConfig().class_weights == "auto"
    binary = torch.tensor([[0] * 30 + [1] * 2], dtype=torch.uint8)
    assert class_weights_for("auto", binary, 2) is None  # a two-class task trains as smp's peer does
    several = torch.tensor([[0] * 16 + [1] * 4 + [2]], dtype=torch.uint8)
    assert class_weights_for("auto", several, 3).tolist() == pytest.approx(
        class_weights_for("sqrt", several, 3).tolist()
    )
    assert class_weights_for("sqrt", binary, 2) is not None  # chosen by hand, it is kept


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: masks kept on the device")
def test_class_weights_from_masks_kept_on_the_gpu():
    masks = torch.tensor([[0, 0, 1, 2]], dtype=torch.uint8, device="cuda")
    assert torch.equal(class_balance_weights(masks, 3), class_balance_weights(masks.cpu(), 3))
