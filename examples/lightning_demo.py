"""Train a tiny Transformer with Lightning and Eco2AILightningCallback, then show its footprint.

Random weights, synthetic data, offline: nothing is downloaded. Trains for about 20 seconds
(``--seconds``), logging the energy figures through Lightning's CSV logger, and prints the
energy per channel with its provenance, the grid intensity with its source and year, and the CO2.

    python examples/lightning_demo.py [--seconds 20] [--country DE] [--output-dir carbon_reports]
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import CSVLogger

from hf_eco2ai import CarbonConfig
from hf_eco2ai.integrations.lightning import Eco2AILightningCallback
from hf_eco2ai.reporting.numbers import energy_kwh, mass_kg, significant

VOCABULARY = 128
SEQUENCE_LENGTH = 32


def arithmetic_sequences(size: int, seed: int = 0) -> torch.utils.data.TensorDataset:
    """Sequences ``start, start + stride, ...`` mod the vocabulary: random, yet learnable."""
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, VOCABULARY, (size, 1), generator=generator)
    strides = torch.randint(1, 8, (size, 1), generator=generator)
    return torch.utils.data.TensorDataset((starts + strides * torch.arange(SEQUENCE_LENGTH)) % VOCABULARY)


class TinyLanguageModel(pl.LightningModule):
    """Two Transformer encoder layers with a causal mask, predicting the next token."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(VOCABULARY, width)
        self.position = torch.nn.Parameter(torch.zeros(SEQUENCE_LENGTH, width))
        layer = torch.nn.TransformerEncoderLayer(width, nhead=4, dim_feedforward=2 * width, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(width, VOCABULARY)
        self.register_buffer("causal_mask", torch.nn.Transformer.generate_square_subsequent_mask(SEQUENCE_LENGTH - 1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        (tokens,) = batch
        hidden = self.encoder(self.embed(tokens[:, :-1]) + self.position[:-1], mask=self.causal_mask, is_causal=True)
        loss = torch.nn.functional.cross_entropy(self.head(hidden).reshape(-1, VOCABULARY), tokens[:, 1:].reshape(-1))
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=3e-3)


class StopAfter(pl.Callback):
    """Ends fit once ``seconds`` have passed, so the demo takes the same time on any machine."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        trainer.should_stop = trainer.should_stop or time.monotonic() - self.started >= self.seconds


def print_summary(report: Dict[str, Any], callback: Eco2AILightningCallback, log_dir: str) -> None:
    run, energy, intensity, training = report["run"], report["energy"], report["intensity"], report["training"]
    print(
        f"\nRun {run['run_id'][:12]} ({run['model_name']}): {significant(report['duration_s'])} s, "
        f"{training['optimizer_steps']} optimiser steps"
    )
    for channel in report["channels"]:
        figures = energy["by_channel"][channel["name"]]
        print(
            f"  {channel['name']:<14} {channel['provenance']:<9} ({channel['source']}) "
            f"{significant(figures['joules'])} J, mean {significant(figures['mean_watts'])} W"
        )
    year = f", {intensity['year']}" if intensity["year"] is not None else ""
    print(
        f"  energy {energy_kwh(energy['total_kwh'])} x {significant(intensity['g_per_kwh'])} gCO2e/kWh "
        f"({intensity['source']} {intensity['country']}{year}, {intensity['dataset']})"
    )
    print(f"  = {mass_kg(report['total_co2_kg'])} CO2e")
    print(f"  per-step figures logged to {log_dir}/metrics.csv; reports:")
    for output_format, path in callback.report_paths.items():
        print(f"    {output_format:<9} {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to train (default 20)")
    parser.add_argument("--country", default="DE", help="ISO country of the grid (default DE)")
    parser.add_argument("--output-dir", default="carbon_reports", help="where reports and the run store go")
    options = parser.parse_args()

    callback = Eco2AILightningCallback(
        CarbonConfig(
            project_name="hf-eco2ai-lightning-demo",
            output_dir=options.output_dir,
            country_iso_code=options.country,
            offline=True,
        )
    )
    logger = CSVLogger(options.output_dir, name="lightning_demo")
    trainer = pl.Trainer(
        max_epochs=1000,
        log_every_n_steps=20,
        callbacks=[callback, StopAfter(options.seconds)],
        logger=logger,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    loader = torch.utils.data.DataLoader(arithmetic_sequences(2048), batch_size=32, shuffle=True)
    print(
        f"hf-eco2ai Lightning demo: a tiny causal Transformer learns synthetic sequences for about {options.seconds:g} s"
    )
    trainer.fit(TinyLanguageModel(), loader)
    print_summary(callback.get_carbon_report(), callback, logger.log_dir)


if __name__ == "__main__":
    main()
