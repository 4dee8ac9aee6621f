"""A sync's figures as Dagster metadata: a few headline numbers (plotted over runs), the rest in one table."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

Figures = Mapping[str, float | int | str]
HEADLINE = ("entered", "exited", "sent", "failed", "addressable_share", "duration_seconds")
DETAILS = "details"
_DETAIL_COLUMNS = dg.TableSchema(
    columns=[dg.TableColumn("figure", "string"), dg.TableColumn("value", "float")]
)


CHECK_DELIVERED = "delivered"
UNDELIVERED_LIMIT = 0.1
"""The share of a sync's records that may fail or wait for the next run before its check fails."""


def undelivered_share(figures: Figures) -> float:
    """Failed and deferred records over all the records the sync tried (0.0 when it tried none)."""
    sent, failed, deferred = (
        float(figures.get(name, 0)) for name in ("sent", "failed", "deferred_to_next_run")
    )
    tried = sent + failed + deferred
    return round((failed + deferred) / tried, 4) if tried else 0.0


def delivery_check(asset_key: dg.AssetKey, figures: Figures) -> dg.AssetCheckResult:
    """Fails (an error in the UI and for alerts) when more than UNDELIVERED_LIMIT of the records did not go."""
    share = undelivered_share(figures)
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=CHECK_DELIVERED,
        passed=share <= UNDELIVERED_LIMIT,
        metadata={
            "undelivered_share": share,
            "limit": UNDELIVERED_LIMIT,
            "failed": int(float(figures.get("failed", 0))),
            "deferred_to_next_run": int(float(figures.get("deferred_to_next_run", 0))),
            "stopped_early": str(figures.get("stopped_early", "no")),
        },
    )


def addressable_share(figures: Figures) -> float:
    """The share of changed profiles the destination could be sent (1.0 when nothing changed)."""
    changed = sum(float(figures.get(name, 0)) for name in ("entered", "exited", "updated"))
    unaddressable = float(figures.get("unaddressable", 0))
    return round(changed / (changed + unaddressable), 4) if changed + unaddressable else 1.0


def sync_metadata(figures: Figures, mode: str) -> dict[str, dg.RawMetadataValue]:
    """Headline numbers, the sync's mode and id, and every other numeric figure as one table."""
    numbers = {name: value for name, value in figures.items() if not isinstance(value, str)}
    numbers["addressable_share"] = addressable_share(figures)
    rows = [
        dg.TableRecord({"figure": name, "value": float(value)})
        for name, value in sorted(numbers.items())
        if name not in HEADLINE
    ]
    return {
        **{name: numbers.get(name, 0) for name in HEADLINE},
        "mode": mode,
        "sync_id": str(figures.get("sync_id", "")),
        DETAILS: dg.MetadataValue.table(rows, schema=_DETAIL_COLUMNS),
    }


def flat_figures(metadata: Mapping[str, dg.MetadataValue]) -> dict[str, float | int | str]:
    """Every figure of a materialisation, the detail table's rows included (for the headless summary)."""
    figures: dict[str, float | int | str] = {}
    for name, entry in metadata.items():
        value = getattr(entry, "value", None)
        if isinstance(entry, dg.TableMetadataValue) and name == DETAILS:
            for record in entry.records:
                row = record.data
                number = float(str(row["value"]))
                figures[str(row["figure"])] = int(number) if number.is_integer() else number
        elif isinstance(value, int | float | str) and not isinstance(value, bool):
            figures[name] = value
    return figures
