"""``RunComparison``: stored runs side by side, per run and against the first; the comparison page
(``hf-eco2ai compare A B --html OUT``) and what Jupyter shows for it.

Everything is read from each run's bounded final report (its step series, power trace and loss
series), never from every step. Pure functions apart from reading the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hf_eco2ai.reporting import numbers, run_charts, svg_charts
from hf_eco2ai.reporting.notebook import cards, fragment
from hf_eco2ai.units import JOULES_PER_KWH

Points = List[Tuple[float, Optional[float]]]


@dataclass(frozen=True)
class ComparedRun:
    """One run's figures for the comparison. ``training_steps`` excludes the tail record (last
    mark to stop); per-step and per-sample figures use the PUE-applied energy and are None when
    the count is unknown."""

    run_id: str
    project_name: str
    status: str
    energy_kwh: Optional[float]
    co2_kg: Optional[float]
    duration_s: Optional[float]
    training_steps: Optional[int]
    samples: Optional[float]
    report: Optional[Dict[str, Any]]

    def _per(self, value: Optional[float], count: Optional[float]) -> Optional[float]:
        return value / count if value is not None and count else None

    @property
    def joules_per_step(self) -> Optional[float]:
        return self._per(None if self.energy_kwh is None else self.energy_kwh * JOULES_PER_KWH, self.training_steps)

    @property
    def co2_kg_per_step(self) -> Optional[float]:
        return self._per(self.co2_kg, self.training_steps)

    @property
    def joules_per_sample(self) -> Optional[float]:
        return self._per(None if self.energy_kwh is None else self.energy_kwh * JOULES_PER_KWH, self.samples)

    @property
    def co2_kg_per_sample(self) -> Optional[float]:
        return self._per(self.co2_kg, self.samples)


def compared_run(summary: Any, report: Optional[Mapping[str, Any]]) -> ComparedRun:
    """A store summary and the run's final report (None while it has none) as a ``ComparedRun``."""
    steps: Optional[int] = None
    if report is not None:
        series = report.get("step_series")
        steps = int(series["steps"]) if series else report.get("steps_marked")
    return ComparedRun(
        run_id=summary.run_id,
        project_name=summary.project_name,
        status=summary.status,
        energy_kwh=report["energy"]["total_kwh"] if report is not None else summary.energy_kwh_total,
        co2_kg=report["total_co2_kg"] if report is not None else summary.co2_kg_total,
        duration_s=report["duration_s"] if report is not None else summary.duration_s,
        training_steps=steps,
        samples=report.get("samples_total") if report is not None else None,
        report=None if report is None else dict(report),
    )


def _versus(value: Optional[float], baseline: Optional[float]) -> str:
    if value is None or not baseline:
        return numbers.MISSING
    return f"{(value / baseline - 1) * 100:+.1f} %"


class RunComparison(List[Any]):
    """The runs compared, in the order given: a list of their store summaries (``RunSummary``),
    with ``runs`` (one ``ComparedRun`` each) for the figures. ``to_html()`` is the comparison page;
    Jupyter shows the cards and the overlaid energy-per-step curves."""

    def __init__(self, summaries: Sequence[Any], runs: Sequence[ComparedRun]) -> None:
        super().__init__(summaries)
        self.runs: List[ComparedRun] = list(runs)

    def rows(self) -> List[Dict[str, Any]]:
        """Per run, the figures as a dict (for pandas): energy and CO2 totals, per step and per
        sample, and the change in energy against the first run."""
        baseline = self.runs[0].energy_kwh if self.runs else None
        return [
            {
                "run_id": run.run_id,
                "project_name": run.project_name,
                "status": run.status,
                "energy_kwh": run.energy_kwh,
                "co2_kg": run.co2_kg,
                "duration_s": run.duration_s,
                "training_steps": run.training_steps,
                "samples": run.samples,
                "joules_per_step": run.joules_per_step,
                "co2_kg_per_step": run.co2_kg_per_step,
                "joules_per_sample": run.joules_per_sample,
                "co2_kg_per_sample": run.co2_kg_per_sample,
                "energy_vs_first": None if run.energy_kwh is None or not baseline else run.energy_kwh / baseline - 1,
            }
            for run in self.runs
        ]

    def _cards(self) -> List[str]:
        baseline = self.runs[0]
        blocks = []
        for index, run in enumerate(self.runs):
            facts = [
                ("Energy", numbers.energy_kwh(run.energy_kwh), "PUE applied"),
                ("Emissions", f"{numbers.mass_kg(run.co2_kg)} CO2e", ""),
                ("Duration", numbers.duration(run.duration_s), run.status),
                (
                    "Per step",
                    f"{numbers.significant(run.joules_per_step)} J",
                    f"{numbers.mass_kg(run.co2_kg_per_step)} CO2e; {run.training_steps or 0} steps",
                ),
                (
                    "Per sample",
                    f"{numbers.significant(run.joules_per_sample)} J",
                    f"{numbers.mass_kg(run.co2_kg_per_sample)} CO2e"
                    + (f"; {numbers.significant(run.samples, 6)} samples" if run.samples else "; samples not counted"),
                ),
            ]
            if index:
                facts.append(("Against the first", _versus(run.energy_kwh, baseline.energy_kwh), "energy"))
            colour = svg_charts.PALETTE[index % len(svg_charts.PALETTE)]
            blocks.append(
                f'<div class="run" data-run="{escape(run.run_id)}">'
                f'<h4><span class="swatch" style="background: {colour}"></span> '
                f"{escape(run.project_name)} <code>{escape(run.run_id[:12])}</code></h4>{cards(facts)}</div>"
            )
        return blocks

    def _curves(self) -> Dict[str, Tuple[str, str]]:
        """Heading -> (SVG, caption) of each overlaid chart with something to draw."""
        labels = [f"{run.run_id[:12]}" for run in self.runs]
        reports = [run.report or {} for run in self.runs]
        step_energy: List[Points] = [run_charts.step_energy_points(r) if r else [] for r in reports]
        cumulative: List[Points] = []
        for report in reports:
            times, joules = run_charts.cumulative_joules(report) if report.get("power_trace") else ([], [])
            cumulative.append(list(zip(times, joules)))
        losses: List[Points] = [
            list(zip(r["loss_series"]["step"], r["loss_series"]["loss"])) if r.get("loss_series") else []
            for r in reports
        ]
        charts = {
            "Energy per step": (
                run_charts.overlay_chart(step_energy, labels, "compare-step-chart", "Step", "Energy per step", "J"),
                "Mean energy per training step over the top-level channels, without PUE.",
            ),
            "Cumulative energy": (
                run_charts.overlay_chart(
                    cumulative, labels, "compare-cumulative-chart", "Time since start (s)", "Energy", "J"
                ),
                "Energy since each run's start, PUE applied, ending at the run's total.",
            ),
            "Training loss": (
                run_charts.overlay_chart(losses, labels, "compare-loss-chart", "Step", "Loss", ""),
                "The training loss as logged.",
            ),
        }
        return {title: chart for title, chart in charts.items() if chart[0]}

    def _legend(self) -> str:
        items = "".join(
            f'<li><span class="swatch" style="background: {svg_charts.PALETTE[i % len(svg_charts.PALETTE)]}">'
            f"</span><code>{escape(run.run_id[:12])}</code> {escape(run.project_name)}</li>"
            for i, run in enumerate(self.runs)
        )
        return f'<ul class="legend">{items}</ul>'

    def _table(self) -> str:
        header = ["Run", "Steps", "Energy", "CO2e", "J/step", "CO2e/step", "J/sample", "CO2e/sample", "vs first"]
        baseline = self.runs[0].energy_kwh
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{escape(cell)}</td>"
                for cell in (
                    run.run_id[:12],
                    str(run.training_steps if run.training_steps is not None else numbers.MISSING),
                    numbers.energy_kwh(run.energy_kwh),
                    numbers.mass_kg(run.co2_kg),
                    numbers.significant(run.joules_per_step),
                    numbers.mass_kg(run.co2_kg_per_step),
                    numbers.significant(run.joules_per_sample),
                    numbers.mass_kg(run.co2_kg_per_sample),
                    _versus(run.energy_kwh, baseline) if index else "",
                )
            )
            + "</tr>"
            for index, run in enumerate(self.runs)
        )
        head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"

    def _repr_html_(self) -> str:
        curves = self._curves()
        body = self._cards()
        if "Energy per step" in curves:
            svg, caption = curves["Energy per step"]
            body += [svg, self._legend(), f'<p class="note">{escape(caption)}</p>']
        return fragment(f"Run comparison ({len(self.runs)} runs)", body)

    def to_html(self) -> str:
        """The comparison page: self-contained HTML (inline CSS and SVG; no script, no URL)."""
        from hf_eco2ai.reporting.html_format import _CSS

        parts = [
            f"<h1>Run comparison ({len(self.runs)} runs)</h1>",
            '<p class="note">Changes are against the first run. Energy has the PUE applied; '
            "per-step figures exclude the tail from the last step mark to the end.</p>",
            '<section class="runs">' + "".join(self._cards()) + "</section>",
            "<h2>Side by side</h2>",
            self._table(),
        ]
        for title, (svg, caption) in self._curves().items():
            parts += [
                f"<h2>{escape(title)}</h2>",
                f"<figure>{svg}{self._legend()}<figcaption>{escape(caption)}</figcaption></figure>",
            ]
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Run comparison</title><style>{_CSS}{_PAGE_CSS}</style></head>"
            f"<body><main>{''.join(parts)}</main></body></html>\n"
        )


_PAGE_CSS = """
.runs .cards { margin-top: 6px; }
.runs h4 { margin: 18px 0 4px; font-size: 15px; display: flex; align-items: center; gap: 8px; }
.runs .label { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.runs .value { font-size: 20px; font-weight: 650; }
.runs .detail { font-size: 12px; color: var(--muted); }
.hf-eco2ai .swatch, .runs .swatch { width: 14px; height: 4px; border-radius: 2px; display: inline-block; }
"""


def compare_runs(store: Any, runs: Sequence[str]) -> RunComparison:
    """The runs named (ids or unique prefixes), read from ``store`` (a ``RunStore``).

    Raises:
        KeyError: a run is unknown or its prefix is ambiguous.
    """
    summaries = [store.get_run(run) for run in runs]
    return RunComparison(summaries, [compared_run(s, store.report(s.run_id)) for s in summaries])
