"""The two CSV forms of docs/reports.md: one row per step, and a long summary table.

Text cells are neutralised against spreadsheet formula injection (OWASP "CSV Injection"): a text
value that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``,
so a spreadsheet shows it as text instead of evaluating it. Numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional, Sequence

from hf_eco2ai import units
from hf_eco2ai.reporting.schema import flag_names
from hf_eco2ai.reporting.windows import window_summaries

STEP_COLUMNS: Sequence[str] = (
    "run_id",
    "step",
    "epoch",
    "t0_s",
    "t1_s",
    "duration_s",
    "joules",
    "kwh",
    "co2_kg",
    "intensity_g_per_kwh",
    "intensity_source",
    "intensity_year",
    "flags",
    "flag_names",
)
SUMMARY_COLUMNS: Sequence[str] = ("section", "scope", "metric", "value", "unit", "note")


def channel_column(channel: str) -> str:
    return f"joules[{channel}]"


def step_columns(channel_names: Sequence[str]) -> List[str]:
    """The per-step header: the fixed columns, then one ``joules[<channel>]`` per channel."""
    return list(STEP_COLUMNS) + [channel_column(name) for name in channel_names]


FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would read it as a formula.

    Leading spaces are looked through: some spreadsheets strip them before evaluating.
    """
    return "'" + text if text.lstrip(" ").startswith(FORMULA_TRIGGERS) else text


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # repr round-trips exactly; str() would too, but repr states the intent.
        return repr(value)
    if isinstance(value, int):
        return value
    # Names, zones and messages come from users and remote answers.
    return neutralise_formula(str(value))


def _new_writer(buffer: io.StringIO) -> Any:
    return csv.writer(buffer, lineterminator="\r\n")


def render_csv_steps(prepared: Mapping[str, Any]) -> str:
    """One row per step; kWh and CO2 per step use the run's PUE and intensity. A report whose
    steps live in a per-step file (``steps_file``) renders as that file's text."""
    channel_names = [channel["name"] for channel in prepared["channels"]]
    if "steps" not in prepared:
        steps_file = prepared.get("steps_file")
        if steps_file is not None and Path(steps_file["path"]).exists():
            from hf_eco2ai.reporting.step_file import step_file_text

            return step_file_text(steps_file["path"])
        return ",".join(step_columns(channel_names)) + "\r\n"
    pue = prepared["energy"]["pue"]
    intensity = prepared["intensity"]
    g_per_kwh = intensity["g_per_kwh"]
    run_id = prepared["run"]["run_id"]
    buffer = io.StringIO()
    writer = _new_writer(buffer)
    writer.writerow([_cell(column) for column in step_columns(channel_names)])
    for step in prepared["steps"]:
        joules = step["joules"]
        kwh = None if joules is None or pue is None else units.kwh_from_joules(joules, pue)
        co2_kg = None if kwh is None or g_per_kwh is None else units.co2_kg(kwh, g_per_kwh)
        by_channel = step["joules_by_channel"]
        row = [
            run_id,
            step["index"],
            step["epoch"],
            step["t0_s"],
            step["t1_s"],
            step["duration_s"],
            joules,
            kwh,
            co2_kg,
            g_per_kwh,
            intensity["source"],
            intensity["year"],
            step["flags"],
            "|".join(flag_names(step["flags"])),
        ]
        row.extend(by_channel.get(name) for name in channel_names)
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue()


def _summary_rows(prepared: Mapping[str, Any]) -> Iterator[List[Any]]:
    run = prepared["run"]
    for key in ("run_id", "project_name", "experiment_id", "model_name", "host", "rank", "local_rank", "world_size"):
        yield ["run", "", key, run[key], "", ""]
    yield ["run", "", "started_unix_s", run["started_unix_s"], "s", ""]
    yield ["run", "", "ended_unix_s", run["ended_unix_s"], "s", ""]
    yield ["run", "", "duration_s", prepared["duration_s"], "s", ""]
    yield ["run", "", "schema_version", prepared["schema_version"], "", ""]
    yield ["run", "", "generated_unix_s", prepared["generated_unix_s"], "s", ""]

    by_channel = prepared["energy"]["by_channel"]
    for channel in prepared["channels"]:
        name = channel["name"]
        for key in ("kind", "provenance", "source", "parent"):
            yield ["channel", name, key, channel[key], "", ""]
        yield ["channel", name, "scope", channel.get("scope", "machine"), "", ""]
        energy = by_channel[name]
        yield ["channel", name, "joules", energy["joules"], "J", ""]
        yield ["channel", name, "kwh", energy["kwh"], "kWh", ""]
        yield ["channel", name, "mean_watts", energy["mean_watts"], "W", ""]
    energy = prepared["energy"]
    yield ["energy", "", "it_kwh", energy["it_kwh"], "kWh", "top-level channels, without PUE"]
    yield ["energy", "", "pue", energy["pue"], "", ""]
    yield ["energy", "", "total_kwh", energy["total_kwh"], "kWh", "PUE applied"]

    intensity = prepared["intensity"]
    yield ["intensity", "", "g_per_kwh", intensity["g_per_kwh"], "gCO2e/kWh", ""]
    for key in ("source", "dataset", "zone", "country", "region", "year", "is_estimated"):
        yield ["intensity", "", key, intensity[key], "", ""]
    yield ["emissions", "", "total_co2_kg", prepared["total_co2_kg"], "kg CO2e", ""]

    for comparison in prepared["comparisons"]:
        name = comparison["name"]
        yield ["comparison", name, "value", comparison["value"], comparison["unit"], comparison["citation"]]
        yield [
            "comparison",
            name,
            "factor",
            comparison["factor"],
            comparison.get("factor_unit") or "",
            comparison["citation"],
        ]

    budget: Optional[Mapping[str, Any]] = prepared["budget"]
    if budget is not None:
        for key, unit in (
            ("budget_kg", "kg CO2e"),
            ("used_kg", "kg CO2e"),
            ("remaining_kg", "kg CO2e"),
            ("used_fraction", ""),
            ("exceeded", ""),
        ):
            yield ["budget", "", key, budget[key], unit, ""]
    cost: Optional[Mapping[str, Any]] = prepared["cost"]
    if cost is not None:
        currency = cost["currency"] or ""
        price_unit = f"{currency}/kWh" if currency else "per kWh"
        yield ["cost", "", "price_per_kwh", cost["price_per_kwh"], price_unit, ""]
        yield ["cost", "", "currency", cost["currency"], "", ""]
        yield ["cost", "", "total", cost["total"], currency, ""]

    for epoch in prepared["epochs"]:
        scope = str(epoch["epoch"])
        for key, unit in (
            ("first_step", ""),
            ("last_step", ""),
            ("t0_s", "s"),
            ("t1_s", "s"),
            ("duration_s", "s"),
            ("joules", "J"),
            ("energy_kwh", "kWh"),
            ("co2_kg", "kg CO2e"),
        ):
            yield ["epoch", scope, key, epoch[key], unit, ""]
        for channel_name, joules in epoch["joules_by_channel"].items():
            yield ["epoch", scope, channel_column(channel_name), joules, "J", ""]

    for window in window_summaries(prepared):
        scope = window["name"]
        for key, unit in (
            ("count", ""),
            ("duration_s", "s"),
            ("joules", "J"),
            ("mean_joules", "J"),
            ("mean_watts", "W"),
            ("share_of_run", ""),
            ("energy_kwh", "kWh"),
            ("co2_kg", "kg CO2e"),
        ):
            yield ["window", scope, key, window.get(key), unit, ""]
        estimate = window["estimate"]
        if estimate is not None:
            note = "estimated: windows shorter than the sensor, ± one standard error"
            for key, unit in (
                ("repetitions", ""),
                ("mean_duration_s", "s"),
                ("mean_joules", "J"),
                ("mean_joules_stderr", "J"),
                ("mean_watts", "W"),
                ("mean_watts_stderr", "W"),
            ):
                yield ["window-estimate", scope, key, estimate.get(key), unit, note]

    yield ["run", "", "monitoring_errors_total", prepared["monitoring_errors_total"], "", ""]
    for warning in prepared["warnings"]:
        channel = warning.get("channel")
        message = f"{channel}: {warning['message']}" if channel else warning["message"]
        yield ["warning", warning["code"], "t_s", warning.get("t_s"), "s", message]
    for key, value in prepared["config"].items():
        structured = isinstance(value, (list, dict))
        yield ["config", "", key, json.dumps(value) if structured else value, "", ""]
    for key, value in prepared["versions"].items():
        yield ["version", "", key, value, "", ""]


def render_csv_summary(prepared: Mapping[str, Any]) -> str:
    """The long table: section, scope, metric, value, unit, note."""
    buffer = io.StringIO()
    writer = _new_writer(buffer)
    writer.writerow([_cell(column) for column in SUMMARY_COLUMNS])
    for row in _summary_rows(prepared):
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue()
