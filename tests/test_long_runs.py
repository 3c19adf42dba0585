"""Long runs: every step streamed to the per-step file and the store, a bounded report whose series
keeps the spikes, totals that agree with the file, a run's end finished in the background, and a
start that does no work that could wait."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from local_servers import MetadataServer

from hf_eco2ai import CarbonConfig, EnergyMeter
from hf_eco2ai.reporting.files import write_reports
from hf_eco2ai.reporting.step_file import read_step_file
from hf_eco2ai.session import TrackingSession
from hf_eco2ai.session.downsample import Downsampler
from hf_eco2ai.session.run_records import MAX_SERIES_POINTS
from hf_eco2ai.store.run_store import RunStore
from hf_eco2ai.units import JOULES_PER_KWH

PYTHON_DIR = Path(__file__).resolve().parents[1] / "python"
TESTS_DIR = Path(__file__).resolve().parent
MAX_REPORT_BYTES = 2_000_000


def config(tmp_path: Path, **settings: Any) -> CarbonConfig:
    settings.setdefault("country_iso_code", "FR")
    return CarbonConfig(output_dir=str(tmp_path), offline=True, **settings)


def constant_meter(watts: float = 100.0) -> EnergyMeter:
    # Buffers for a loop that marks a million steps a second while a busy machine may hold the
    # sampler back for a while: no record may be dropped in these tests.
    return EnergyMeter(
        sources="synthetic",
        synthetic={"kind": "constant", "watts": watts},
        ring_capacity=2**18,
        boundary_capacity=2**18,
    )


def mark(session: TrackingSession, steps: int, log_every: int = 1000) -> None:
    mark_step = session.mark_step
    for step in range(1, steps + 1):
        mark_step()
        if step % log_every == 0:
            session.log({"loss": 1.0}, step=step)


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One run of 10^5 steps with the store and the per-step file, stopped and fully written."""
    tmp_path = tmp_path_factory.mktemp("long")
    session = TrackingSession(config(tmp_path), meter=constant_meter())
    session.start()
    mark(session, 100_000)
    report = session.stop()
    yield session, report, tmp_path


def test_the_per_step_file_and_the_store_hold_every_step_of_a_long_run(long_run: Any) -> None:
    session, report, tmp_path = long_run
    indices = [step["index"] for step in read_step_file(session.steps_file)]
    assert indices == list(range(100_001))  # every marked step, then the tail
    stored = RunStore(tmp_path / "runs.sqlite").steps(session.run_id)
    assert stored.index.tolist() == indices
    assert report["steps_file"] == {"path": str(session.steps_file), "format": "csv", "rows": 100_001}


def test_the_reports_after_a_long_run_have_the_totals_of_the_per_step_file(long_run: Any) -> None:
    session, report, tmp_path = long_run
    file_joules = sum(step["joules"] for step in read_step_file(session.steps_file))
    assert report["energy"]["it_kwh"] * JOULES_PER_KWH == pytest.approx(file_joules, rel=1e-9)
    series = report["step_series"]
    assert sum(series["count"]) == series["steps"] == 100_000
    series_joules = sum(count * mean for count, mean in zip(series["count"], series["joules_mean"]))
    assert series_joules + series["tail"]["joules"] == pytest.approx(file_joules, rel=1e-9)
    paths = write_reports(report, tmp_path / "out", ["json", "csv-summary", "markdown", "html"])
    markdown = paths["markdown"].read_text()
    assert "## Steps (100001)" in markdown
    assert session.steps_file.name.replace("_", "\\_") in markdown  # Markdown escapes underscores
    html = paths["html"].read_text()
    assert 0 < html.count('class="bar') <= 400 and "Each bar is the mean of up to" in html
    written = json.loads(paths["json"].read_text())
    assert written["total_co2_kg"] == report["total_co2_kg"]
    assert written["energy"]["total_kwh"] == pytest.approx(file_joules / JOULES_PER_KWH * report["energy"]["pue"])


def test_the_json_report_stays_bounded_however_long_the_run(long_run: Any) -> None:
    session, report, tmp_path = long_run
    paths = write_reports(report, tmp_path / "bounded", ["json"])
    assert paths["json"].stat().st_size <= MAX_REPORT_BYTES
    assert "steps" not in report
    assert len(report["step_series"]["joules_mean"]) <= MAX_SERIES_POINTS
    assert len(report["power_trace"]["t_s"]) <= MAX_SERIES_POINTS


def test_the_csv_report_format_is_the_streamed_file_itself(long_run: Any) -> None:
    session, report, tmp_path = long_run
    before = session.steps_file.stat().st_mtime_ns
    paths = write_reports(report, tmp_path, ["csv"])
    assert paths["csv"] == session.steps_file and session.steps_file.stat().st_mtime_ns == before


def test_the_downsampled_series_keeps_the_maximum_step() -> None:
    rng = np.random.default_rng(7)
    sampler = Downsampler(n_columns=2, max_points=MAX_SERIES_POINTS, width=1.0)
    spike_step = 123_457
    total = 0.0
    for first in range(0, 300_000, 1000):
        keys = np.arange(first, first + 1000)
        values = rng.random((1000, 2))
        if first <= spike_step < first + 1000:
            values[spike_step - first, 0] = 1000.0
        total += values[:, 0].sum()
        sampler.add(keys, values)
    series = sampler.series(["joules", "other"])
    assert len(series["count"]) <= MAX_SERIES_POINTS and sum(series["count"]) == 300_000
    peak = int(np.argmax(series["columns"]["joules"]["max"]))
    assert series["columns"]["joules"]["max"][peak] == 1000.0 and series["max_key"][peak] == spike_step
    assert series["first_key"][peak] <= spike_step <= series["last_key"][peak]
    means, counts = series["columns"]["joules"]["mean"], series["count"]
    assert sum(mean * count for mean, count in zip(means, counts)) == pytest.approx(total, rel=1e-9)


def test_the_report_series_keeps_a_spiking_step(tmp_path: Path) -> None:
    session = TrackingSession(config(tmp_path), meter=constant_meter(), store=False)
    session.start()
    mark(session, 5000, log_every=500)
    time.sleep(0.05)  # one step 50 ms long among steps of microseconds: its energy towers over theirs
    mark(session, 3000, log_every=500)
    report = session.stop()
    spike = max(read_step_file(session.steps_file), key=lambda step: step["joules"] if step["epoch"] is not None else 0)
    series = report["step_series"]
    peak = int(np.argmax(series["joules_max"]))
    assert series["max_step"][peak] == spike["index"]
    assert series["joules_max"][peak] == pytest.approx(spike["joules"], rel=1e-9)


def test_rows_go_to_parquet_when_asked(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="the parquet extra (pyarrow) is not installed")
    session = TrackingSession(config(tmp_path, step_file_format="parquet"), meter=constant_meter(), store=False)
    session.start()
    mark(session, 2500, log_every=500)
    report = session.stop()
    steps = list(read_step_file(session.steps_file))
    assert session.steps_file.suffix == ".parquet" and report["steps_file"]["format"] == "parquet"
    assert [step["index"] for step in steps] == list(range(2501))
    assert sum(step["joules"] for step in steps) == pytest.approx(report["energy"]["it_kwh"] * JOULES_PER_KWH, rel=1e-9)


def test_a_killed_process_keeps_every_streamed_row_up_to_the_last_flush(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(PYTHON_DIR)!r})
        from hf_eco2ai import CarbonConfig, EnergyMeter
        from hf_eco2ai.session import TrackingSession
        session = TrackingSession(CarbonConfig(output_dir={str(tmp_path)!r}, offline=True, country_iso_code="FR"),
                                  meter=EnergyMeter(sources="synthetic", ring_capacity=2**18,
                                                    boundary_capacity=2**18))
        session.start()
        for _ in range(20_000):
            session.mark_step()
        time.sleep(0.05)
        session.flush()
        print(session.run_id, session.steps_file, session.report(combine_ranks=False)["steps_file"]["rows"], flush=True)
        for _ in range(5_000):
            session.mark_step()
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        run_id, steps_file, flushed = child.stdout.readline().split()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    kept = [step["index"] for step in read_step_file(steps_file)]
    assert int(flushed) > 0 and kept[: int(flushed)] == list(range(int(flushed)))
    stored = RunStore(tmp_path / "runs.sqlite").steps(run_id).index.tolist()
    assert stored[: int(flushed)] == list(range(int(flushed)))


def test_interpreter_exit_waits_for_the_end_of_the_run_to_be_written(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(PYTHON_DIR)!r}, {str(TESTS_DIR)!r}]
        from transformers import Trainer
        from hf_eco2ai import CarbonConfig, EnergyMeter, Eco2AICallback
        from tiny_training import TokenDataset, tiny_bert, training_arguments
        callback = Eco2AICallback(CarbonConfig(output_dir={str(tmp_path / "reports")!r}, offline=True,
                                               country_iso_code="FR"),
                                  meter=EnergyMeter(sources="synthetic"))
        Trainer(model=tiny_bert(), args=training_arguments({str(tmp_path / "out")!r}, max_steps=6),
                train_dataset=TokenDataset(64), callbacks=[callback]).train()
    """)
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=240)
    reports = tmp_path / "reports"
    (json_path,) = reports.glob("carbon_report_*.json")
    report = json.loads(json_path.read_text())
    assert report["training"]["optimizer_steps"] == 6
    steps = list(read_step_file(report["steps_file"]["path"]))
    assert len(steps) == report["steps_file"]["rows"] == 7
    for suffix in (".html", ".md"):
        assert json_path.with_suffix(suffix).stat().st_size > 0
    assert not list(reports.glob(".*.partial"))
    stored = RunStore(reports / "runs.sqlite")
    assert stored.get_run(report["run"]["run_id"]).status == "finished"
    assert stored.report(report["run"]["run_id"])["total_co2_kg"] == report["total_co2_kg"]


def test_a_tight_loop_of_marks_keeps_the_resident_memory_flat(tmp_path: Path) -> None:
    # A fresh process, so that what earlier tests left in the allocator does not count. A loop
    # that marks as fast as it can fills the record ring between drains (8,192 records); drains
    # of such batches in one piece left the heap tens of MiB larger, varying run to run.
    script = textwrap.dedent(f"""
        import json, resource, sys
        sys.path.insert(0, {str(PYTHON_DIR)!r})
        from hf_eco2ai import CarbonConfig, EnergyMeter
        from hf_eco2ai.session import TrackingSession
        def rss_mib():
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * resource.getpagesize() / 2**20
        session = TrackingSession(CarbonConfig(output_dir={str(tmp_path)!r}, offline=True, country_iso_code="FR"),
                                  store=False, step_file=False,
                                  meter=EnergyMeter(sources="synthetic", synthetic={{"kind": "constant", "watts": 1.0}}))
        session.start()
        mark, log, rss_mib_after = session.mark_step, session.log, {{}}
        for thousands in range(1, 1001):
            for _ in range(1000):
                mark()
            log()
            if thousands in (10, 1000):
                rss_mib_after[thousands * 1000] = rss_mib()
        session.stop()
        print(json.dumps(rss_mib_after))
    """)
    done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=240)
    rss_mib_after = json.loads(done.stdout.strip().splitlines()[-1])
    # Measured: +4.0 to +4.8 MiB (the aggregates and the interpreter warming up); +10 to +23 MiB
    # when each drain handled the whole batch at once.
    assert rss_mib_after["1000000"] - rss_mib_after["10000"] < 8.0, rss_mib_after


def test_opening_an_existing_store_creates_no_schema(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    RunStore(path)
    writer = sqlite3.connect(str(path), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        started = time.monotonic()
        RunStore(path)
        waited_s = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    # The busy timeout is 10 s: creating tables would have had to wait for the lock.
    assert waited_s < 5.0


def test_a_run_with_an_explicit_intensity_probes_no_cloud_metadata(tmp_path: Path) -> None:
    server = MetadataServer(provider="gcp", region="europe-west1-b")
    try:
        session = TrackingSession(
            CarbonConfig(output_dir=str(tmp_path), carbon_intensity_g_per_kwh=100.0, cloud_metadata_url=server.url),
            meter=constant_meter(),
        )
        session.start()
        mark(session, 10, log_every=5)
        session.stop()
    finally:
        server.close()
    assert server.requests == []


def test_start_and_the_first_log_import_nothing_the_end_of_the_run_needs(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(PYTHON_DIR)!r})
        from hf_eco2ai import CarbonConfig, EnergyMeter
        from hf_eco2ai.session import TrackingSession
        session = TrackingSession(CarbonConfig(output_dir={str(tmp_path)!r}, offline=True, country_iso_code="FR"),
                                  meter=EnergyMeter(sources="synthetic"))
        session.start()
        for _ in range(100):
            session.mark_step()
        session.log({{"loss": 1.0}}, step=100)
        print(" ".join(sorted(name for name in sys.modules if name.startswith(("hf_eco2ai.reporting", "numpy.ma",
                                                                              "pyarrow", "hf_eco2ai.integrations")))))
        session.stop()
    """)
    imported = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=120, env={**os.environ}
    ).stdout.split()
    for later in (
        "hf_eco2ai.reporting.html_format",
        "hf_eco2ai.reporting.markdown_format",
        "hf_eco2ai.reporting.svg_charts",
        "hf_eco2ai.reporting.generate",
        "numpy.ma",
        "pyarrow",
        "hf_eco2ai.integrations.prometheus",
    ):
        assert later not in imported
