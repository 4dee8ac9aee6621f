"""One workspace's predictive trait assets: per trait a model (retrained on its cadence, or now with the run
tag `activation/retrain=true`) with its held-out figures, and the scores the audiences and syncs read.

The model asset is materialised when a model is trained, and only then, so its numeric metadata (AUC or
R²/MAE, base rate, calibration gap, training rows, ...) is one point per model in the asset's Plots tab: the
model's quality over time. A run that reuses the newest model records an observation on the model asset
instead (which model, how old). Metadata holds figures only, never identifiers or scores of a person.
"""

from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg

from activation_pipeline.compute.predictive import PredictiveResult
from activation_pipeline.config import Workspace
from activation_pipeline.orchestration.resources import ComputeResource, StateStoreResource
from activation_pipeline.orchestration.runs import as_of_from_context, workspace_for_run
from activation_pipeline.orchestration.scope import TRAITS, Scope

RETRAIN_TAG = "activation/retrain"
"""Run tag: `true` retrains every predictive model now instead of when its `retrain` age is reached."""
KINDS = {"sql", "scikitlearn"}


def model_key(scope: Scope, key: str) -> dg.AssetKey:
    """The model asset of a predictive trait: `<workspace>/models/<key>`."""
    return scope.key("models", key)


def score_keys(scope: Scope, workspace: Workspace) -> dict[str, dg.AssetKey]:
    """Trait key (score and percentile) -> the scores asset holding it: `<workspace>/traits/<key>`."""
    return {k: scope.key("traits", t.key) for t in workspace.traits.predictive for k in t.trait_keys}


PLOTTED = (
    "auc",
    "r2",
    "mae",
    "base_rate",
    "mean_value",
    "calibration_gap",
    "training_rows",
    "test_rows",
    "population",
    "features",
    "training_seconds",
)
"""The model's numeric figures, plotted per materialisation (one per trained model) by Dagster."""


def calibration_gap(calibration: list[dict[str, Any]]) -> float | None:
    """Mean absolute gap between predicted and observed over the deciles, weighted by rows (0 is perfect)."""
    rows = sum(int(c["rows"]) for c in calibration)
    if not rows:
        return None
    gap = sum(int(c["rows"]) * abs(float(c["predicted"]) - float(c["observed"])) for c in calibration)
    return round(gap / rows, 4)


def _model_metadata(result: PredictiveResult) -> dict[str, Any]:
    figures = {**result.figures, "calibration_gap": calibration_gap(result.figures.get("calibration", []))}
    numbers: dict[str, Any] = {
        k: dg.MetadataValue.int(v) if isinstance(v, int) else dg.MetadataValue.float(float(v))
        for k in PLOTTED
        if (v := figures.get(k)) is not None
    }
    return {
        **numbers,
        "retrained": result.retrained,
        "trained_as_of": result.trained_as_of.isoformat(),
        "cutoff": str(figures.get("cutoff", "")),
        "calibration": dg.MetadataValue.table(
            [dg.TableRecord(row) for row in figures.get("calibration", [])],
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("decile", "int"),
                    dg.TableColumn("rows", "int"),
                    dg.TableColumn("predicted", "float"),
                    dg.TableColumn("observed", "float"),
                ]
            ),
        ),
        "importances": dg.MetadataValue.table(
            [dg.TableRecord(row) for row in figures.get("importances", [])],
            schema=dg.TableSchema(
                columns=[dg.TableColumn("feature", "string"), dg.TableColumn("importance", "float")]
            ),
        ),
    }


def build_predictive_assets(scope: Scope, workspace: Workspace, path: str) -> Sequence[dg.AssetsDefinition]:
    """The model and scores assets of every predictive trait (none when the workspace has none)."""
    traits = workspace.traits.predictive
    if not traits:
        return []
    upstream = [scope.key("workspace_config"), scope.key("profiles")]
    specs = []
    for trait in traits:
        specs.append(
            dg.AssetSpec(
                model_key(scope, trait.key),
                deps=upstream,
                group_name=scope.group(TRAITS),
                kinds=KINDS,
                description=f"Model of predictive trait `{trait.key}` ({trait.kind}, horizon "
                f"{trait.horizon.days}d) with its held-out figures (Plots: one point per trained model); "
                f"retrained every {trait.retrain.days}d.",
                # Materialised only by a run that trains it; the other runs observe which model they used.
                skippable=True,
            )
        )
        specs.append(
            dg.AssetSpec(
                scope.key("traits", trait.key),
                deps=[model_key(scope, trait.key)],
                group_name=scope.group(TRAITS),
                kinds=KINDS,
                description=f"Predictive trait `{trait.key}` and `{trait.key}_percentile` of every profile in "
                "its population as of the run's time.",
            )
        )

    @dg.multi_asset(name=f"{scope.ident}__predictive_traits", specs=specs)
    def predictive_traits(
        context: dg.AssetExecutionContext, state: StateStoreResource, compute: ComputeResource
    ) -> Iterator[dg.MaterializeResult]:
        """Train the models that are due (or all, with the retrain tag) and score as of the run's time."""
        as_of = as_of_from_context(context)
        retrain = context.run.tags.get(RETRAIN_TAG, "").lower() == "true"
        with compute.pipeline(workspace_for_run(context, path, state)) as pipeline:
            summary = pipeline.predictive_traits(as_of, retrain=retrain)
        for result in summary.traits:
            if result.retrained:
                yield dg.MaterializeResult(
                    asset_key=model_key(scope, result.key), metadata=_model_metadata(result)
                )
            else:
                age = (
                    as_of.replace(tzinfo=None) - result.trained_as_of.replace(tzinfo=None)
                ).total_seconds() / 86400
                context.log_event(
                    dg.AssetObservation(
                        asset_key=model_key(scope, result.key),
                        metadata={
                            "retrained": False,
                            "trained_as_of": result.trained_as_of.isoformat(),
                            "model_age_days": round(age, 3),
                            "has_model": bool(result.figures.get("training_rows")),
                        },
                    )
                )
            yield dg.MaterializeResult(
                asset_key=scope.key("traits", result.key),
                metadata={
                    "as_of": as_of.isoformat(),
                    "dagster/row_count": result.scored,
                    "scored_profiles": result.scored,
                    "scoring_seconds": result.scoring_seconds,
                    "changed_profiles": summary.changed,
                },
            )

    return [predictive_traits]
