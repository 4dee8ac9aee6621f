"""The size_change check's description says which way an audience moved, as the README shows it:
`cart_abandoners: 109 -> 0 (-100%, limit 50%)` (a shrinking audience is a negative change)."""

from activation_pipeline.compute.audiences import AudienceResult
from activation_pipeline.orchestration.compute_assets import _size_change_text


def _result(previous_size: int | None, size: int) -> AudienceResult:
    return AudienceResult(
        key="cart_abandoners", level="profile", size=size, previous_size=previous_size,
        entered=0, exited=0, duplicates=0, max_size_change=0.5,
    )  # fmt: skip


def test_a_shrinking_audience_reads_as_a_negative_change() -> None:
    assert _size_change_text(_result(109, 0)) == "cart_abandoners: 109 -> 0 (-100%, limit 50%)"


def test_a_growing_audience_reads_as_a_positive_change() -> None:
    assert _size_change_text(_result(100, 160)) == "cart_abandoners: 100 -> 160 (+60%, limit 50%)"


def test_the_first_evaluation_says_so() -> None:
    assert _size_change_text(_result(None, 117)) == "cart_abandoners: first evaluation, size 117"
