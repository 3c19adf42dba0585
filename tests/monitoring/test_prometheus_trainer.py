"""End to end: a real tiny transformers.Trainer run, its exporter scraped by a real Prometheus."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from monitoring_helpers import LiveEndpoint
from tiny_training import TokenDataset, tiny_bert, training_arguments
from transformers import Trainer, TrainerCallback

from hf_eco2ai import CarbonConfig, Eco2AICallback

STEPS = 40


class Pace(TrainerCallback):
    """Stretches the run to over a second, so that Prometheus (every 250 ms) scrapes it in flight."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        time.sleep(0.03)


def test_a_trainer_runs_energy_and_steps_reach_prometheus_and_its_budget_alert_fires(
    live_endpoint: LiveEndpoint, tmp_path: Path
) -> None:
    project = f"trainer-{uuid.uuid4().hex[:8]}"
    config = CarbonConfig(
        project_name=project,
        output_dir=str(tmp_path / "carbon"),
        offline=True,
        country_iso_code="FR",
        prometheus_enabled=True,
        prometheus_host="127.0.0.1",
        prometheus_port=live_endpoint.exporter.port,
        carbon_budget_kg=1e-12,
    )
    trainer = Trainer(
        model=tiny_bert(),
        args=training_arguments(tmp_path / "out", max_steps=STEPS),
        train_dataset=TokenDataset(64),
        callbacks=[Eco2AICallback(config), Pace()],
    )
    trainer.train()
    assert trainer.state.global_step == STEPS

    server = live_endpoint.prometheus
    selector = f'{{project_name="{project}"}}'
    (steps,) = server.wait_until(
        f"hf_training_step_count == {STEPS}", lambda: server.query(f"hf_training_step_count{selector} == {STEPS}")
    )
    assert steps["metric"]["instance"] == f"127.0.0.1:{live_endpoint.exporter.port}"
    (grew,) = server.wait_until(
        "the stored energy to have grown during the run",
        lambda: server.query(
            f"max_over_time(hf_training_energy_kwh_total{selector}[5m])"
            f" - min_over_time(hf_training_energy_kwh_total{selector}[5m]) > 0"
        ),
    )
    assert grew["metric"]["model_name"] == "BertForSequenceClassification"
    # the base-unit twins of the same run divide as they are, with no on()/ignoring()
    (per_step,) = server.wait_until(
        "joules per step",
        lambda: server.query(f"hf_training_energy_joules_total{selector} / hf_training_steps_total{selector} > 0"),
    )
    assert set(per_step["metric"]) == {"project_name", "model_name", "rank", "host", "instance", "job"}
    assert float(per_step["value"][1]) * STEPS == pytest.approx(
        float(server.query(f"hf_training_energy_joules_total{selector}")[0]["value"][1])
    )
    (alert,) = server.wait_until(
        "CarbonBudgetExceeded to fire for the run",
        lambda: [
            alert
            for alert in server.firing_alerts()
            if alert["labels"]["alertname"] == "CarbonBudgetExceeded" and alert["labels"]["project_name"] == project
        ],
    )
    assert alert["labels"]["severity"] == "critical"
