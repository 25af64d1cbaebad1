"""The advice changes the way its rules say when one input changes (segcore/advice.py); fast, no training."""

from segcore.teaching.advice import FEW_IMAGES, PLENTY_IMAGES, advise, estimated_seconds
from segcore.teaching.domain import MICROSCOPY, STREET, DomainDistance

REFERENCES = {STREET: 0.33, MICROSCOPY: 0.72}
NEAR = DomainDistance(0.30, REFERENCES, "tf_efficientnet_lite0")
FAR = DomainDistance(0.80, REFERENCES, "tf_efficientnet_lite0")
# seconds per run: feature transfer three times faster, as on the reference CPU
SPEEDS = {"scratch": 300.0, "parameter": 300.0, "feature": 100.0, "structure": 300.0}


def test_few_images_get_feature_transfer_and_more_images_parameter_transfer():
    few = advise(FEW_IMAGES // 2, NEAR, None, "cpu", SPEEDS)
    moderate = advise(FEW_IMAGES * 6, NEAR, None, "cpu", SPEEDS)
    assert few.strategy == "feature"
    assert moderate.strategy == "parameter"
    assert few.comparison_to_run.strategies != [] and "feature" in few.comparison_to_run.strategies


def test_a_far_domain_turns_feature_transfer_into_fine_tuning():
    near = advise(20, NEAR, None, "cpu", SPEEDS)
    far = advise(20, FAR, None, "cpu", SPEEDS)
    assert (near.strategy, far.strategy) == ("feature", "parameter")
    assert any("far from ImageNet" in reason for reason in far.reasons)
    assert "scratch" in far.comparison_to_run.strategies  # far: is ImageNet worth anything here? test it


def test_plenty_of_data_far_from_imagenet_makes_scratch_competitive_only_on_a_gpu():
    cpu = advise(PLENTY_IMAGES * 2, FAR, None, "cpu", SPEEDS)
    gpu = advise(PLENTY_IMAGES * 2, FAR, None, "cuda", SPEEDS)
    assert cpu.strategy == "parameter"
    assert gpu.strategy == "scratch"
    assert set(gpu.comparison_to_run.strategies) >= {"scratch", "parameter"}


def test_a_tight_time_budget_picks_the_fastest_strategy_that_fits():
    loose = advise(300, NEAR, 1000.0, "cpu", SPEEDS)
    tight = advise(300, NEAR, 150.0, "cpu", SPEEDS)
    assert loose.strategy == "parameter"
    assert tight.strategy == "feature"
    assert any("budget" in reason for reason in tight.reasons)
    impossible = advise(300, NEAR, 10.0, "cpu", SPEEDS)
    assert impossible.strategy == "feature" and any("No strategy fits" in r for r in impossible.reasons)


def test_a_matching_source_run_makes_structure_transfer_the_advice():
    without = advise(16, NEAR, None, "cpu", SPEEDS)
    with_source = advise(16, NEAR, None, "cpu", SPEEDS, source_run_available=True)
    assert (without.strategy, with_source.strategy) == ("feature", "structure")
    assert "structure" in with_source.comparison_to_run.strategies
    assert "structure" not in without.comparison_to_run.strategies


def test_an_unmeasured_domain_is_said_so_and_reasons_read_as_sentences():
    advice = advise(20, None, None, "cpu", SPEEDS)
    assert any("not measured" in reason for reason in advice.reasons)
    assert all(reason[0].isupper() and reason.rstrip().endswith(".") for reason in advice.reasons)


def test_default_speeds_come_from_the_machine_estimate():
    seconds = estimated_seconds(96)
    assert seconds["feature"] < seconds["parameter"]  # the reference speeds: a frozen encoder is cheaper
    assert advise(96, NEAR, None, "cpu").seconds == seconds
