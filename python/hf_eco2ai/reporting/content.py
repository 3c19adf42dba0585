"""What the human-readable reports say, shared by Markdown and HTML so the two never disagree.

Every function takes the prepared ``tracking_data`` and returns plain strings (not yet escaped for
either format) or rows of them.
"""

from __future__ import annotations

from typing import Any, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from hf_eco2ai.meter.coverage import describe_estimate
from hf_eco2ai.reporting import numbers
from hf_eco2ai.reporting.schema import flag_names
from hf_eco2ai.reporting.windows import window_summaries

STEPS_SHOWN_AT_EACH_END = 10

INTENSITY_SOURCE_LABELS = {
    "explicit": "set explicitly",
    "live-api": "live API",
    "cloud-region-table": "cloud region table",
    "subnational-table": "sub-national grid table",
    "country-table": "country table",
    "world-average": "world average",
}


class Fact(NamedTuple):
    label: str
    value: str
    detail: str


def title(data: Mapping[str, Any]) -> str:
    return f"Carbon report: {data['run']['project_name']}"


def identity_rows(data: Mapping[str, Any]) -> List[Tuple[str, str]]:
    run = data["run"]
    rows = [("Run", run["run_id"])]
    if run["experiment_id"]:
        rows.append(("Experiment", run["experiment_id"]))
    if run["model_name"]:
        rows.append(("Model", run["model_name"]))
    rows.append(("Host", run["host"]))
    if run["world_size"] > 1:
        rows.append(("Rank", f"{run['rank']} of {run['world_size']} (local rank {run['local_rank']})"))
    rows.append(("Started", numbers.unix_time(run["started_unix_s"])))
    ended = run["ended_unix_s"]
    rows.append(("Ended", numbers.unix_time(ended) if ended is not None else "still running"))
    return rows


def intensity_source_text(intensity: Mapping[str, Any]) -> str:
    """``country table, Our World in Data (CC BY 4.0), 2023, zone DE``: where the number came from."""
    parts = [INTENSITY_SOURCE_LABELS.get(intensity["source"], intensity["source"]), intensity["dataset"]]
    parts.append(str(intensity["year"]) if intensity["year"] is not None else "year not stated")
    place = intensity["zone"] or intensity["region"] or intensity["country"]
    if place:
        parts.append(f"zone {place}")
    if intensity["is_estimated"] is not None:
        parts.append("estimated by the provider" if intensity["is_estimated"] else "measured by the provider")
    return ", ".join(parts)


def intensity_value_text(intensity: Mapping[str, Any]) -> str:
    return f"{numbers.significant(intensity['g_per_kwh'])} gCO2e/kWh"


def headline(data: Mapping[str, Any]) -> List[Fact]:
    energy = data["energy"]
    intensity = data["intensity"]
    facts = [
        Fact(
            "Emissions",
            f"{numbers.mass_kg(data['total_co2_kg'])} CO2e",
            f"total_co2_kg = {numbers.significant(data['total_co2_kg'], 6)} kg",
        ),
        Fact(
            "Energy",
            numbers.energy_kwh(energy["total_kwh"]),
            f"{numbers.significant(energy['total_kwh'], 6)} kWh, PUE {numbers.significant(energy['pue'], 3)}",
        ),
        Fact("Duration", numbers.duration(data["duration_s"]), f"{numbers.significant(data['duration_s'], 6)} s"),
        Fact("Carbon intensity", intensity_value_text(intensity), intensity_source_text(intensity)),
    ]
    budget = data["budget"]
    if budget is not None:
        state = "exceeded" if budget["exceeded"] else f"{numbers.mass_kg(budget['remaining_kg'])} left"
        facts.append(
            Fact(
                "Budget used",
                numbers.percent(budget["used_fraction"]),
                f"of {numbers.mass_kg(budget['budget_kg'])}; {state}",
            )
        )
    cost = data["cost"]
    if cost is not None:
        currency = cost["currency"]
        price = numbers.significant(cost["price_per_kwh"])
        facts.append(
            Fact(
                "Cost",
                f"{numbers.significant(cost['total'])} {currency or ''}".strip(),
                f"at {price} {currency}/kWh" if currency else f"at {price} per kWh",
            )
        )
    return facts


class ChannelRow(NamedTuple):
    name: str
    kind: str
    provenance: str
    scope: str
    source: str
    parent: str
    joules: str
    kwh: str
    mean_watts: str


def channel_rows(data: Mapping[str, Any]) -> List[ChannelRow]:
    by_channel = data["energy"]["by_channel"]
    rows = []
    for channel in data["channels"]:
        energy = by_channel[channel["name"]]
        rows.append(
            ChannelRow(
                name=channel["name"],
                kind=channel["kind"],
                provenance=channel["provenance"],
                scope=channel.get("scope", "machine"),
                source=channel["source"],
                parent=channel["parent"] or "",
                joules=numbers.significant(energy["joules"], 6),
                kwh=numbers.significant(energy["kwh"], 6),
                mean_watts=numbers.significant(energy["mean_watts"]),
            )
        )
    return rows


def coverage_notes(data: Mapping[str, Any]) -> List[str]:
    """Sentences stating each estimate's inputs (TDP, its origin, the utilisation's scope) and
    whether DRAM was measured; empty for a report written before these were recorded."""
    notes = [
        describe_estimate(channel["name"], channel["estimate_inputs"])
        for channel in data["channels"]
        if channel.get("estimate_inputs")
    ]
    dram = data.get("dram")
    if dram:
        notes.append(dram["note"])
    return notes


def energy_total_note(data: Mapping[str, Any]) -> str:
    energy = data["energy"]
    return (
        f"Total of top-level channels: {numbers.significant(energy['it_kwh'], 6)} kWh × PUE "
        f"{numbers.significant(energy['pue'], 3)} = {numbers.significant(energy['total_kwh'], 6)} kWh. "
        "Channels with a parent lie inside it and are not added again."
    )


def comparison_rows(data: Mapping[str, Any]) -> List[Tuple[str, str, str]]:
    """(name, "value unit", "factor [unit] · citation")."""
    rows = []
    for comparison in data["comparisons"]:
        factor = numbers.significant(comparison["factor"])
        factor_unit = comparison.get("factor_unit")
        basis = f"factor {factor} {factor_unit}" if factor_unit else f"factor {factor}"
        rows.append(
            (
                comparison["name"],
                f"{numbers.significant(comparison['value'], 3)} {comparison['unit']}",
                f"{basis}; {comparison['citation']}",
            )
        )
    return rows


def recommendation_texts(data: Mapping[str, Any]) -> List[str]:
    """Each recommendation's sentence, with the data it rests on."""
    return [
        f"{item['text']} (source: {item['dataset']}{', ' + str(item['year']) if item.get('year') else ''})"
        for item in data.get("recommendations", [])
    ]


def budget_rows(budget: Optional[Mapping[str, Any]]) -> List[Tuple[str, str]]:
    if budget is None:
        return []
    return [
        ("Budget", f"{numbers.significant(budget['budget_kg'], 6)} kg CO2e"),
        ("Used", f"{numbers.significant(budget['used_kg'], 6)} kg CO2e ({numbers.percent(budget['used_fraction'])})"),
        ("Remaining", f"{numbers.significant(budget['remaining_kg'], 6)} kg CO2e"),
        ("Exceeded", "yes" if budget["exceeded"] else "no"),
    ]


def epoch_header() -> List[str]:
    return ["Epoch", "Steps", "Duration", "Energy (J)", "Energy (kWh, PUE)", "CO2e (kg)"]


def epoch_rows(data: Mapping[str, Any]) -> List[List[str]]:
    rows = []
    for epoch in data["epochs"]:
        first, last = epoch["first_step"], epoch["last_step"]
        steps = f"{first}–{last}" if first is not None and last is not None else numbers.MISSING
        rows.append(
            [
                str(epoch["epoch"]),
                steps,
                numbers.duration(epoch["duration_s"]),
                numbers.significant(epoch["joules"], 6),
                numbers.significant(epoch["energy_kwh"], 6),
                numbers.significant(epoch["co2_kg"], 6),
            ]
        )
    return rows


def step_header(data: Mapping[str, Any]) -> List[str]:
    names = [channel["name"] for channel in data["channels"]]
    return ["Step", "Epoch", "t0 (s)", "Duration (s)", "Energy (J)"] + [f"{name} (J)" for name in names] + ["Flags"]


def chart_steps(data: Mapping[str, Any]) -> Tuple[List[Mapping[str, Any]], int]:
    """What the step chart draws, and how many steps each item stands for: the report's own steps
    when it lists them, else one item per point of the downsampled series (its mean energy,
    ``last_index`` ending its range) plus the tail."""
    if "steps" in data:
        return list(data["steps"]), 1
    series = data.get("step_series")
    if not series:
        return [], 1
    by_channel = series["joules_by_channel_mean"]
    items: List[Mapping[str, Any]] = [
        {
            "index": first,
            "last_index": last,
            "joules": mean,
            "flags": 0,
            "joules_by_channel": {name: values[point] for name, values in by_channel.items()},
        }
        for point, (first, last, mean) in enumerate(
            zip(series["first_step"], series["last_step"], series["joules_mean"])
        )
    ]
    if series["tail"] is not None:
        items.append(series["tail"])
    return items, series["steps_per_point"]


def step_count(data: Mapping[str, Any]) -> int:
    """How many steps the report covers (listed, or in its series and tail)."""
    if "steps" in data:
        return len(data["steps"])
    series = data.get("step_series")
    if not series:
        return 0
    return int(series["steps"]) + (1 if series["tail"] is not None else 0)


def step_summary_rows(data: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """For a report whose steps live in a file: where, how many, and energy per step."""
    series = data.get("step_series")
    rows = []
    steps_file = data.get("steps_file")
    if steps_file is not None:
        rows.append(("Every step", f"{steps_file['path']} ({steps_file['format']}, {steps_file['rows']} rows)"))
    if series and series["count"]:
        peak = max(range(len(series["joules_max"])), key=lambda point: series["joules_max"][point] or 0.0)
        counts, means = series["count"], series["joules_mean"]
        mean = sum(count * (value or 0.0) for count, value in zip(counts, means)) / max(sum(counts), 1)
        lowest = min((value for value in series["joules_min"] if value is not None), default=None)
        rows += [
            ("Training steps", str(series["steps"])),
            (
                "Energy per step",
                f"min {numbers.significant(lowest, 6)} J, "
                f"mean {numbers.significant(mean, 6)} J, "
                f"max {numbers.significant(series['joules_max'][peak], 6)} J "
                f"(step {series['max_step'][peak]})",
            ),
        ]
    return rows


def has_window_estimates(data: Mapping[str, Any]) -> bool:
    return any(summary["estimate"] is not None for summary in window_summaries(data))


def window_header(data: Mapping[str, Any]) -> List[str]:
    header = [
        "Window",
        "Count",
        "Duration",
        "Energy (J)",
        "Mean energy (J)",
        "Mean power (W)",
        "Share of run",
        "Energy (kWh, PUE)",
        "CO2e (kg)",
    ]
    if has_window_estimates(data):
        header += ["Estimated mean energy (J)", "Estimated mean power (W)"]
    return header


def _plus_minus(value: Optional[float], stderr: Optional[float]) -> str:
    if value is None:
        return numbers.MISSING
    if stderr is None:
        return numbers.significant(value)
    return f"{numbers.significant(value)} ± {numbers.significant(stderr, 2)}"


def window_rows(data: Mapping[str, Any]) -> List[List[str]]:
    """One row per window name (``window_header``); the estimate's columns, when the report has
    ``window_estimates``, give its mean with one standard error."""
    estimated = has_window_estimates(data)
    rows = []
    for window in window_summaries(data):
        row = [
            window["name"],
            str(window["count"]),
            numbers.duration(window["duration_s"]),
            numbers.significant(window["joules"], 6),
            numbers.significant(window["mean_joules"]),
            numbers.significant(window["mean_watts"]),
            numbers.percent(window["share_of_run"]),
            numbers.significant(window.get("energy_kwh"), 6),
            numbers.significant(window.get("co2_kg"), 6),
        ]
        if estimated:
            estimate = window["estimate"] or {}
            row += [
                _plus_minus(estimate.get("mean_joules"), estimate.get("mean_joules_stderr")),
                _plus_minus(estimate.get("mean_watts"), estimate.get("mean_watts_stderr")),
            ]
        rows.append(row)
    return rows


def window_notes(data: Mapping[str, Any]) -> List[str]:
    """What a reader needs to read the Windows table right."""
    notes = [
        "Energy is over the top-level channels, without PUE; the share is of the run's energy. "
        "Windows nested in others are counted in both, so shares may add up to more than 100 %."
    ]
    section = data.get("window_estimates")
    if section and has_window_estimates(data):
        notes.append(
            f"Estimated columns: windows shorter than the sensor's update period, {section.get('method')} "
            f"({section.get('stairs_used')} stairs of {', '.join(section.get('channels') or []) or 'no channel'}, "
            f"observed fraction {numbers.significant(section.get('observed_fraction'))}); ± one standard error."
        )
        ranks = section.get("ranks")
        if ranks:
            notes.append(
                f"The estimates are summed over ranks {', '.join(str(rank) for rank in ranks)} (each on its own "
                "GPUs at the same time); the measured columns are this rank's."
            )
        notes += [str(note) for note in section.get("notes") or []]
    return notes


def shown_steps(data: Mapping[str, Any]) -> Tuple[List[Mapping[str, Any]], int]:
    """The steps a person sees: all up to 20, else the first and last 10; plus how many are hidden."""
    steps: Sequence[Mapping[str, Any]] = data["steps"]
    limit = 2 * STEPS_SHOWN_AT_EACH_END
    if len(steps) <= limit:
        return list(steps), 0
    shown = list(steps[:STEPS_SHOWN_AT_EACH_END]) + list(steps[-STEPS_SHOWN_AT_EACH_END:])
    return shown, len(steps) - limit


def step_row(data: Mapping[str, Any], step: Mapping[str, Any]) -> List[str]:
    names = [channel["name"] for channel in data["channels"]]
    epoch = step["epoch"]
    by_channel = step["joules_by_channel"]
    return (
        [
            str(step["index"]),
            str(epoch) if epoch is not None else numbers.MISSING,
            numbers.significant(step["t0_s"], 6),
            numbers.significant(step["duration_s"]),
            numbers.significant(step["joules"], 6),
        ]
        + [numbers.significant(by_channel.get(name), 6) for name in names]
        + [", ".join(flag_names(step["flags"]))]
    )


def warning_rows(data: Mapping[str, Any]) -> List[Tuple[str, str]]:
    rows = []
    for warning in data["warnings"]:
        where = []
        if warning.get("channel"):
            where.append(warning["channel"])
        if warning.get("t_s") is not None:
            where.append(f"at {numbers.significant(warning['t_s'])} s")
        suffix = f" ({', '.join(where)})" if where else ""
        rows.append((warning["code"], warning["message"] + suffix))
    return rows


def key_value_text(value: Any) -> str:
    if value is None:
        return numbers.MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
