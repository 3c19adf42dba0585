"""`CarbonConfig`: every setting of hf_eco2ai, where it came from, and its validation.

Precedence, highest first: explicit arguments, environment variables (``HF_ECO2AI_<FIELD>``, and
``CO2_SIGNAL_API_TOKEN`` for the token), ``eco2ai.yaml`` (the working directory's, or the path
given as ``config_file`` or ``HF_ECO2AI_CONFIG_FILE``), then the defaults. An argument that is
``None``, an empty environment variable and a YAML ``null`` all count as not given. ``explain()`` says which of these supplied each value.

Every invalid value raises ``ConfigurationError`` at construction, naming the field, the value,
where it came from and what is allowed. The API token is a secret: it is never part of ``repr``,
``str``, ``explain()``, ``as_dict()`` or an error message.

A ``CarbonConfig`` is immutable once built, so it can be shared between threads; use
``replace()`` to derive a changed copy.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

from hf_eco2ai.carbon.hosts import is_loopback_host
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.meter import flags as meter_flags
from hf_eco2ai.meter.channels import CPU_SCOPES

CONFIG_FILE_NAME = "eco2ai.yaml"
CONFIG_FILE_ENV = "HF_ECO2AI_CONFIG_FILE"
ENV_PREFIX = "HF_ECO2AI_"
MASK = "***"

TRACKING_MODES = ("minimal", "simple", "detailed")
STEP_FILE_FORMATS = ("csv", "parquet")
CLOUD_PROVIDERS = ("aws", "gcp", "azure")
INTENSITY_APIS = ("electricitymaps", "co2signal")
SOURCE_NAMES = ("auto",) + meter_flags.SOURCE_NAMES
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_RATE_HZ = 20_000.0
MAX_INTENSITY_G_PER_KWH = 2_000.0

_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off")


@dataclass(frozen=True)
class _Field:
    name: str
    default: Any
    section: str
    yaml_key: str
    parse: Callable[[str, Any], Any]
    doc: str
    secret: bool = False
    extra_env: Tuple[str, ...] = ()

    @property
    def yaml_path(self) -> str:
        return f"{self.section}.{self.yaml_key}"

    @property
    def env_names(self) -> Tuple[str, ...]:
        return (ENV_PREFIX + self.name.upper(), *self.extra_env)


class _Invalid(Exception):
    """Raised by the parsers with what is allowed; turned into ConfigurationError with context."""


_SHOWN_CHARS = 120


def _shown(value: Any, secret: bool) -> str:
    if secret:
        return "<hidden>"
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}... ({len(text)} characters)"


# Parsers take (field name, raw value) and return the normalised value or raise _Invalid(allowed).
# Strings are accepted for every kind, because environment variables only ever hold strings.


def _as_text(name: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise _Invalid("a string")
    text = raw.strip()
    if not text:
        raise _Invalid("a non-empty string")
    return text


def _as_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE_WORDS + _FALSE_WORDS:
        return raw.strip().lower() in _TRUE_WORDS
    raise _Invalid("true or false (also 1/0, yes/no, on/off)")


def _as_number(raw: Any, allowed: str) -> float:
    if isinstance(raw, bool):
        raise _Invalid(allowed)
    if isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise _Invalid(allowed) from None
    else:
        raise _Invalid(allowed)
    if not math.isfinite(value):
        raise _Invalid(allowed)
    return value


def _number_in(
    low: Optional[float], high: Optional[float], allowed: str, low_open: bool = False
) -> Callable[[str, Any], float]:
    def parse(name: str, raw: Any) -> float:
        value = _as_number(raw, allowed)
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and value > high
        if too_low or too_high:
            raise _Invalid(allowed)
        return value

    return parse


def _port(name: str, raw: Any) -> int:
    allowed = "an integer TCP port from 0 to 65535 (0 lets the OS pick a free port)"
    value = _as_number(raw, allowed)
    if value != int(value) or not 0 <= value <= 65535:
        raise _Invalid(allowed)
    return int(value)


def _int_at_least(low: int, allowed: str) -> Callable[[str, Any], int]:
    def parse(name: str, raw: Any) -> int:
        value = _as_number(raw, allowed)
        if value != int(value) or value < low:
            raise _Invalid(allowed)
        return int(value)

    return parse


def _choice(options: Tuple[str, ...], upper: bool = False) -> Callable[[str, Any], str]:
    def parse(name: str, raw: Any) -> str:
        allowed = "one of " + ", ".join(options)
        if not isinstance(raw, str):
            raise _Invalid(allowed)
        text = raw.strip().upper() if upper else raw.strip().lower()
        if text not in options:
            close = difflib.get_close_matches(text, options, n=1)
            raise _Invalid(allowed + (f" (did you mean {close[0]!r}?)" if close else ""))
        return text

    return parse


def _step_file_format(name: str, raw: Any) -> str:
    value = _choice(STEP_FILE_FORMATS)(name, raw)
    if value == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise _Invalid("'csv', or 'parquet' once pyarrow is installed (pip install 'hf-eco2ai[parquet]')")
    return value


def _iso_country(name: str, raw: Any) -> str:
    allowed = "an ISO 3166-1 alpha-2 or alpha-3 country code such as 'US', 'FR' or 'DEU'"
    if not isinstance(raw, str) or not re.fullmatch(r"[A-Za-z]{2,3}", raw.strip()):
        raise _Invalid(allowed)
    return raw.strip().upper()


def _currency(name: str, raw: Any) -> str:
    allowed = "an ISO 4217 currency code such as 'EUR' or 'USD'"
    if not isinstance(raw, str) or not re.fullmatch(r"[A-Za-z]{3}", raw.strip()):
        raise _Invalid(allowed)
    return raw.strip().upper()


def _lower_text(name: str, raw: Any) -> str:
    return _as_text(name, raw).lower()


def _token(name: str, raw: Any) -> str:
    text = _as_text(name, raw)
    # It goes into an HTTP header: control characters or spaces would corrupt the request.
    if not all(33 <= ord(char) <= 126 for char in text):
        raise _Invalid("printable ASCII without spaces, as issued by Electricity Maps")
    return text


def _api_url(name: str, raw: Any) -> str:
    allowed = "an https:// URL (plain http:// only for a loopback host such as 127.0.0.1), without a query"
    text = _as_text(name, raw)
    parts = urlsplit(text)
    host = parts.hostname or ""
    # The token travels in a header: never send it in clear text off this machine.
    if parts.query or parts.fragment or not host or parts.scheme not in ("https", "http"):
        raise _Invalid(allowed)
    if parts.scheme == "http" and not is_loopback_host(host):
        raise _Invalid(allowed)
    return text.rstrip("/")


def _base_url(example: str) -> Callable[[str, Any], str]:
    allowed = f"an http:// or https:// base URL without a query, e.g. {example}"

    def check(name: str, raw: Any) -> str:
        text = _as_text(name, raw)
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise _Invalid(allowed)
        return text.rstrip("/")

    return check


def _sources(name: str, raw: Any) -> Tuple[str, ...]:
    allowed = "'auto' or one or more of " + ", ".join(SOURCE_NAMES[1:]) + " (a list, or comma-separated)"
    if isinstance(raw, str):
        items: List[Any] = [part for part in raw.split(",")]
    elif isinstance(raw, (list, tuple)):
        items = list(raw)
    else:
        raise _Invalid(allowed)
    names = []
    for item in items:
        if not isinstance(item, str) or item.strip().lower() not in SOURCE_NAMES:
            raise _Invalid(allowed)
        names.append(item.strip().lower())
    if not names or ("auto" in names and len(names) > 1) or len(set(names)) != len(names):
        raise _Invalid(allowed)
    return tuple(names)


_FIELDS: Tuple[_Field, ...] = (
    _Field(
        "tracking_mode",
        "detailed",
        "tracking",
        "mode",
        _choice(TRACKING_MODES),
        "level of detail: minimal (run totals), simple (per epoch) or detailed (per step)",
    ),
    _Field("project_name", "hf-eco2ai", "tracking", "project_name", _as_text, "name of the ML project"),
    _Field("experiment_id", None, "tracking", "experiment_id", _as_text, "identifier of this experiment"),
    _Field("output_dir", "./carbon_reports", "tracking", "output_dir", _as_text, "directory for reports"),
    _Field(
        "step_file_format",
        "csv",
        "tracking",
        "step_file_format",
        _step_file_format,
        "format of the per-step file streamed during a detailed run: csv, or parquet (needs pyarrow)",
    ),
    _Field(
        "measurement_interval_s",
        5.0,
        "tracking",
        "measurement_interval",
        _number_in(0.0, 3600.0, "a number of seconds > 0 and <= 3600", low_open=True),
        "seconds between updates of the carbon figures, budget, stores and exporters",
        extra_env=(ENV_PREFIX + "MEASUREMENT_INTERVAL",),
    ),
    _Field(
        "offline",
        False,
        "tracking",
        "offline",
        _as_bool,
        "no network at all: no live intensity API, no cloud metadata endpoints",
    ),
    _Field(
        "strict", False, "tracking", "strict", _as_bool, "raise instead of warning when a sensor or the live API fails"
    ),
    _Field(
        "log_level",
        "WARNING",
        "tracking",
        "log_level",
        _choice(LOG_LEVELS, upper=True),
        "level of the 'hf_eco2ai' logger",
    ),
    _Field(
        "co2_signal_api_token",
        None,
        "carbon",
        "co2_signal_api_token",
        _token,
        "Electricity Maps / CO2 Signal API token (secret)",
        secret=True,
        extra_env=("CO2_SIGNAL_API_TOKEN",),
    ),
    _Field(
        "country_iso_code",
        None,
        "carbon",
        "country_iso_code",
        _iso_country,
        "ISO 3166-1 alpha-2 or alpha-3 country of the machine",
    ),
    _Field(
        "region",
        None,
        "carbon",
        "region",
        _as_text,
        "sub-national grid: US state or Canadian province code, e.g. 'CA', 'QC'",
    ),
    _Field(
        "cloud_provider",
        None,
        "carbon",
        "cloud_provider",
        _choice(CLOUD_PROVIDERS),
        "cloud provider; detected when unset and not offline",
    ),
    _Field(
        "cloud_region",
        None,
        "carbon",
        "cloud_region",
        _lower_text,
        "cloud region, e.g. 'us-west1', 'eu-central-1', 'westeurope'",
    ),
    _Field(
        "grid_zone",
        None,
        "carbon",
        "grid_zone",
        _as_text,
        "Electricity Maps zone key for the live API, e.g. 'US-MIDA-PJM'; default: the table location's zone",
    ),
    _Field(
        "carbon_intensity_g_per_kwh",
        None,
        "carbon",
        "carbon_intensity_g_per_kwh",
        _number_in(0.0, MAX_INTENSITY_G_PER_KWH, f"a number of gCO2e/kWh from 0 to {MAX_INTENSITY_G_PER_KWH:g}"),
        "explicit grid intensity; overrides every other source",
    ),
    _Field(
        "pue",
        1.0,
        "carbon",
        "pue",
        _number_in(1.0, None, "a power usage effectiveness >= 1.0"),
        "data-centre power usage effectiveness applied to measured energy",
    ),
    _Field(
        "electricity_price_per_kwh",
        None,
        "carbon",
        "electricity_price_per_kwh",
        _number_in(0.0, None, "a price per kWh >= 0"),
        "electricity price, for the cost figures",
    ),
    _Field(
        "electricity_currency",
        None,
        "carbon",
        "electricity_currency",
        _currency,
        "currency of electricity_price_per_kwh",
    ),
    _Field(
        "intensity_api",
        "electricitymaps",
        "carbon",
        "intensity_api",
        _choice(INTENSITY_APIS),
        "live API dialect: Electricity Maps v3 or the legacy CO2 Signal v1",
    ),
    _Field(
        "intensity_api_url",
        None,
        "carbon",
        "intensity_api_url",
        _api_url,
        "base URL of the live API; None uses the dialect's public endpoint",
    ),
    _Field(
        "intensity_cache_s",
        600.0,
        "carbon",
        "intensity_cache_s",
        _number_in(0.0, None, "a number of seconds >= 0"),
        "how long a live intensity is reused",
    ),
    _Field(
        "cloud_metadata_url",
        "http://169.254.169.254",
        "carbon",
        "cloud_metadata_url",
        _base_url("http://169.254.169.254"),
        "base URL of the cloud instance-metadata endpoints (AWS, GCP and Azure share it)",
    ),
    _Field(
        "prometheus_enabled",
        False,
        "monitoring",
        "prometheus_enabled",
        _as_bool,
        "serve the hf_training_* metrics for Prometheus",
    ),
    _Field("prometheus_port", 8000, "monitoring", "prometheus_port", _port, "port of the metrics endpoint"),
    _Field(
        "prometheus_host",
        "127.0.0.1",
        "monitoring",
        "prometheus_host",
        _as_text,
        "address the metrics endpoint binds to; 0.0.0.0 exposes it to the network",
    ),
    _Field(
        "max_projects",
        100,
        "monitoring",
        "max_projects",
        _int_at_least(1, "an integer >= 1"),
        "most distinct project_name label values one exporter creates (bounds series cardinality)",
    ),
    _Field(
        "aggregate_similar_models",
        True,
        "monitoring",
        "aggregate_similar_models",
        _as_bool,
        "label a model given as a local path by its directory name, so checkpoints share a series",
    ),
    _Field(
        "label_cleanup_enabled",
        True,
        "monitoring",
        "label_cleanup_enabled",
        _as_bool,
        "make free-text label values printable, single-line and bounded",
    ),
    _Field(
        "export_batch_size",
        100,
        "monitoring",
        "export_batch_size",
        _int_at_least(1, "an integer >= 1"),
        "step rows per run-store commit: the background writer commits as soon as this many are "
        "waiting, or at its flush interval, whichever comes first",
    ),
    _Field(
        "compression_enabled",
        False,
        "monitoring",
        "compression_enabled",
        _as_bool,
        "gzip the endpoint's answers to scrapers that accept gzip",
    ),
    _Field(
        "prometheus_pushgateway_url",
        None,
        "monitoring",
        "pushgateway_url",
        _base_url("http://127.0.0.1:9091"),
        "Pushgateway base URL: the run's final figures are pushed there when it stops (short jobs "
        "that may end before Prometheus scrapes them)",
    ),
    _Field(
        "carbon_budget_kg",
        None,
        "budget",
        "carbon_budget_kg",
        _number_in(0.0, None, "a number of kg CO2e > 0", low_open=True),
        "carbon budget of the run",
    ),
    _Field(
        "stop_on_budget_exceeded",
        False,
        "budget",
        "stop_on_budget_exceeded",
        _as_bool,
        "ask the training loop to stop once the budget is used up",
    ),
    _Field(
        "rate_hz",
        100.0,
        "sampler",
        "rate_hz",
        _number_in(0.0, MAX_RATE_HZ, f"a sampling rate > 0 and <= {MAX_RATE_HZ:g} Hz", low_open=True),
        "sensor sampling rate",
    ),
    _Field("sources", ("auto",), "sampler", "sources", _sources, "sensor sources to read"),
    _Field(
        "cpu_scope",
        "machine",
        "sampler",
        "cpu_scope",
        _choice(CPU_SCOPES),
        "what the CPU channels (RAPL, the CPU estimate) charge: machine (the whole node) or process "
        "(this process and its children's share of the node's CPU time)",
    ),
)

_BY_NAME: Dict[str, _Field] = {field.name: field for field in _FIELDS}
_SECTIONS: Dict[str, Dict[str, _Field]] = {}
for _field in _FIELDS:
    _SECTIONS.setdefault(_field.section, {})[_field.yaml_key] = _field
del _field

FIELD_NAMES: Tuple[str, ...] = tuple(_BY_NAME)

PathLike = Union[str, "os.PathLike[str]"]


def _invalid(field: _Field, raw: Any, origin: str, allowed: str) -> ConfigurationError:
    hint = ""
    if isinstance(raw, bool) and origin.startswith("yaml "):
        hint = (
            "; YAML reads unquoted yes/no/on/off/y/n/true/false as booleans, so quote the value "
            f"in the file, e.g. {field.yaml_key}: 'NO'"
        )
    return ConfigurationError(
        f"{field.name} = {_shown(raw, field.secret)} (from {origin}) is invalid: expected {allowed}{hint}"
    )


def _parse(field: _Field, raw: Any, origin: str) -> Any:
    try:
        return field.parse(field.name, raw)
    except _Invalid as exc:
        raise _invalid(field, raw, origin, str(exc)) from None


# Documented spellings that name a setting without its unit.
_ALIASES = {"measurement_interval": "measurement_interval_s"}


def _one_of_the_spellings(name: str, value: Any, alias: str, alias_value: Any) -> Any:
    if value is not None and alias_value is not None and value != alias_value:
        raise ConfigurationError(
            f"{name} = {value!r} and {alias} = {alias_value!r} name the same setting: give one of them"
        )
    return value if value is not None else alias_value


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _locate_yaml(config_file: Optional[PathLike]) -> Tuple[Optional[Path], str]:
    if config_file is not None:
        return Path(config_file), "argument config_file"
    from_env = os.environ.get(CONFIG_FILE_ENV, "").strip()
    if from_env:
        return Path(from_env), f"env {CONFIG_FILE_ENV}"
    in_cwd = Path.cwd() / CONFIG_FILE_NAME
    return (in_cwd, "working directory") if in_cwd.is_file() else (None, "")


def _read_yaml(path: Path, how_found: str) -> Dict[str, Tuple[_Field, Any]]:
    """Returns field name -> (field, raw value) from one YAML file; raises ConfigurationError."""
    # Imported here: most runs have no configuration file, and PyYAML takes a while to import.
    import yaml  # type: ignore[import-untyped]

    from hf_eco2ai.safe_yaml import UnsafeYaml, load_config_yaml

    try:
        document = load_config_yaml(path)
    except OSError as exc:
        raise ConfigurationError(
            f"config_file = {str(path)!r} (from {how_found}) cannot be read ({exc.strerror}): "
            f"expected a readable YAML file such as {CONFIG_FILE_NAME}"
        ) from None
    except UnsafeYaml as exc:
        raise ConfigurationError(f"config_file = {str(path)!r} (from {how_found}) {exc}") from None
    except yaml.YAMLError as exc:
        # Only the position and the parser's own words: the offending line may hold the token.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigurationError(
            f"config_file = {str(path)!r} is broken YAML{where}: {str(problem)[:200]}; "
            "expected the mapping shape shown in docs/configuration.md"
        ) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigurationError(
            f"config_file = {str(path)!r} holds a {type(document).__name__} at the top level: "
            f"expected a mapping with the sections {', '.join(_SECTIONS)}"
        )
    found: Dict[str, Tuple[_Field, Any]] = {}
    for section, body in document.items():
        if section not in _SECTIONS:
            raise ConfigurationError(_unknown_key_message(path, str(section), None))
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigurationError(
                f"{section} in {str(path)!r} is a {type(body).__name__}: expected a mapping of "
                f"{', '.join(_SECTIONS[section])}"
            )
        for key, raw in body.items():
            field = _SECTIONS[section].get(str(key))
            if field is None:
                raise ConfigurationError(_unknown_key_message(path, str(key), section))
            if raw is not None:
                found[field.name] = (field, raw)
    return found


def _unknown_key_message(path: Path, key: str, section: Optional[str]) -> str:
    dotted = f"{section}.{key}" if section else key
    misplaced = _BY_NAME.get(key)
    if misplaced is not None and misplaced.yaml_path != dotted:
        hint = f"; {key} belongs at {misplaced.yaml_path}"
    elif section is None:
        hint = _did_you_mean(key, _SECTIONS)
    else:
        hint = _did_you_mean(key, _SECTIONS[section])
    allowed = ", ".join(_SECTIONS) if section is None else ", ".join(_SECTIONS[section])
    where = "top-level section" if section is None else f"key in section {section}"
    return f"{dotted} in {str(path)!r} is not a known {where}{hint} (allowed: {allowed})"


class CarbonConfig:
    """All settings of hf_eco2ai. Keyword arguments only; ``None`` means "not given".

    Args (units in the names; see docs/configuration.md for the environment variables and YAML keys):
        tracking_mode: ``minimal``, ``simple`` or ``detailed`` (default).
        step_file_format: ``csv`` (default) or ``parquet`` (needs pyarrow): the per-step file a
            ``detailed`` run streams every step to.
        project_name, experiment_id, output_dir: identity of the run and where reports go.
        co2_signal_api_token: live-intensity API token. Secret: never shown anywhere.
        country_iso_code, region: location (ISO 3166 country; US state or Canadian province).
        cloud_provider, cloud_region: ``aws``/``gcp``/``azure`` and its region name.
        grid_zone: the live API's zone key, where it differs from the tables' (US balancing areas).
        carbon_intensity_g_per_kwh: an explicit grid intensity, which beats every other source.
        pue: power usage effectiveness (>= 1.0, default 1.0).
        electricity_price_per_kwh, electricity_currency: for the cost figures.
        intensity_api, intensity_api_url, intensity_cache_s: the live API's dialect, base URL and
            cache lifetime in seconds.
        cloud_metadata_url: base URL of the cloud metadata endpoints (for tests and proxies).
        prometheus_enabled, prometheus_port, prometheus_host: the metrics endpoint
            (``export_prometheus`` reads ``prometheus_enabled`` under its other documented name).
        max_projects, aggregate_similar_models, label_cleanup_enabled, export_batch_size,
            compression_enabled: the Prometheus exporter's cardinality and transport settings.
        prometheus_pushgateway_url: push the run's final figures to this Pushgateway at stop.
        carbon_budget_kg, stop_on_budget_exceeded: the budget and whether exceeding it stops training.
        measurement_interval_s: seconds between carbon/exporter updates (``measurement_interval``,
            the eco2ai spelling, is the same setting).
        rate_hz, sources: the sensor sampler's rate and sources.
        cpu_scope: ``machine`` (default) charges the whole node's CPU energy; ``process`` charges
            this process and its children's share of it (their CPU time over the machine's).
        offline: never touch the network. strict: raise instead of warn on sensor/API failures.
        log_level: level of the ``hf_eco2ai`` logger.
        config_file: the YAML file to read instead of ``./eco2ai.yaml``.

    Raises:
        ConfigurationError: any invalid value, unknown YAML key or unreadable/broken YAML file.
    """

    tracking_mode: str
    step_file_format: str
    project_name: str
    experiment_id: Optional[str]
    output_dir: str
    measurement_interval_s: float
    offline: bool
    strict: bool
    log_level: str
    co2_signal_api_token: Optional[str]
    country_iso_code: Optional[str]
    region: Optional[str]
    cloud_provider: Optional[str]
    cloud_region: Optional[str]
    grid_zone: Optional[str]
    carbon_intensity_g_per_kwh: Optional[float]
    pue: float
    electricity_price_per_kwh: Optional[float]
    electricity_currency: Optional[str]
    intensity_api: str
    intensity_api_url: Optional[str]
    intensity_cache_s: float
    cloud_metadata_url: str
    prometheus_enabled: bool
    prometheus_port: int
    prometheus_host: str
    max_projects: int
    aggregate_similar_models: bool
    label_cleanup_enabled: bool
    export_batch_size: int
    compression_enabled: bool
    prometheus_pushgateway_url: Optional[str]
    carbon_budget_kg: Optional[float]
    stop_on_budget_exceeded: bool
    rate_hz: float
    sources: Tuple[str, ...]
    cpu_scope: str

    def __init__(
        self,
        *,
        tracking_mode: Optional[str] = None,
        step_file_format: Optional[str] = None,
        project_name: Optional[str] = None,
        experiment_id: Optional[str] = None,
        output_dir: Optional[PathLike] = None,
        co2_signal_api_token: Optional[str] = None,
        country_iso_code: Optional[str] = None,
        region: Optional[str] = None,
        cloud_provider: Optional[str] = None,
        cloud_region: Optional[str] = None,
        grid_zone: Optional[str] = None,
        prometheus_enabled: Optional[bool] = None,
        prometheus_port: Optional[int] = None,
        prometheus_host: Optional[str] = None,
        max_projects: Optional[int] = None,
        aggregate_similar_models: Optional[bool] = None,
        label_cleanup_enabled: Optional[bool] = None,
        export_batch_size: Optional[int] = None,
        compression_enabled: Optional[bool] = None,
        prometheus_pushgateway_url: Optional[str] = None,
        carbon_budget_kg: Optional[float] = None,
        stop_on_budget_exceeded: Optional[bool] = None,
        measurement_interval_s: Optional[float] = None,
        measurement_interval: Optional[float] = None,
        pue: Optional[float] = None,
        electricity_price_per_kwh: Optional[float] = None,
        electricity_currency: Optional[str] = None,
        offline: Optional[bool] = None,
        strict: Optional[bool] = None,
        carbon_intensity_g_per_kwh: Optional[float] = None,
        intensity_api: Optional[str] = None,
        intensity_api_url: Optional[str] = None,
        intensity_cache_s: Optional[float] = None,
        cloud_metadata_url: Optional[str] = None,
        rate_hz: Optional[float] = None,
        sources: Union[str, Iterable[str], None] = None,
        cpu_scope: Optional[str] = None,
        log_level: Optional[str] = None,
        config_file: Optional[PathLike] = None,
    ) -> None:
        given = dict(locals())
        del given["self"], given["config_file"]
        given["measurement_interval_s"] = _one_of_the_spellings(
            "measurement_interval_s",
            given.pop("measurement_interval_s"),
            "measurement_interval",
            given.pop("measurement_interval"),
        )
        if isinstance(given["output_dir"], os.PathLike):
            given["output_dir"] = os.fspath(given["output_dir"])
        if given["sources"] is not None and not isinstance(given["sources"], str):
            given["sources"] = list(given["sources"])
        yaml_path, how_found = _locate_yaml(config_file)
        from_yaml = _read_yaml(yaml_path, how_found) if yaml_path is not None else {}

        values: Dict[str, Any] = {}
        origins: Dict[str, str] = {}
        for field in _FIELDS:
            value, origin = self._pick(field, given[field.name], from_yaml, yaml_path)
            values[field.name] = value
            origins[field.name] = origin
        self._keep(values, origins, None if yaml_path is None else str(yaml_path))

    def _keep(self, values: Dict[str, Any], origins: Dict[str, str], config_file: Optional[str]) -> None:
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_origins", origins)
        object.__setattr__(self, "config_file", config_file)
        # Each setting is also an instance attribute, so that reading one (on a training loop's
        # hot path too) is a plain attribute lookup rather than a failed one and __getattr__.
        self.__dict__.update(values)

    @staticmethod
    def _pick(
        field: _Field, argument: Any, from_yaml: Mapping[str, Tuple[_Field, Any]], yaml_path: Optional[Path]
    ) -> Tuple[Any, str]:
        if argument is not None:
            return _parse(field, argument, "argument"), "argument"
        for env_name in field.env_names:
            raw = os.environ.get(env_name)
            if raw is not None and raw.strip():
                origin = f"env {env_name}"
                return _parse(field, raw, origin), origin
        if field.name in from_yaml:
            origin = f"yaml {yaml_path} ({field.yaml_path})"
            return _parse(field, from_yaml[field.name][1], origin), origin
        return field.default, "default"

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values")
        name = _ALIASES.get(name, name)
        if values is not None and name in values:
            return values[name]
        raise AttributeError(f"CarbonConfig has no setting {name!r}{_did_you_mean(name, _BY_NAME)}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("CarbonConfig is immutable; use config.replace(name=value)")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CarbonConfig):
            return NotImplemented
        return bool(self._values == other._values)

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._values.items())))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={self._display(name)}" for name in FIELD_NAMES)
        return f"CarbonConfig({shown})"

    __str__ = __repr__

    def _display(self, name: str) -> str:
        value = self._values[name]
        if _BY_NAME[name].secret and value is not None:
            return repr(MASK)
        return repr(value)

    @property
    def export_prometheus(self) -> bool:
        """``prometheus_enabled`` under its other documented name."""
        return bool(self._values["prometheus_enabled"])

    def origin(self, name: str) -> str:
        """Where ``name`` came from: ``argument``, ``env NAME``, ``yaml PATH (section.key)`` or ``default``."""
        name = _ALIASES.get(name, name)
        if name not in self._origins:
            raise ConfigurationError(f"name = {name!r} is not a setting{_did_you_mean(name, _BY_NAME)}")
        return str(self._origins[name])

    def explain(self) -> str:
        """A table of every setting, its value (secrets masked) and where the value came from."""
        width = max(len(name) for name in FIELD_NAMES)
        rows = [
            "CarbonConfig: precedence is argument > environment > eco2ai.yaml > default",
            f"  config file: {self.config_file or 'none found'}",
        ]
        for name in FIELD_NAMES:
            rows.append(f"  {name.ljust(width)}  {self._display(name):<28}  {self._origins[name]}")
        return "\n".join(rows)

    def as_dict(self) -> Dict[str, Any]:
        """The settings as JSON types, secrets as ``"***"`` when set (for reports and stores)."""
        result: Dict[str, Any] = {}
        for name in FIELD_NAMES:
            value = self._values[name]
            if _BY_NAME[name].secret and value is not None:
                value = MASK
            elif isinstance(value, tuple):
                value = list(value)
            result[name] = value
        return result

    def replace(self, **changes: Any) -> "CarbonConfig":
        """A copy with ``changes`` applied as explicit arguments (validated like the constructor's)."""
        values = dict(self._values)
        origins = dict(self._origins)
        for name, raw in changes.items():
            name = _ALIASES.get(name, name)
            field = _BY_NAME.get(name)
            if field is None:
                raise ConfigurationError(f"{name} = {raw!r} is not a setting{_did_you_mean(name, _BY_NAME)}")
            if isinstance(raw, os.PathLike):
                raw = os.fspath(raw)
            if raw is None:
                values[name], origins[name] = field.default, "default"
            else:
                values[name], origins[name] = _parse(field, raw, "argument"), "argument"
        copy = object.__new__(CarbonConfig)
        copy._keep(values, origins, self.config_file)
        return copy


def field_table() -> List[Dict[str, Any]]:
    """One row per setting (name, default, env names, YAML path, doc), for documentation and tests."""
    return [
        {
            "name": field.name,
            "default": field.default,
            "env": list(field.env_names),
            "yaml": field.yaml_path,
            "doc": field.doc,
            "secret": field.secret,
        }
        for field in _FIELDS
    ]
