"""The ``tracking_data`` schema (docs/reports.md): validation and the copy every renderer reads.

Pure functions, no I/O, safe from any thread. ``validate`` raises ``ConfigurationError`` naming the
path of the first offending key; ``prepare_for_output`` returns a deep copy with non-finite floats
turned into None and secret config values masked, so no renderer can leak a token.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Dict, List, Mapping, Tuple, Union

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.meter.flags import STEP_FLAG_NAMES

SCHEMA_VERSION = 1
SECRET_MASK = "***"
SECRET_KEY_PARTS = ("token", "secret", "password", "api_key", "apikey")
INCOMPLETE_WARNING_CODES = frozenset({"sensor-failed", "run-interrupted"})


# A small declarative schema. Leaf specs are type names, a "?" suffix meaning the value may be null.
# ("object", fields, keys that may be absent), ("list", item spec), ("map", value spec) with str
# keys, ("nullable", spec).
Spec = Union[str, Tuple[Any, ...]]


def _obj(fields: Dict[str, Spec], may_be_absent: Tuple[str, ...] = ()) -> Spec:
    return ("object", fields, frozenset(may_be_absent))


_ESTIMATE_INPUTS: Spec = _obj(
    {
        "tdp_watts": "number",
        "tdp_origin": "str",
        "model": "str",
        "utilisation_from": "str",
        "utilisation_scope": "str",
        "process_share": "str?",
    }
)
_CHANNEL: Spec = _obj(
    {
        "name": "str",
        "kind": "str",
        "provenance": "str",
        "source": "str",
        "parent": "str?",
        "scope": "str",
        "estimate_inputs": ("nullable", _ESTIMATE_INPUTS),
    },
    ("scope", "estimate_inputs"),
)
_DRAM: Spec = _obj({"measured": "bool", "channels": ("list", "str"), "note": "str"})
_CHANNEL_ENERGY: Spec = _obj({"joules": "number", "kwh": "number", "mean_watts": "number?"})
_INTENSITY: Spec = _obj(
    {
        "g_per_kwh": "number",
        "source": "str",
        "dataset": "str",
        "zone": "str?",
        "country": "str?",
        "region": "str?",
        "year": "int?",
        "is_estimated": "bool?",
    }
)
_COMPARISON: Spec = _obj(
    {
        "name": "str",
        "value": "number",
        "unit": "str",
        "factor": "number",
        "citation": "str",
        "factor_unit": "str?",
    },
    ("factor_unit",),
)
_BUDGET: Spec = _obj(
    {
        "budget_kg": "number",
        "used_kg": "number",
        "remaining_kg": "number",
        "used_fraction": "number",
        "exceeded": "bool",
    }
)
_COST: Spec = _obj({"price_per_kwh": "number", "currency": "str?", "total": "number"})
_STEP: Spec = _obj(
    {
        "index": "int",
        "epoch": "int?",
        "t0_s": "number",
        "t1_s": "number",
        "duration_s": "number",
        "joules": "number",
        "joules_by_channel": ("map", "number?"),
        "flags": "int",
    }
)
_EPOCH: Spec = _obj(
    {
        "epoch": "int",
        "first_step": "int?",
        "last_step": "int?",
        "t0_s": "number",
        "t1_s": "number",
        "duration_s": "number",
        "joules": "number",
        "joules_by_channel": ("map", "number?"),
        "energy_kwh": "number",
        "co2_kg": "number",
    }
)
_POWER_TRACE: Spec = _obj(
    {
        "t_s": ("list", "number"),
        "watts": ("map", ("list", "number?")),
        "raw_points": "int",
        "watts_max": ("map", ("list", "number?")),
    },
    ("watts_max",),
)
_STEP_SERIES: Spec = _obj(
    {
        "steps_per_point": "int",
        "steps": "int",
        "first_step": ("list", "int"),
        "last_step": ("list", "int"),
        "count": ("list", "int"),
        "joules_min": ("list", "number?"),
        "joules_mean": ("list", "number?"),
        "joules_max": ("list", "number?"),
        "max_step": ("list", "int"),
        "duration_s_mean": ("list", "number?"),
        "joules_by_channel_mean": ("map", ("list", "number?")),
        "tail": ("nullable", _STEP),
    }
)
_STEPS_FILE: Spec = _obj({"path": "str", "format": "str", "rows": "int"})
_WINDOW: Spec = _obj(
    {
        "name": "str",
        "count": "int",
        "duration_s": "number",
        "joules": "number",
        "joules_by_channel": ("map", "number?"),
        "energy_kwh": "number",
        "co2_kg": "number",
        "flags": "int",
        "mean_joules": "number?",
        "mean_watts": "number?",
        "share_of_run": "number?",
    },
    ("mean_joules", "mean_watts", "share_of_run"),
)
_WINDOW_ESTIMATE: Spec = _obj(
    {
        "repetitions": "int",
        "mean_duration_s": "number?",
        "mean_watts": "number?",
        "mean_watts_stderr": "number?",
        "mean_joules": "number?",
        "mean_joules_stderr": "number?",
        "ranks": "int",
        "mean_joules_by_rank": ("map", "number?"),
    },
    ("ranks", "mean_joules_by_rank"),
)
_WINDOW_ESTIMATES: Spec = _obj(
    {
        "method": "str",
        "channels": ("list", "str"),
        "stairs_used": "int",
        "observed_fraction": "number",
        "rest_watts": "number?",
        "windows": ("map", _WINDOW_ESTIMATE),
        "stair_timing": ("map", "str"),
        "notes": ("list", "str"),
        "ranks": ("list", "int"),
    },
    ("stair_timing", "ranks"),
)
_WINDOW_SPANS: Spec = _obj(
    {"t0_s": ("list", "number"), "t1_s": ("list", "number"), "joules": ("list", "number?"), "complete": "bool"}
)
_LOSS_SERIES: Spec = _obj({"step": ("list", "number"), "loss": ("list", "number?"), "points": "int"})
_RECOMMENDATION: Spec = _obj(
    {
        "kind": "str",
        "target": "str",
        "current_g_per_kwh": "number",
        "target_g_per_kwh": "number",
        "saving_percent": "number",
        "dataset": "str",
        "year": "int?",
        "text": "str",
    }
)
_WARNING: Spec = _obj({"code": "str", "message": "str", "channel": "str?", "t_s": "number?"}, ("channel", "t_s"))
_RUN: Spec = _obj(
    {
        "run_id": "str",
        "project_name": "str",
        "experiment_id": "str?",
        "model_name": "str?",
        "host": "str",
        "rank": "int",
        "local_rank": "int",
        "world_size": "int",
        "started_unix_s": "number",
        "ended_unix_s": "number?",
    }
)
TRACKING_DATA: Spec = _obj(
    {
        "schema_version": "int",
        "generated_unix_s": "number",
        "run": _RUN,
        "duration_s": "number",
        "channels": ("list", _CHANNEL),
        "energy": _obj(
            {
                "by_channel": ("map", _CHANNEL_ENERGY),
                "it_kwh": "number",
                "pue": "number",
                "total_kwh": "number",
            }
        ),
        "intensity": _INTENSITY,
        "total_co2_kg": "number",
        "comparisons": ("list", _COMPARISON),
        "recommendations": ("list", _RECOMMENDATION),
        "budget": ("nullable", _BUDGET),
        "cost": ("nullable", _COST),
        "steps": ("list", _STEP),
        "step_series": ("nullable", _STEP_SERIES),
        "steps_file": ("nullable", _STEPS_FILE),
        "epochs": ("list", _EPOCH),
        "windows": ("list", _WINDOW),
        "window_estimates": ("nullable", _WINDOW_ESTIMATES),
        "counter_resets": "int",
        "power_trace": ("nullable", _POWER_TRACE),
        "dram": ("nullable", _DRAM),
        "window_spans": ("map", _WINDOW_SPANS),
        "loss_series": ("nullable", _LOSS_SERIES),
        "monitoring_errors_total": "int",
        "warnings": ("list", _WARNING),
        "config": ("map", "json"),
        "versions": ("map", "str?"),
    },
    (
        "steps",
        "step_series",
        "steps_file",
        "windows",
        "window_estimates",
        "counter_resets",
        "window_spans",
        "loss_series",
        "recommendations",
        "dram",
    ),
)


# The exact-type tests first: a long run has ~10 numbers per step and ABC checks are slow.
def _is_integer(value: Any) -> bool:
    # numbers.Integral admits numpy integers, which a producer may hand over from StepRecords.
    return type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is float or kind is int or (isinstance(value, numbers.Real) and not isinstance(value, bool))


def _is_json_value(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool)) or _is_number(value):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_json_value(item) for item in value)
    if isinstance(value, Mapping):
        return all(isinstance(key, str) and _is_json_value(item) for key, item in value.items())
    return False


_LEAF_CHECKS: Dict[str, Tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (_is_integer, "an integer"),
    "number": (_is_number, "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "json": (_is_json_value, "a JSON value (null, bool, number, string, list or object)"),
}


def _path(parts: List[str]) -> str:
    return "tracking_data" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in parts)


def _fail(parts: List[Any], problem: str) -> ConfigurationError:
    return ConfigurationError(f"{_path(parts)} {problem} (the schema is in docs/reports.md)")


def _check(value: Any, spec: Spec, parts: List[Any]) -> None:
    if isinstance(spec, str):
        nullable = spec.endswith("?")
        check, expected = _LEAF_CHECKS[spec.rstrip("?")]
        if value is None and nullable:
            return
        if not check(value):
            allowed = f"{expected} or null" if nullable else expected
            raise _fail(parts, f"is {value!r}; expected {allowed}")
        return
    kind, inner = spec[0], spec[1]
    if kind == "nullable":
        if value is not None:
            _check(value, inner, parts)
        return
    if kind == "list":
        if not isinstance(value, list):
            raise _fail(parts, f"is {type(value).__name__}; expected a list")
        for index, item in enumerate(value):
            _check(item, inner, parts + [index])
        return
    if type(value) is not dict and not isinstance(value, Mapping):
        raise _fail(parts, f"is {type(value).__name__}; expected an object")
    if kind == "map":
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(parts, f"has key {key!r}; keys must be strings")
            _check(item, inner, parts + [key])
        return
    may_be_absent = spec[2]
    for key, field_spec in inner.items():
        if key not in value:
            if key in may_be_absent:
                continue
            raise _fail(parts + [key], "is missing")
        _check(value[key], field_spec, parts + [key])


def _check_consistency(data: Mapping[str, Any]) -> None:
    """Cross-field rules the renderers rely on."""
    by_channel = data["energy"]["by_channel"]
    for index, channel in enumerate(data["channels"]):
        if channel["name"] not in by_channel:
            raise _fail(
                ["energy", "by_channel", channel["name"]],
                f"is missing; every channel in tracking_data['channels'] needs an entry (channel {index})",
            )
    trace = data["power_trace"]
    if trace is not None:
        points = len(trace["t_s"])
        for name, watts in trace["watts"].items():
            if len(watts) != points:
                raise _fail(
                    ["power_trace", "watts", name], f"has {len(watts)} points; expected {points}, the length of t_s"
                )


def validate(data: Any) -> None:
    """Raise ``ConfigurationError`` naming the first key that breaks the schema; return None if valid."""
    if not isinstance(data, Mapping):
        raise ConfigurationError(
            f"tracking_data is {type(data).__name__}; expected the dict that TrackingSession.report() "
            "returns (the schema is in docs/reports.md)"
        )
    version = data.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version != SCHEMA_VERSION:
        raise ConfigurationError(
            f"tracking_data['schema_version'] is {version!r}; this version of hf_eco2ai renders "
            f"schema version {SCHEMA_VERSION} only"
        )
    _check(data, TRACKING_DATA, [])
    _check_consistency(data)


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


def _plain_copy(value: Any) -> Any:
    """Deep copy in plain Python types: numpy scalars become int/float, non-finite floats None."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {key: _plain_copy(item) for key, item in value.items()}
    if kind is int or kind is str or kind is bool or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        as_float = float(value)
        return as_float if math.isfinite(as_float) else None
    if isinstance(value, Mapping):
        return {key: _plain_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_copy(item) for item in value]
    # Only keys outside the schema can get here; the schema's own keys were type-checked.
    raise ConfigurationError(
        f"tracking_data holds {value!r} of type {type(value).__name__}; reports take JSON types only "
        "(null, bool, number, string, list, object)"
    )


def _mask_secrets(config: Dict[str, Any]) -> Dict[str, Any]:
    return {key: (SECRET_MASK if value is not None and is_secret_key(key) else value) for key, value in config.items()}


def prepare_for_output(data: Mapping[str, Any]) -> Dict[str, Any]:
    """A deep copy safe to render: plain Python numbers, non-finite floats as None, secret config
    values as ``"***"``."""
    prepared: Dict[str, Any] = _plain_copy(data)
    prepared["config"] = _mask_secrets(prepared["config"])
    return prepared


def flag_names(flags: int) -> List[str]:
    return [name for bit, name in STEP_FLAG_NAMES if flags & bit]


def incomplete_reason(data: Mapping[str, Any]) -> str:
    """Why the report must be marked incomplete, or "" when it need not be."""
    reasons = []
    errors = data["monitoring_errors_total"]
    if errors:
        reasons.append(f"{errors} monitoring error{'s' if errors != 1 else ''} during the run")
    for warning in data["warnings"]:
        if warning["code"] in INCOMPLETE_WARNING_CODES:
            channel = warning.get("channel")
            reasons.append(f"{warning['message']}" + (f" ({channel})" if channel else ""))
    return "; ".join(reasons)
