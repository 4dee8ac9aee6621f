"""A sync asset shows six headline numbers (plotted over runs) and every other figure in one table."""

import dagster as dg

from activation_pipeline.orchestration.headless import rates_of_the_sum
from activation_pipeline.orchestration.sync_metadata import (
    DETAILS,
    HEADLINE,
    addressable_share,
    flat_figures,
    sync_metadata,
)

FIGURES = {
    "sync_id": "incremental_20261101T000000_ab12cd34",
    "sent": 40,
    "failed": 2,
    "entered": 30,
    "exited": 10,
    "updated": 0,
    "unaddressable": 10,
    "retried": 0,
    "batches": 3,
    "duration_seconds": 1.25,
    "requests_per_second": 2.4,
}


def test_headline_numbers_and_one_table() -> None:
    """Entered, exited, sent, failed, addressable share and duration at the top; the rest in the table."""
    metadata = sync_metadata(FIGURES, "incremental")
    numbers = [name for name, value in metadata.items() if isinstance(value, int | float)]
    assert numbers == list(HEADLINE)
    assert metadata["addressable_share"] == 0.8
    table = metadata[DETAILS]
    assert isinstance(table, dg.TableMetadataValue)
    rows = {r.data["figure"]: r.data["value"] for r in table.records}
    assert rows == {
        "batches": 3.0,
        "requests_per_second": 2.4,
        "retried": 0.0,
        "unaddressable": 10.0,
        "updated": 0.0,
    }
    assert metadata["mode"] == "incremental" and metadata["sync_id"] == FIGURES["sync_id"]


def test_figures_round_trip_through_metadata() -> None:
    """The headless summary reads every figure back, the table's included, integers as integers."""
    recorded = dg.AssetMaterialization(asset_key="sync", metadata=sync_metadata(FIGURES, "resync"))
    figures = flat_figures(recorded.metadata)
    assert figures["batches"] == 3 and isinstance(figures["batches"], int)
    assert figures["sent"] == 40 and figures["requests_per_second"] == 2.4 and figures["mode"] == "resync"


def test_addressable_share_with_nothing_changed() -> None:
    """No change and nothing unaddressable is full addressability, not a division by zero."""
    assert addressable_share({}) == 1.0
    assert addressable_share({"entered": 0, "unaddressable": 4}) == 0.0


def test_summed_partitions_keep_shares_and_rates_meaningful() -> None:
    """The headless summary adds two connections' figures up; the share and the rate follow the sums."""
    summed = {"entered": 30, "exited": 10, "unaddressable": 10, "addressable_share": 1.8}
    summed |= {"requests": 10, "duration_seconds": 4.0, "requests_per_second": 6.0}
    rates_of_the_sum(summed)
    assert summed["addressable_share"] == 0.8 and summed["requests_per_second"] == 2.5
