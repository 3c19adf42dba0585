"""The CarbonTracker API's "Team Carbon Budget Management" example, run with hf_eco2ai.measure.

The team's experiments are small CPU workloads here so that the example runs anywhere in a
second; put real training in ``train_baseline``/``train_optimized``. Settings (sensor source,
country, offline mode) come from the environment or eco2ai.yaml, see docs/configuration.md.
"""

import time

from example_workload import busy_cpu

from hf_eco2ai.measure import CarbonTracker


def train_baseline():
    return busy_cpu(0.2)


def train_optimized():
    return busy_cpu(0.1)


class TeamCarbonBudget:
    def __init__(self, team_name, monthly_budget_kg):
        self.team_name = team_name
        self.monthly_budget_kg = monthly_budget_kg
        self.current_usage_kg = 0
        self.tracker = CarbonTracker(project_name=f"{team_name}-budget")
        self._started = time.monotonic()

    def track_experiment(self, experiment_name, experiment_func):
        if self.current_usage_kg >= self.monthly_budget_kg:
            raise Exception(
                f"⛔ Carbon budget exceeded! Used {self.current_usage_kg:.2f}/{self.monthly_budget_kg:.2f}kg CO2"
            )

        with self.tracker.start_tracking(experiment_name):
            result = experiment_func()

        metrics = self.tracker.stop_tracking()
        self.current_usage_kg += metrics.emissions_kg_co2

        # Budget warnings
        usage_percent = (self.current_usage_kg / self.monthly_budget_kg) * 100
        if usage_percent > 80:
            print(f"⚠️ Carbon budget warning: {usage_percent:.1f}% used")

        return result

    def get_budget_status(self):
        remaining_kg = self.monthly_budget_kg - self.current_usage_kg
        remaining_percent = (remaining_kg / self.monthly_budget_kg) * 100

        return {
            "used_kg": self.current_usage_kg,
            "remaining_kg": remaining_kg,
            "remaining_percent": remaining_percent,
            "days_remaining_at_current_rate": self._estimate_days_remaining(),
        }

    def _estimate_days_remaining(self):
        """Days until the budget is used up if the team keeps emitting at the rate seen so far."""
        elapsed_days = (time.monotonic() - self._started) / 86400.0
        if self.current_usage_kg <= 0 or elapsed_days <= 0:
            return None
        rate_kg_per_day = self.current_usage_kg / elapsed_days
        return max(self.monthly_budget_kg - self.current_usage_kg, 0.0) / rate_kg_per_day


if __name__ == "__main__":
    ml_team = TeamCarbonBudget("ml-research-team", monthly_budget_kg=5.0)

    # Track team experiments
    ml_team.track_experiment("baseline_model", lambda: train_baseline())
    ml_team.track_experiment("optimized_model", lambda: train_optimized())

    # Check budget status
    status = ml_team.get_budget_status()
    print(f"Budget status: {status['remaining_percent']:.1f}% remaining")
    print(f"Used: {status['used_kg'] * 1000:.6f} g CO2 of {ml_team.monthly_budget_kg:g} kg")
    print(f"Tracker total: {ml_team.tracker.get_total_emissions() * 1000:.6f} g CO2")
