"""The CarbonTracker API's "Continuous Carbon Monitoring" example, run with hf_eco2ai.measure.

Reads ``carbon_baseline.json`` (written by ``measure_baseline.py``) and alerts when a workload
emits more than 20 % above its baseline. Here ``model_training`` runs as it did for the baseline
and ``model_evaluation`` is made three times slower, so only the second one should alert.
"""

import json

from example_workload import busy_cpu

from hf_eco2ai.measure import CarbonTracker


class ContinuousCarbonMonitor:
    def __init__(self, baseline_path="carbon_baseline.json"):
        self.baseline = self.load_baseline(baseline_path)
        self.tracker = CarbonTracker(project_name="continuous-monitoring")

    def load_baseline(self, baseline_path):
        with open(baseline_path) as f:
            return json.load(f)

    def monitor_workload(self, workload_name, workload_func):
        """Monitor workload and alert on carbon regression"""

        with self.tracker.start_tracking(workload_name):
            result = workload_func()

        metrics = self.tracker.stop_tracking()
        current_emissions = metrics.emissions_kg_co2 * 1000

        # Compare to baseline
        if workload_name in self.baseline:
            baseline_mean = float(self.baseline[workload_name]["mean_emissions_g"])
            regression_threshold = baseline_mean * 1.2  # 20% increase

            if current_emissions > regression_threshold:
                self.alert_carbon_regression(workload_name, current_emissions, baseline_mean)
            else:
                print(f"✅ {workload_name}: {current_emissions:.6f}g CO2, within 20% of its baseline")

        return result

    def alert_carbon_regression(self, workload_name, current, baseline):
        increase_percent = ((current - baseline) / baseline) * 100
        print("🚨 CARBON REGRESSION ALERT:")
        print(f"   Workload: {workload_name}")
        print(f"   Current: {current:.6f}g CO2 (+{increase_percent:.1f}%)")
        print(f"   Baseline: {baseline:.6f}g CO2")


if __name__ == "__main__":
    monitor = ContinuousCarbonMonitor()
    monitor.monitor_workload("model_training", lambda: busy_cpu(0.2))
    monitor.monitor_workload("model_evaluation", lambda: busy_cpu(0.09))
