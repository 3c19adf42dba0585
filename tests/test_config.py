"""CarbonConfig: precedence (argument > env > eco2ai.yaml > default), provenance, validation, secrecy."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_eco2ai.config import CONFIG_FILE_NAME, FIELD_NAMES, CarbonConfig, field_table
from hf_eco2ai.errors import ConfigurationError

TOKEN = "tok-3f9a1c77e2b04d5d8e1f"
REPO_ROOT = Path(__file__).resolve().parent.parent


def _clear_env(mp: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HF_ECO2AI_") or name == "CO2_SIGNAL_API_TOKEN":
            mp.delenv(name)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No inherited HF_ECO2AI_* variables and no eco2ai.yaml in the working directory."""
    _clear_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def _write_yaml(directory: Path, document: Any, name: str = CONFIG_FILE_NAME) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


# Three distinct valid values per field, one per layer; (canonical value, env text, yaml value).
SAMPLES: Dict[str, list] = {
    "tracking_mode": [("minimal",) * 3, ("simple",) * 3, ("detailed",) * 3],
    "step_file_format": [("parquet",) * 3, ("csv", "CSV", "csv"), ("parquet", "Parquet", "parquet")],
    "project_name": [("p-arg",) * 3, ("p-env",) * 3, ("p-yaml",) * 3],
    "experiment_id": [("e1",) * 3, ("e2",) * 3, ("e3",) * 3],
    "output_dir": [("out/a",) * 3, ("out/b",) * 3, ("out/c",) * 3],
    "measurement_interval_s": [(1.5, "1.5", 1.5), (2.0, "2", 2), (30.0, "30.0", 30.0)],
    "offline": [(True, "true", True), (False, "0", False), (True, "yes", True)],
    "strict": [(False, "off", False), (True, "1", True), (False, "no", False)],
    "log_level": [("DEBUG", "debug", "DEBUG"), ("INFO", "INFO", "info"), ("ERROR", "error", "ERROR")],
    "co2_signal_api_token": [("tok-arg-1",) * 3, ("tok-env-2",) * 3, ("tok-yaml-3",) * 3],
    "country_iso_code": [("FR", "fr", "FR"), ("DEU", "DEU", "deu"), ("US", "US", "US")],
    "region": [("CA",) * 3, ("QC",) * 3, ("TX",) * 3],
    "cloud_provider": [("gcp",) * 3, ("aws", "AWS", "aws"), ("azure",) * 3],
    "cloud_region": [("us-west1",) * 3, ("eu-central-1",) * 3, ("westeurope", "WestEurope", "westeurope")],
    "grid_zone": [("US-MIDA-PJM",) * 3, ("DE",) * 3, ("SE-SE3",) * 3],
    "carbon_intensity_g_per_kwh": [(50.0, "50", 50), (0.0, "0", 0), (812.5, "812.5", 812.5)],
    "pue": [(1.0, "1", 1), (1.2, "1.2", 1.2), (1.58, "1.58", 1.58)],
    "electricity_price_per_kwh": [(0.0, "0", 0.0), (0.25, "0.25", 0.25), (0.4, "0.4", 0.4)],
    "electricity_currency": [("EUR", "eur", "EUR"), ("USD",) * 3, ("GBP",) * 3],
    "intensity_api": [("co2signal",) * 3, ("electricitymaps",) * 3, ("co2signal", "CO2SIGNAL", "co2signal")],
    "intensity_api_url": [("http://127.0.0.1:9",) * 3, ("https://example.org/api",) * 3, ("http://[::1]:8",) * 3],
    "intensity_cache_s": [(0.0, "0", 0), (60.0, "60", 60), (900.0, "900", 900)],
    "cloud_metadata_url": [("http://127.0.0.1:1",) * 3, ("http://127.0.0.1:2",) * 3, ("http://127.0.0.1:3",) * 3],
    "prometheus_enabled": [(True, "on", True), (False, "false", False), (True, "TRUE", True)],
    "prometheus_port": [(0, "0", 0), (9100, "9100", 9100), (65535, "65535", 65535)],
    "prometheus_host": [("0.0.0.0",) * 3, ("127.0.0.1",) * 3, ("::1",) * 3],
    "max_projects": [(1, "1", 1), (100, "100", 100), (5000, "5000", 5000)],
    "aggregate_similar_models": [(False, "false", False), (True, "1", True), (False, "off", False)],
    "label_cleanup_enabled": [(True, "yes", True), (False, "0", False), (True, "true", True)],
    "export_batch_size": [(1, "1", 1), (50, "50", 50), (1000, "1000.0", 1000)],
    "compression_enabled": [(True, "on", True), (False, "no", False), (True, "1", True)],
    "prometheus_pushgateway_url": [
        ("http://127.0.0.1:9091", "http://127.0.0.1:9091/", "http://127.0.0.1:9091"),
        ("https://push.example", "https://push.example", "https://push.example"),
        ("http://[::1]:9091", "http://[::1]:9091", "http://[::1]:9091"),
    ],
    "carbon_budget_kg": [(0.5, "0.5", 0.5), (5.0, "5", 5), (1e-6, "1e-6", 1e-6)],
    "stop_on_budget_exceeded": [(True, "1", True), (False, "0", False), (True, "yes", True)],
    "rate_hz": [(10.0, "10", 10), (1000.0, "1000", 1000), (20000.0, "20000", 20000)],
    "sources": [
        (("nvml", "rapl"), "nvml,rapl", ["nvml", "rapl"]),
        (("synthetic",), "synthetic", "synthetic"),
        (("cpu-estimate",), " cpu-estimate ", ["cpu-estimate"]),
    ],
    "cpu_scope": [("process",) * 3, ("machine", "MACHINE", "machine"), ("process", " Process ", "process")],
}


def test_samples_cover_every_setting() -> None:
    assert sorted(SAMPLES) == sorted(FIELD_NAMES)


def test_defaults_apply_when_nothing_is_set() -> None:
    config = CarbonConfig()
    for row in field_table():
        assert getattr(config, row["name"]) == row["default"], row["name"]
        assert config.origin(row["name"]) == "default"
    assert config.pue == 1.0
    assert config.prometheus_host == "127.0.0.1"
    assert config.stop_on_budget_exceeded is False
    assert config.config_file is None


@settings(max_examples=60, deadline=None)
@given(
    layers=st.fixed_dictionaries(
        {name: st.sets(st.sampled_from(["argument", "env", "yaml"])) for name in sorted(SAMPLES)}
    ),
    token_env_name=st.sampled_from(["HF_ECO2AI_CO2_SIGNAL_API_TOKEN", "CO2_SIGNAL_API_TOKEN"]),
)
def test_argument_beats_env_beats_yaml_beats_default(layers: Dict[str, set], token_env_name: str) -> None:
    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as directory:
        _clear_env(mp)
        arguments: Dict[str, Any] = {}
        document: Dict[str, Dict[str, Any]] = {}
        sections = {row["name"]: row["yaml"].split(".") for row in field_table()}
        for name, chosen in layers.items():
            by_arg, by_env, by_yaml = SAMPLES[name]
            if "argument" in chosen:
                arguments[name] = by_arg[0]
            if "env" in chosen:
                env_name = token_env_name if name == "co2_signal_api_token" else "HF_ECO2AI_" + name.upper()
                mp.setenv(env_name, by_env[1])
            if "yaml" in chosen:
                section, key = sections[name]
                document.setdefault(section, {})[key] = by_yaml[2]
        path = _write_yaml(Path(directory), document)
        config = CarbonConfig(config_file=path, **arguments)
        for name, chosen in layers.items():
            by_arg, by_env, by_yaml = SAMPLES[name]
            origin = config.origin(name)
            if "argument" in chosen:
                assert getattr(config, name) == by_arg[0] and origin == "argument", name
            elif "env" in chosen:
                assert getattr(config, name) == by_env[0] and origin.startswith("env "), name
            elif "yaml" in chosen:
                assert getattr(config, name) == by_yaml[0] and origin.startswith(f"yaml {path}"), name
            else:
                assert origin == "default", name


def test_seed_yaml_shape_is_read_from_the_working_directory(clean_env: Path) -> None:
    (clean_env / CONFIG_FILE_NAME).write_text(
        "tracking:\n  mode: detailed\n  project_name: my-project\n  output_dir: ./reports\n\n"
        "carbon:\n  country_iso_code: US\n  co2_signal_api_token: your-token\n\n"
        "monitoring:\n  prometheus_enabled: true\n  prometheus_port: 8000\n",
        encoding="utf-8",
    )
    config = CarbonConfig()
    assert (config.tracking_mode, config.project_name, config.output_dir) == ("detailed", "my-project", "./reports")
    assert (config.country_iso_code, config.co2_signal_api_token) == ("US", "your-token")
    assert (config.prometheus_enabled, config.prometheus_port) == (True, 8000)
    assert config.origin("country_iso_code") == f"yaml {clean_env / CONFIG_FILE_NAME} (carbon.country_iso_code)"
    assert config.config_file == str(clean_env / CONFIG_FILE_NAME)


def test_config_file_named_by_env_is_read(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_yaml(clean_env, {"budget": {"carbon_budget_kg": 2.5}}, name="elsewhere.yaml")
    monkeypatch.setenv("HF_ECO2AI_CONFIG_FILE", str(path))
    assert CarbonConfig().carbon_budget_kg == 2.5


def test_seed_environment_variable_names_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ECO2AI_LOG_LEVEL", "debug")
    monkeypatch.setenv("HF_ECO2AI_OUTPUT_DIR", "/tmp/reports")
    monkeypatch.setenv("HF_ECO2AI_PROJECT_NAME", "env-project")
    monkeypatch.setenv("CO2_SIGNAL_API_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ECO2AI_COUNTRY_ISO_CODE", "se")
    config = CarbonConfig()
    assert (config.log_level, config.output_dir, config.project_name) == ("DEBUG", "/tmp/reports", "env-project")
    assert (config.co2_signal_api_token, config.country_iso_code) == (TOKEN, "SE")
    assert config.origin("co2_signal_api_token") == "env CO2_SIGNAL_API_TOKEN"


def test_empty_environment_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ECO2AI_COUNTRY_ISO_CODE", "")
    config = CarbonConfig()
    assert config.country_iso_code is None and config.origin("country_iso_code") == "default"


def test_explain_names_every_setting_and_its_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ECO2AI_PUE", "1.3")
    text = CarbonConfig(project_name="demo").explain()
    for name in FIELD_NAMES:
        assert name in text
    lines = {line.split()[0]: line for line in text.splitlines()[2:]}
    assert lines["project_name"].rstrip().endswith("argument")
    assert lines["pue"].rstrip().endswith("env HF_ECO2AI_PUE")
    assert lines["rate_hz"].rstrip().endswith("default")


@pytest.mark.parametrize("origin", ["argument", "env", "yaml"])
def test_token_never_appears_in_repr_str_explain_or_dict(
    origin: str, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arguments: Dict[str, Any] = {}
    if origin == "argument":
        arguments["co2_signal_api_token"] = TOKEN
    elif origin == "env":
        monkeypatch.setenv("CO2_SIGNAL_API_TOKEN", TOKEN)
    else:
        _write_yaml(clean_env, {"carbon": {"co2_signal_api_token": TOKEN}})
    config = CarbonConfig(**arguments)
    assert config.co2_signal_api_token == TOKEN
    for text in (repr(config), str(config), config.explain(), repr(config.as_dict())):
        assert TOKEN not in text
    assert config.as_dict()["co2_signal_api_token"] == "***"
    assert CarbonConfig(offline=True).as_dict()["co2_signal_api_token"] in (None, "***")


@pytest.mark.parametrize(
    "arguments, field, value_text, allowed_text",
    [
        ({"tracking_mode": "verbose"}, "tracking_mode", "'verbose'", "minimal, simple, detailed"),
        ({"tracking_mode": "detialed"}, "tracking_mode", "'detialed'", "did you mean 'detailed'"),
        ({"carbon_budget_kg": -1.0}, "carbon_budget_kg", "-1.0", "> 0"),
        ({"carbon_budget_kg": 0}, "carbon_budget_kg", "0", "> 0"),
        ({"prometheus_port": 70000}, "prometheus_port", "70000", "0 to 65535"),
        ({"prometheus_port": -1}, "prometheus_port", "-1", "0 to 65535"),
        ({"prometheus_port": 80.5}, "prometheus_port", "80.5", "integer"),
        ({"prometheus_port": True}, "prometheus_port", "True", "integer"),
        ({"country_iso_code": "U1"}, "country_iso_code", "'U1'", "ISO 3166-1"),
        ({"country_iso_code": "USAA"}, "country_iso_code", "'USAA'", "alpha-2 or alpha-3"),
        ({"country_iso_code": "United States"}, "country_iso_code", "'United States'", "ISO 3166-1"),
        ({"cloud_provider": "gpc"}, "cloud_provider", "'gpc'", "did you mean 'gcp'"),
        ({"pue": 0.9}, "pue", "0.9", ">= 1.0"),
        ({"pue": float("nan")}, "pue", "nan", ">= 1.0"),
        ({"rate_hz": 0}, "rate_hz", "0", "> 0"),
        ({"rate_hz": 50_000}, "rate_hz", "50000", "20000"),
        ({"sources": "gpu"}, "sources", "'gpu'", "nvml"),
        ({"sources": ["auto", "nvml"]}, "sources", "['auto', 'nvml']", "'auto' or"),
        ({"cpu_scope": "proces"}, "cpu_scope", "'proces'", "machine, process (did you mean 'process'?)"),
        ({"measurement_interval_s": 0}, "measurement_interval_s", "0", "> 0"),
        ({"electricity_price_per_kwh": -0.1}, "electricity_price_per_kwh", "-0.1", ">= 0"),
        ({"electricity_currency": "euro"}, "electricity_currency", "'euro'", "ISO 4217"),
        ({"carbon_intensity_g_per_kwh": 5000}, "carbon_intensity_g_per_kwh", "5000", "0 to 2000"),
        ({"intensity_api": "watttime"}, "intensity_api", "'watttime'", "electricitymaps, co2signal"),
        ({"intensity_api_url": "http://api.example.org"}, "intensity_api_url", "'http://api.example.org'", "https://"),
        ({"intensity_api_url": "https://x.org/?zone=FR"}, "intensity_api_url", "zone=FR", "without a query"),
        ({"cloud_metadata_url": "ftp://x"}, "cloud_metadata_url", "'ftp://x'", "http://"),
        ({"project_name": "  "}, "project_name", "'  '", "non-empty"),
        ({"offline": "maybe"}, "offline", "'maybe'", "true or false"),
        ({"log_level": "LOUD"}, "log_level", "'LOUD'", "DEBUG"),
        ({"max_projects": 0}, "max_projects", "0", ">= 1"),
        ({"export_batch_size": 2.5}, "export_batch_size", "2.5", "integer"),
    ],
)
def test_bad_argument_names_field_value_and_what_is_allowed(
    arguments: Dict[str, Any], field: str, value_text: str, allowed_text: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CarbonConfig(**arguments)
    message = str(caught.value)
    assert message.startswith(field + " = ")
    assert value_text in message
    assert allowed_text in message
    assert "(from argument)" in message
    assert isinstance(caught.value, ValueError)


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ECO2AI_PROMETHEUS_PORT", "http")
    with pytest.raises(ConfigurationError, match=r"prometheus_port = 'http' \(from env HF_ECO2AI_PROMETHEUS_PORT\)"):
        CarbonConfig()


def test_bad_yaml_value_names_file_and_key(clean_env: Path) -> None:
    path = _write_yaml(clean_env, {"budget": {"carbon_budget_kg": -3}})
    with pytest.raises(ConfigurationError) as caught:
        CarbonConfig()
    assert f"carbon_budget_kg = -3 (from yaml {path} (budget.carbon_budget_kg))" in str(caught.value)


@pytest.mark.parametrize(
    "document, expected",
    [
        ({"carbon": {"country_iso_cod": "US"}}, "carbon.country_iso_cod in .* did you mean 'country_iso_code'"),
        ({"monitorng": {"prometheus_port": 1}}, "monitorng in .* top-level section; did you mean 'monitoring'"),
        ({"tracking": {"country_iso_code": "US"}}, "country_iso_code belongs at carbon.country_iso_code"),
        ({"tracking": {"tracking_mode": "simple"}}, "tracking_mode belongs at tracking.mode"),
        ({"pue": 1.2}, "pue belongs at carbon.pue"),
        ({"carbon": ["US"]}, "carbon in .* is a list: expected a mapping"),
    ],
)
def test_unknown_or_misplaced_yaml_key_is_rejected_with_a_hint(clean_env: Path, document: Any, expected: str) -> None:
    _write_yaml(clean_env, document)
    with pytest.raises(ConfigurationError, match=expected):
        CarbonConfig()


def test_broken_yaml_gives_position_but_not_the_line_which_may_hold_the_token(clean_env: Path) -> None:
    (clean_env / CONFIG_FILE_NAME).write_text(
        f"carbon:\n  co2_signal_api_token: {TOKEN}\n   country_iso_code: [US\n", encoding="utf-8"
    )
    with pytest.raises(ConfigurationError) as caught:
        CarbonConfig()
    message = str(caught.value)
    assert "broken YAML at line" in message
    assert TOKEN not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_yaml_is_loaded_safely_so_python_tags_are_refused(clean_env: Path) -> None:
    marker = clean_env / "executed"
    (clean_env / CONFIG_FILE_NAME).write_text(
        f"tracking:\n  project_name: !!python/object/apply:os.system ['touch {marker}']\n", encoding="utf-8"
    )
    with pytest.raises(ConfigurationError, match="broken YAML"):
        CarbonConfig()
    assert not marker.exists()


def test_top_level_yaml_must_be_a_mapping(clean_env: Path) -> None:
    (clean_env / CONFIG_FILE_NAME).write_text("- tracking\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="holds a list at the top level"):
        CarbonConfig()


def test_missing_explicit_config_file_is_an_error(clean_env: Path) -> None:
    with pytest.raises(ConfigurationError, match="config_file = .*nope.yaml.* cannot be read"):
        CarbonConfig(config_file=clean_env / "nope.yaml")


def test_empty_yaml_file_means_defaults(clean_env: Path) -> None:
    (clean_env / CONFIG_FILE_NAME).write_text("# nothing yet\n", encoding="utf-8")
    assert CarbonConfig().origin("pue") == "default"


@pytest.mark.parametrize("bad_token", ["has space", "line\nbreak", "tab\tinside"])
def test_malformed_token_is_rejected_without_echoing_it(bad_token: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CarbonConfig(co2_signal_api_token="prefix" + bad_token)
    assert "co2_signal_api_token = <hidden>" in str(caught.value)
    assert bad_token not in str(caught.value)


def test_errors_about_other_fields_never_contain_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CO2_SIGNAL_API_TOKEN", TOKEN)
    with pytest.raises(ConfigurationError) as caught:
        CarbonConfig(prometheus_port=99999)
    assert TOKEN not in str(caught.value)


def test_monitoring_guide_settings_are_accepted() -> None:
    config = CarbonConfig(
        max_projects=100,
        aggregate_similar_models=True,
        label_cleanup_enabled=True,
        measurement_interval=10.0,
        export_batch_size=100,
        compression_enabled=True,
        prometheus_enabled=True,
    )
    assert (config.max_projects, config.export_batch_size, config.compression_enabled) == (100, 100, True)
    assert config.export_prometheus is True
    assert CarbonConfig().export_prometheus is False


def test_config_is_immutable_and_replace_validates() -> None:
    config = CarbonConfig(country_iso_code="FR")
    with pytest.raises(AttributeError, match="immutable"):
        config.pue = 2.0  # type: ignore[misc]
    changed = config.replace(pue=1.4, country_iso_code="de")
    assert (changed.pue, changed.country_iso_code, changed.origin("pue")) == (1.4, "DE", "argument")
    assert config.pue == 1.0
    with pytest.raises(ConfigurationError, match="pue = 0.5"):
        config.replace(pue=0.5)
    with pytest.raises(ConfigurationError, match="did you mean 'pue'"):
        config.replace(peu=1.2)


def test_unknown_attribute_suggests_the_setting() -> None:
    with pytest.raises(AttributeError, match="did you mean 'country_iso_code'"):
        CarbonConfig().country_iso  # noqa: B018


def test_path_arguments_are_accepted(clean_env: Path) -> None:
    assert CarbonConfig(output_dir=clean_env / "reports").output_dir == str(clean_env / "reports")


def test_configuration_doc_lists_every_setting_and_env_variable() -> None:
    text = (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for row in field_table():
        assert f"`{row['name']}`" in text, row["name"]
        for env_name in row["env"]:
            assert f"`{env_name}`" in text, env_name
        assert f"`{row['yaml']}`" in text, row["yaml"]


def test_measurement_interval_keeps_its_eco2ai_spelling_as_an_alias(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert CarbonConfig(measurement_interval=2.5).measurement_interval_s == 2.5
    assert CarbonConfig(measurement_interval_s=2.5).measurement_interval == 2.5
    assert CarbonConfig().replace(measurement_interval=7).measurement_interval_s == 7.0
    monkeypatch.setenv("HF_ECO2AI_MEASUREMENT_INTERVAL", "3")
    config = CarbonConfig()
    assert (
        config.measurement_interval_s == 3.0
        and config.origin("measurement_interval") == "env HF_ECO2AI_MEASUREMENT_INTERVAL"
    )
    with pytest.raises(ConfigurationError, match="name the same setting"):
        CarbonConfig(measurement_interval=1.0, measurement_interval_s=2.0)
