"""The CarbonTracker API's "Establish Carbon Baselines" example, run with hf_eco2ai.measure.

Writes ``carbon_baseline.json`` in the working directory, which ``measure_regression.py`` reads.
The standard workloads are small CPU stand-ins; replace them with your own.
"""

import json

import numpy as np
from example_workload import busy_cpu

from hf_eco2ai.measure import CarbonTracker


def preprocess_data():
    return busy_cpu(0.02)


def train_baseline_model():
    return busy_cpu(0.2)


def evaluate_model():
    return busy_cpu(0.03)


def run_hp_search():
    return busy_cpu(0.04)


def establish_carbon_baseline():
    """Create carbon baseline for future optimization"""

    tracker = CarbonTracker(project_name="baseline-establishment")
    baseline_metrics = {}

    # Standard workloads
    standard_workloads = [
        ("data_preprocessing", preprocess_data),
        ("model_training", train_baseline_model),
        ("model_evaluation", evaluate_model),
        ("hyperparameter_search", run_hp_search),
    ]

    for workload_name, workload_func in standard_workloads:
        print(f"📊 Establishing baseline for {workload_name}...")

        # Run workload multiple times for statistical significance
        emissions_samples = []
        for run in range(5):
            with tracker.start_tracking(f"{workload_name}_run_{run}"):
                workload_func()
            metrics = tracker.stop_tracking()
            emissions_samples.append(metrics.emissions_kg_co2 * 1000)

        baseline_metrics[workload_name] = {
            "mean_emissions_g": np.mean(emissions_samples),
            "std_emissions_g": np.std(emissions_samples),
            "samples": emissions_samples,
        }

    # Save baseline for future comparison
    with open("carbon_baseline.json", "w") as f:
        json.dump(baseline_metrics, f, indent=2, default=str)

    return baseline_metrics


if __name__ == "__main__":
    for name, figures in establish_carbon_baseline().items():
        print(f"{name}: {figures['mean_emissions_g']:.6f} ± {figures['std_emissions_g']:.6f} g CO2")
