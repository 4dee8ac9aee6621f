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
