"""Train a tiny GPT-2 with the Hugging Face Trainer and Eco2AICallback, then show its footprint.

The model is built from a config with random weights and the data is synthetic, so nothing is
downloaded and the run is offline. It trains for about 40 seconds (``--seconds``) on whatever
device the Trainer picks, then prints the energy per channel (measured or estimated), the grid
intensity with its source and year, the CO2, everyday comparisons, and the report files.

    python examples/hf_trainer_demo.py [--seconds 40] [--country FR] [--output-dir carbon_reports]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any, Dict, List

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from hf_eco2ai import CarbonConfig, Eco2AICallback
from hf_eco2ai.carbon.comparisons import compute_comparisons
from hf_eco2ai.meter.flags import FLAG_TAIL
from hf_eco2ai.reporting.numbers import energy_kwh, mass_kg, significant
from hf_eco2ai.reporting.step_file import read_step_file

VOCABULARY = 256
SEQUENCE_LENGTH = 64


class ArithmeticSequences(torch.utils.data.Dataset):
    """Token sequences ``start, start + stride, ...`` (mod the vocabulary): random, yet learnable,
    so the loss visibly falls during a short run."""

    def __init__(self, size: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        starts = torch.randint(0, VOCABULARY, (size, 1), generator=generator)
        strides = torch.randint(1, 8, (size, 1), generator=generator)
        self.tokens = (starts + strides * torch.arange(SEQUENCE_LENGTH)) % VOCABULARY

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        return {"input_ids": self.tokens[index], "labels": self.tokens[index]}


class StopAfter(TrainerCallback):
    """Ends training once ``seconds`` have passed, so the demo takes the same time on any machine."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if time.monotonic() - self.started >= self.seconds:
            control.should_training_stop = True


class ProgressLines(TrainerCallback):
    """One short line per log: the Trainer's loss next to the energy figures Eco2AICallback added."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            print(
                f"  step {state.global_step:>5}  loss {logs['loss']:.3f}  "
                f"{logs.get('power/mean_watts', float('nan')):6.1f} W  "
                f"{logs.get('energy/step_joules', float('nan')):7.3f} J/step  "
                f"{energy_kwh(logs['energy/total_kwh']):>14}  {mass_kg(logs['carbon/co2_kg'])} CO2e"
            )


def build_model() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=VOCABULARY,
            n_positions=SEQUENCE_LENGTH,
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_inner=128,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
    model.loss_type = "ForCausalLM"
    return model


def print_summary(report: Dict[str, Any], callback: Eco2AICallback, losses: List[float]) -> None:
    run, energy, intensity = report["run"], report["energy"], report["intensity"]
    training = report["training"]
    print(f"\nRun {run['run_id'][:12]} of project {run['project_name']!r} ({run['model_name']}, {run['host']})")
    print(
        f"  duration        {significant(report['duration_s'])} s, {training['optimizer_steps']} optimiser steps"
        + (f", loss {losses[0]:.2f} -> {losses[-1]:.2f}" if len(losses) > 1 else "")
    )
    print("  energy per channel (joules are the sensor's, before PUE):")
    for channel in report["channels"]:
        figures = energy["by_channel"][channel["name"]]
        inside = f", inside {channel['parent']}" if channel["parent"] else ""
        print(
            f"    {channel['name']:<16} {channel['provenance']:<9} via {channel['source']:<12} "
            f"{significant(figures['joules']):>10} J  mean {significant(figures['mean_watts'])} W{inside}"
        )
    meter = callback.session.meter
    for source in meter.info()["sources"] if meter is not None else []:
        if "tdp_origin" in source:
            print(f"    {source['name']}: {source['model']}, TDP {source['tdp_watts']} W ({source['tdp_origin']})")
    for reason in meter.skipped_sources.values() if meter is not None else []:
        print(f"    not measured: {reason}")
    print(f"  energy total    {energy_kwh(energy['total_kwh'])} (PUE {energy['pue']:g})")
    year = f", {intensity['year']}" if intensity["year"] is not None else ""
    print(
        f"  grid intensity  {significant(intensity['g_per_kwh'])} gCO2e/kWh: {intensity['source']} "
        f"{intensity['zone'] or intensity['country']}{year} ({intensity['dataset']})"
    )
    print(f"  emissions       {mass_kg(report['total_co2_kg'])} CO2e")
    equivalents = [c.text for c in compute_comparisons(report["total_co2_kg"], energy["total_kwh"])]
    print(f"    = {'; '.join(equivalents)} (factors and their sources are in the reports)")
    # Every step is in the per-step file the run streamed; the report itself stays small.
    every_step = list(read_step_file(report["steps_file"]["path"])) if report.get("steps_file") else []
    steps = [step["joules"] for step in every_step if not step["flags"] & FLAG_TAIL]
    if steps:
        print(
            f"  per step        mean {significant(statistics.fmean(steps))} J, median "
            f"{significant(statistics.median(steps))} J, over {len(steps)} steps "
            f"(+ tail {significant(every_step[-1]['joules'])} J after the last step; every step in "
            f"{report['steps_file']['path']})"
        )
    if report["samples_total"]:
        print(
            f"  samples         {int(report['samples_total'])}, "
            f"{significant(report['samples_total'] / energy['total_kwh'])} samples/kWh"
        )
    for warning in report["warnings"]:
        print(f"  note: {warning['message']}")
    print("  reports:")
    for output_format, path in callback.report_paths.items():
        print(f"    {output_format:<9} {path}")
    print(f"  run store       {callback.session.store.path}  (hf-eco2ai runs / show {run['run_id'][:8]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="how long to train (default 40)")
    parser.add_argument("--country", default="FR", help="ISO country of the grid (default FR)")
    parser.add_argument("--output-dir", default="carbon_reports", help="where reports and the run store go")
    options = parser.parse_args()

    config = CarbonConfig(
        project_name="hf-eco2ai-demo",
        experiment_id="tiny-gpt2",
        output_dir=options.output_dir,
        country_iso_code=options.country,
        offline=True,
    )
    carbon_callback = Eco2AICallback(config)
    model = build_model()
    parameters = sum(parameter.numel() for parameter in model.parameters())
    print(
        f"hf-eco2ai demo: a tiny GPT-2 ({parameters / 1e6:.2f} M parameters, random weights) learns synthetic "
        f"sequences for about {options.seconds:g} s"
    )
    with tempfile.TemporaryDirectory() as checkpoints:
        arguments = TrainingArguments(
            output_dir=checkpoints,
            per_device_train_batch_size=16,
            learning_rate=3e-3,
            num_train_epochs=1000,
            max_steps=100_000,
            logging_steps=100,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            seed=0,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=ArithmeticSequences(4096),
            callbacks=[carbon_callback, ProgressLines(), StopAfter(options.seconds)],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        print(f"training on {arguments.device}; the sampler runs beside it, each step is one mark")
        trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    print_summary(carbon_callback.get_carbon_report(), carbon_callback, losses)


if __name__ == "__main__":
    main()
