"""``hf-eco2ai serve --run RUN``: a stored run's figures on a Prometheus scrape endpoint.

The run may be finished, or still running in another process: the store row is read again at
every scrape, so a running run's figures follow its session's drains (``measurement_interval_s``).
A run that is no longer running draws no power, so its power and rate gauges are left out; its
totals stay.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from hf_eco2ai import units
from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.prometheus.server import DEFAULT_HOST, PrometheusExporter
from hf_eco2ai.meter.channels import ChannelInfo
from hf_eco2ai.session.snapshot import SessionSnapshot
from hf_eco2ai.store.run_store import RunStore, RunSummary


def _ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def snapshot_from_stored_run(summary: RunSummary) -> Optional[SessionSnapshot]:
    """The snapshot of a stored run as its latest figures show it; None before its first drain.

    ``unix_time_s`` is when the run last wrote its figures, so ``hf_training_last_update_timestamp``
    tells how fresh they are.
    """
    latest = summary.latest
    if not latest or summary.intensity is None:
        return None
    config = summary.config or {}
    running = summary.status == "running"
    kwh = float(latest["energy_kwh_total"])
    co2_kg = float(latest["co2_kg_total"])
    budget_kg = config.get("carbon_budget_kg")
    price = config.get("electricity_price_per_kwh")
    samples = latest.get("samples_total")
    energy_rate = latest.get("energy_rate_kwh_per_hour") if running else None
    intensity = IntensityResult(**summary.intensity)
    return SessionSnapshot(
        run_id=summary.run_id,
        project_name=summary.project_name,
        experiment_id=summary.experiment_id,
        model_name=summary.model_name,
        host=summary.host,
        rank=summary.rank,
        local_rank=summary.local_rank,
        world_size=summary.world_size,
        unix_time_s=summary.updated_unix_s,
        step_count=int(latest.get("steps_marked", summary.step_count)),
        epoch_count=int(latest.get("epoch_count", 0)),
        channels=[ChannelInfo(**channel) for channel in summary.channels],
        energy_joules_by_channel=dict(latest.get("energy_joules_by_channel", {})),
        power_watts_by_channel=dict(latest.get("power_watts_by_channel", {})) if running else {},
        energy_kwh_total=kwh,
        energy_rate_kwh_per_hour=energy_rate,
        co2_kg_total=co2_kg,
        co2_rate_kg_per_hour=None if energy_rate is None else units.co2_kg(energy_rate, intensity.g_per_kwh),
        intensity=intensity,
        pue=float(config.get("pue", 1.0)),
        budget_kg=budget_kg,
        budget_remaining_kg=None if budget_kg is None else budget_kg - co2_kg,
        budget_used_fraction=_ratio(co2_kg, budget_kg),
        samples_total=samples,
        samples_per_second=_ratio(samples, latest.get("t_s")),
        samples_per_kwh=_ratio(samples, kwh),
        loss=latest.get("loss"),
        eval_loss=latest.get("eval_loss"),
        learning_rate=latest.get("learning_rate"),
        cost_total=None if price is None else kwh * price,
        electricity_price_per_kwh=price,
        electricity_currency=config.get("electricity_currency"),
        monitoring_errors_total=int(latest.get("monitoring_errors_total", 0)),
    )


class StoredRunProvider:
    """A snapshot provider reading one run from a store at every call (thread-safe)."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    def __call__(self) -> Optional[SessionSnapshot]:
        return snapshot_from_stored_run(self.store.get_run(self.run_id))


def serve_run(
    run: str,
    store_path: Union[str, "os.PathLike[str]"],
    *,
    host: str = DEFAULT_HOST,
    port: int = 8000,
) -> PrometheusExporter:
    """Starts an endpoint serving the stored run ``run`` (a run id or a unique prefix of one).

    Returns the running exporter (``exporter.url`` to print, ``exporter.close()`` to stop); the
    caller keeps the process alive. Raises ConfigurationError when the store file does not exist,
    the run is unknown or ambiguous, or the address cannot be served (see PrometheusExporter).
    """
    path = Path(store_path)
    if not path.is_file():
        raise ConfigurationError(
            f"store={str(path)!r} does not exist: runs are kept in <output_dir>/runs.sqlite; "
            "pass the store file of the run to serve"
        )
    store = RunStore(path, read_only=True)
    try:
        run_id = store.resolve_run_id(run)
    except KeyError as error:
        raise ConfigurationError(f"--run {run!r}: {error.args[0]}; `hf-eco2ai runs` lists the stored runs") from None
    exporter = PrometheusExporter(host=host, port=port)
    exporter.attach(StoredRunProvider(store, run_id))
    return exporter
