"""What hf-eco2ai says through ``logging``: the configured level, where each message comes from,
the exporter's URL, and the CarbonTracker API's outputs at the end of a run."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator, List

import pytest
from local_servers import clean_carbon_env, loopback_only  # noqa: F401

from hf_eco2ai import CarbonConfig, EnergyMeter
from hf_eco2ai.integrations.prometheus import PrometheusExporter
from hf_eco2ai.measure import CarbonTracker
from hf_eco2ai.session.tracking_session import TrackingSession
from hf_eco2ai.store.run_store import RunStore, default_store_path

pytestmark = [pytest.mark.usefixtures("loopback_only", "clean_carbon_env"), pytest.mark.timeout(120)]


@pytest.fixture
def package_logger_level() -> Iterator[logging.Logger]:
    """The ``hf_eco2ai`` logger, with its level restored after the test."""
    logger = logging.getLogger("hf_eco2ai")
    level = logger.level
    yield logger
    logger.setLevel(level)


def _synthetic_meter() -> EnergyMeter:
    return EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 40.0}, rate_hz=500)


def test_a_configured_log_level_is_applied_to_the_hf_eco2ai_logger(
    package_logger_level: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    TrackingSession(CarbonConfig(log_level="error", offline=True), meter=_synthetic_meter(), store=False)
    assert package_logger_level.level == logging.ERROR
    monkeypatch.setenv("HF_ECO2AI_LOG_LEVEL", "DEBUG")
    TrackingSession(CarbonConfig(offline=True), meter=_synthetic_meter(), store=False)
    assert package_logger_level.level == logging.DEBUG


def test_the_default_log_level_leaves_the_logger_to_the_application(package_logger_level: logging.Logger) -> None:
    package_logger_level.setLevel(logging.INFO)
    TrackingSession(CarbonConfig(offline=True), meter=_synthetic_meter(), store=False)
    assert package_logger_level.level == logging.INFO


RUN_WITH_CARBON_TRACKER = """
    import sys
    from hf_eco2ai import CarbonConfig
    from hf_eco2ai.measure import CarbonTracker

    config = CarbonConfig(sources="cpu-estimate", offline=True, country_iso_code="FR", output_dir=sys.argv[1])
    tracker = CarbonTracker(project_name="levels", config=config)
    with tracker.start_tracking("work"):
        sum(range(100_000))
"""


def _run_script(tmp_path: Path, log_level: str) -> subprocess.CompletedProcess:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("HF_ECO2AI_")}
    if log_level:
        environment["HF_ECO2AI_LOG_LEVEL"] = log_level
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RUN_WITH_CARBON_TRACKER), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=environment,
    )


def test_log_level_info_shows_the_summary_line_in_a_script_without_logging_setup(tmp_path: Path) -> None:
    shown = _run_script(tmp_path, "INFO")
    assert shown.returncode == 0, shown.stderr
    summary = [line for line in shown.stderr.splitlines() if "CO2e at" in line]
    assert len(summary) == 1 and summary[0].startswith("hf-eco2ai: ")
    quiet = _run_script(tmp_path, "")
    assert quiet.returncode == 0, quiet.stderr
    assert "CO2e at" not in quiet.stderr


def _warning_messages(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("hf_eco2ai") and record.levelno >= logging.WARNING
    ]


def test_every_logged_warning_says_it_comes_from_hf_eco2ai(
    caplog: pytest.LogCaptureFixture, clean_carbon_env: Path
) -> None:
    # No location (a fallback intensity) and a budget spent at once: two parts of the package warn.
    config = CarbonConfig(
        offline=True, carbon_budget_kg=1e-15, measurement_interval=0.05, output_dir=str(clean_carbon_env)
    )
    with caplog.at_level(logging.WARNING, logger="hf_eco2ai"):
        tracker = CarbonTracker(project_name="warnings", config=config, report_formats=())
        with tracker.start_tracking("work"):
            sum(range(200_000))
    messages = _warning_messages(caplog)
    assert any("budget" in message for message in messages)
    assert any("intensity" in message or "country" in message for message in messages)
    assert all(message.startswith("hf-eco2ai: ") for message in messages), messages


def test_the_prometheus_url_is_logged_once_when_the_exporter_starts_serving(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="hf_eco2ai"):
        with PrometheusExporter(port=0) as exporter:
            exporter.refresh()
    lines = [record.getMessage() for record in caplog.records if exporter.url in record.getMessage()]
    assert lines == [f"hf-eco2ai: Prometheus metrics at {exporter.url}"]
    assert all(record.levelno == logging.INFO for record in caplog.records if exporter.url in record.getMessage())


def test_carbon_tracker_writes_the_reports_a_store_row_and_an_emissions_row(
    caplog: pytest.LogCaptureFixture, clean_carbon_env: Path
) -> None:
    output_dir = clean_carbon_env / "out"
    config = CarbonConfig(sources="synthetic", offline=True, country_iso_code="FR", output_dir=str(output_dir))
    with caplog.at_level(logging.INFO, logger="hf_eco2ai"):
        tracker = CarbonTracker(project_name="tracker-outputs", config=config)
        with tracker.start_tracking("outer"):
            with tracker.start_tracking("inner"):
                sum(range(100_000))
        with tracker.start_tracking("second run"):
            sum(range(100_000))
    run_ids = [str(report["run"]["run_id"]) for report in tracker.reports]
    assert len(run_ids) == 2, "each stretch with a session open is one run"
    for run_id in run_ids:
        stem = output_dir / f"carbon_report_{run_id[:12]}"
        for suffix in (".json", ".html", ".md", ".steps.csv"):
            assert Path(f"{stem}{suffix}").is_file()
        assert json.loads(Path(f"{stem}.json").read_text())["run"]["project_name"] == "tracker-outputs"
    stored = RunStore(default_store_path(str(output_dir)), read_only=True).list_runs()
    assert sorted(run.run_id for run in stored) == sorted(run_ids)
    with (output_dir / "emissions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["run_id"] for row in rows] == run_ids
    assert {row["intensity_source"] for row in rows} == {"country-table"}
    summaries = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "CO2e at" in r.getMessage()]
    assert len(summaries) == 2 and all(
        f"carbon_report_{run_id[:12]}.html" in summaries[i] for i, run_id in enumerate(run_ids)
    )


def test_carbon_tracker_report_formats_are_checked_at_construction(clean_carbon_env: Path) -> None:
    from hf_eco2ai.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="report_formats"):
        CarbonTracker(config=CarbonConfig(offline=True, sources="synthetic"), report_formats=("pdf",))
