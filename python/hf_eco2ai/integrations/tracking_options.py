"""What the Trainer and Lightning callbacks share: their options, validated once, and the work
they do at the end of a run (report files, W&B and MLflow logging).

Imports no framework: the callbacks import transformers or lightning; this module stays plain.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.session.distributed import NODE_WIDE_SOURCES
from hf_eco2ai.errors import ConfigurationError

TRACKING_FREQUENCIES = ("step", "epoch", "batch")
REPORT_FORMATS = ("json", "html", "csv", "markdown")
_ALL_REPORT_FORMATS = ("json", "html", "csv", "csv-summary", "markdown")
_FILE_SUFFIXES = {"json": ".json", "html": ".html", "csv": ".steps.csv", "csv-summary": ".summary.csv",
                  "markdown": ".md"}
_INTEGRATION_PACKAGES = {"wandb_integration": "wandb", "mlflow_integration": "mlflow"}


def _require_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} = {value!r} is invalid: expected True or False")
    return value


def _infrastructure_sources(sources: Tuple[str, ...]) -> Tuple[str, ...]:
    """``sources`` without the node's CPU/DRAM sensors (``auto`` stays: the session then leaves
    the host out of it)."""
    if sources == ("auto",):
        return sources
    kept = tuple(source for source in sources if source not in NODE_WIDE_SOURCES)
    if not kept:
        raise ConfigurationError(
            f"include_infrastructure = False leaves no source of sources = {list(sources)!r}: "
            "add 'nvml' (GPUs) to sources, or keep include_infrastructure=True"
        )
    return kept


@dataclass(frozen=True)
class TrackingOptions:
    """The validated options of one callback (see ``Eco2AICallback`` for their meaning)."""

    config: CarbonConfig
    tracking_frequency: str
    include_infrastructure: bool
    detailed_gpu_tracking: bool
    wandb_integration: bool
    mlflow_integration: bool
    report_formats: Tuple[str, ...]

    @classmethod
    def build(
        cls,
        *,
        config: Optional[CarbonConfig],
        tracking_mode: Optional[str],
        output_dir: Optional[Any],
        tracking_frequency: str,
        include_infrastructure: bool,
        detailed_gpu_tracking: bool,
        wandb_integration: bool,
        mlflow_integration: bool,
        report_formats: Sequence[str],
    ) -> "TrackingOptions":
        """Validate everything once, at construction, with errors that name the fix.

        Raises:
            ConfigurationError: a bad value, or an integration whose package is missing.
        """
        if config is None:
            config = CarbonConfig()
        elif not isinstance(config, CarbonConfig):
            raise ConfigurationError(
                f"config = {type(config).__name__} is invalid: expected a hf_eco2ai.CarbonConfig or None"
            )
        changes = {name: value for name, value in (("tracking_mode", tracking_mode), ("output_dir", output_dir))
                   if value is not None}
        if changes:
            config = config.replace(**changes)
        if tracking_frequency not in TRACKING_FREQUENCIES:
            raise ConfigurationError(
                f"tracking_frequency = {tracking_frequency!r} is invalid: expected one of "
                + ", ".join(repr(option) for option in TRACKING_FREQUENCIES)
            )
        flags = {
            "include_infrastructure": include_infrastructure, "detailed_gpu_tracking": detailed_gpu_tracking,
            "wandb_integration": wandb_integration, "mlflow_integration": mlflow_integration,
        }
        for name, value in flags.items():
            _require_bool(name, value)
        for flag, package in _INTEGRATION_PACKAGES.items():
            if flags[flag] and importlib.util.find_spec(package) is None:
                raise ConfigurationError(
                    f"{flag} = True needs the {package!r} package, which is not installed: "
                    f"run `pip install {package}`, or set {flag}=False"
                )
        if isinstance(report_formats, str) or not all(fmt in _ALL_REPORT_FORMATS for fmt in report_formats):
            raise ConfigurationError(
                f"report_formats = {report_formats!r} is invalid: expected a list drawn from "
                + ", ".join(repr(fmt) for fmt in _ALL_REPORT_FORMATS)
            )
        if not include_infrastructure:
            config = config.replace(sources=list(_infrastructure_sources(tuple(config.sources))))
        return cls(config=config, tracking_frequency=tracking_frequency,
                   include_infrastructure=include_infrastructure, detailed_gpu_tracking=detailed_gpu_tracking,
                   wandb_integration=wandb_integration, mlflow_integration=mlflow_integration,
                   report_formats=tuple(report_formats))

    def log_to_integrations(self, figures: Mapping[str, float], step: int) -> None:
        """Send the figures to the active W&B / MLflow run (when those integrations are on)."""
        if self.wandb_integration:
            wandb = importlib.import_module("wandb")
            if wandb.run is not None:
                wandb.run.log(dict(figures), commit=False)
        if self.mlflow_integration:
            mlflow = importlib.import_module("mlflow")
            if mlflow.active_run() is not None:
                mlflow.log_metrics(dict(figures), step=step)

    def log_report_to_integrations(self, report: Mapping[str, Any], paths: Mapping[str, Path]) -> None:
        """The final figures and their provenance (intensity source, dataset, year, channels)."""
        summary = final_summary(report)
        if self.wandb_integration:
            wandb = importlib.import_module("wandb")
            if wandb.run is not None:
                wandb.run.summary.update(summary)
                for path in paths.values():
                    wandb.save(str(path), base_path=str(path.parent), policy="now")
        if self.mlflow_integration:
            mlflow = importlib.import_module("mlflow")
            if mlflow.active_run() is not None:
                mlflow.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
                mlflow.log_params({k: v for k, v in summary.items() if isinstance(v, str)})
                for path in paths.values():
                    mlflow.log_artifact(str(path), artifact_path="carbon_reports")


def final_summary(report: Mapping[str, Any]) -> Dict[str, Any]:
    """The report's headline figures and provenance as flat ``carbon/...`` keys."""
    intensity = report["intensity"]
    summary: Dict[str, Any] = {
        "carbon/total_co2_kg": report["total_co2_kg"],
        "carbon/total_kwh": report["energy"]["total_kwh"],
        "carbon/it_kwh": report["energy"]["it_kwh"],
        "carbon/pue": report["energy"]["pue"],
        "carbon/intensity_g_per_kwh": intensity["g_per_kwh"],
        "carbon/intensity_source": intensity["source"],
        "carbon/intensity_dataset": intensity["dataset"],
        "carbon/duration_s": report["duration_s"],
        "carbon/monitoring_errors_total": report["monitoring_errors_total"],
        "carbon/channels": ", ".join(f"{c['name']} ({c['provenance']}, {c['source']})" for c in report["channels"]),
    }
    if intensity.get("year") is not None:
        summary["carbon/intensity_year"] = str(intensity["year"])
    return summary


def write_reports(report: Mapping[str, Any], output_dir: Any, formats: Sequence[str]) -> Dict[str, Path]:
    """Render ``report`` in every format to ``<output_dir>/carbon_report_<run id>.<ext>``."""
    from hf_eco2ai.reporting.generate import generate_carbon_report

    stem = f"carbon_report_{report['run']['run_id'][:12]}"
    paths: Dict[str, Path] = {}
    for output_format in formats:
        path = Path(output_dir) / (stem + _FILE_SUFFIXES[output_format])
        generate_carbon_report(report, output_format=output_format, output_path=path)
        paths[output_format] = path
    return paths


def model_name_of(model: Any) -> Optional[str]:
    """The model's hub name when it has one, else its class name; None without a model."""
    if model is None:
        return None
    config = getattr(model, "config", None)
    name = getattr(model, "name_or_path", None) or getattr(config, "_name_or_path", None)
    return str(name) if name else type(model).__name__
