"""Cost of the base-unit twins: one rendering of /metrics with and without their series.

Run: `.venv/bin/python benches/bench_prometheus_render.py` (about half a minute).
Options: `--rounds N` (default 15), `--renders N` per arm and round (default 400), `--smoke`.

Both arms render a fully populated snapshot (one GPU, three channels, price, budget) through
`prometheus_client.generate_latest`, the exporter's own rendering call. The baseline serves the
documented `hf_training_*` families only; the other arm serves the catalogue as shipped, base-unit
twins included. The twins' samples are computed in both arms (the baseline drops their families
after `collect()`), so the ratio is what exposing their series adds. Arms alternate within each
round; the headline is the median over rounds of CPU time per rendering (twins) / (baseline).
Correctness beside it: the twin arm's text parses and holds every catalogue family, the
baseline's none of the twins.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Iterator, List, Set

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "monitoring"))
from monitoring_helpers import make_snapshot  # noqa: E402

from hf_eco2ai.integrations.prometheus import CATALOGUE, SnapshotCollector  # noqa: E402

TWIN_FAMILIES: Set[str] = {
    spec.family_name for spec in CATALOGUE if spec.twin_of or spec.name == "hf_training_samples_total"
}


class DocumentedOnlyCollector(SnapshotCollector):
    """The shipped collector with the twins' families dropped after they are built."""

    def collect(self) -> Iterator[Metric]:
        return (family for family in super().collect() if family.name not in TWIN_FAMILIES)


def registry_of(collector_class: type) -> CollectorRegistry:
    registry = CollectorRegistry()
    snapshot = make_snapshot()
    collector_class(registry=registry).attach(lambda: snapshot)
    return registry


def cpu_us_per_render(registry: CollectorRegistry, renders: int) -> float:
    started = time.process_time()
    for _ in range(renders):
        generate_latest(registry)
    return (time.process_time() - started) / renders * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--renders", type=int, default=400)
    parser.add_argument("--smoke", action="store_true", help="two short rounds, no figure to read")
    args = parser.parse_args()
    rounds, renders = (2, 5) if args.smoke else (args.rounds, args.renders)

    with_twins, baseline = registry_of(SnapshotCollector), registry_of(DocumentedOnlyCollector)
    served = {family.name for family in text_string_to_metric_families(generate_latest(with_twins).decode())}
    served_baseline = {family.name for family in text_string_to_metric_families(generate_latest(baseline).decode())}
    correct = {spec.family_name for spec in CATALOGUE} <= served and not TWIN_FAMILIES & served_baseline

    twin_us: List[float] = []
    baseline_us: List[float] = []
    for round_index in range(rounds):
        arms = [(with_twins, twin_us), (baseline, baseline_us)]
        for registry, figures in arms if round_index % 2 == 0 else arms[::-1]:
            figures.append(cpu_us_per_render(registry, renders))
    ratios = [twins / base for twins, base in zip(twin_us, baseline_us)]
    print(f"rendering CPU time per scrape, median of {rounds} rounds x {renders} renders per arm:")
    print(f"  documented families only: {statistics.median(baseline_us):.0f} us")
    print(f"  with the base-unit twins: {statistics.median(twin_us):.0f} us ({len(TWIN_FAMILIES)} more families)")
    print(f"  ratio twins / documented only: {statistics.median(ratios):.3f}")
    print(f"  correct (every family served, baseline without twins): {correct}")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
