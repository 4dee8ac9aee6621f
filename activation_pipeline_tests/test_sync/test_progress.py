"""Sync progress: batches done of the total, and an estimate of the time left from the pace so far."""

from activation_pipeline.sync.runner import Progress


def test_progress_counts_batches_and_estimates_time_left() -> None:
    """Before any batch there is no estimate; after half the records, the rest is estimated from the pace."""
    tracker = Progress(total_batches=4, records=400, started=0.0)
    assert tracker.seconds_left is None
    assert tracker.describe() == "batches 0/4 (0/400 records)"
    tracker.batch_done(100)
    tracker.batch_done(100)
    left = tracker.seconds_left
    assert left is not None and left >= 0
    assert tracker.describe().startswith("batches 2/4 (200/400 records), about ")
