"""Run observers that log to the W&B or MLflow run the user already has open.

They are what a callback's ``wandb_integration`` / ``mlflow_integration`` flags attach. Each does
nothing while no run of its tracker is active. The lifecycle wraps every call in the failure
policy, so a tracker that fails costs a warning and a count, never the training run.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Mapping

from hf_eco2ai.reporting.summary import final_summary


class WandbActiveRunObserver:
    """Logs the figures at each log (without committing W&B's step) and, at the end, the summary
    with its provenance and the report files."""

    def on_run_start(self, session: Any) -> None:
        return None

    def on_log(self, figures: Mapping[str, float], step: int) -> None:
        wandb = importlib.import_module("wandb")
        if wandb.run is not None:
            wandb.run.log(dict(figures), commit=False)

    def on_run_end(self, report: Mapping[str, Any], report_paths: Mapping[str, Path]) -> None:
        wandb = importlib.import_module("wandb")
        if wandb.run is None:
            return
        wandb.run.summary.update(final_summary(report))
        for path in report_paths.values():
            wandb.save(str(path), base_path=str(path.parent), policy="now")


class MlflowActiveRunObserver:
    """Logs the figures at each log and, at the end, numeric summary figures as metrics, the
    provenance as params and the report files as artifacts under ``carbon_reports``."""

    def on_run_start(self, session: Any) -> None:
        return None

    def on_log(self, figures: Mapping[str, float], step: int) -> None:
        mlflow = importlib.import_module("mlflow")
        if mlflow.active_run() is not None:
            mlflow.log_metrics(dict(figures), step=step)

    def on_run_end(self, report: Mapping[str, Any], report_paths: Mapping[str, Path]) -> None:
        mlflow = importlib.import_module("mlflow")
        if mlflow.active_run() is None:
            return
        summary = final_summary(report)
        mlflow.log_metrics({key: value for key, value in summary.items() if isinstance(value, (int, float))})
        mlflow.log_params({key: value for key, value in summary.items() if isinstance(value, str)})
        for path in report_paths.values():
            mlflow.log_artifact(str(path), artifact_path="carbon_reports")
