"""Without torch, transformers or lightning, the package, the meter, sessions and reports work."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parents[1] / "python"

BLOCKER = textwrap.dedent("""
    import sys

    class BlockFrameworks:
        # As if the frameworks were not installed: their import fails like a missing package's.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "transformers", "lightning", "pytorch_lightning"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, BlockFrameworks())
""")


def run_without_frameworks(body: str, tmp_path: Path) -> str:
    script = BLOCKER + f"sys.path.insert(0, {str(PYTHON_DIR)!r})\n" + textwrap.dedent(body)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_meter_session_track_and_reports_work_without_torch(tmp_path: Path) -> None:
    output = run_without_frameworks(
        """
        import time
        import hf_eco2ai
        from hf_eco2ai import CarbonConfig, EnergyMeter, generate_carbon_report, track
        from hf_eco2ai.session.tracking_session import TrackingSession

        with EnergyMeter(sources="synthetic") as meter:
            for _ in range(5):
                time.sleep(0.005)
                meter.mark_step()
        assert len(meter.drain_steps()) == 6

        config = CarbonConfig(offline=True, country_iso_code="FR", output_dir=".")
        with TrackingSession(config, meter=EnergyMeter(sources="synthetic")) as session:
            for _ in range(5):
                time.sleep(0.005)
                session.mark_step()
        generate_carbon_report(session.report(), "html", "report.html")

        @track(config=config, meter=EnergyMeter(sources="synthetic"))
        def work():
            time.sleep(0.02)
        work()
        assert work.carbon_report["total_co2_kg"] > 0
        loaded = [name for name in ("torch", "transformers", "lightning") if name in sys.modules]
        print("loaded:", loaded)
    """,
        tmp_path,
    )
    assert "loaded: []" in output
    assert (tmp_path / "report.html").stat().st_size > 0


def test_the_trainer_callback_names_the_missing_package(tmp_path: Path) -> None:
    output = run_without_frameworks(
        """
        import hf_eco2ai
        for name in ("Eco2AICallback",):
            try:
                getattr(hf_eco2ai, name)
            except ImportError as error:
                print(error)
        try:
            import hf_eco2ai.integrations.lightning
        except ImportError as error:
            print(error)
    """,
        tmp_path,
    )
    assert "pip install 'hf-eco2ai[transformers]'" in output
    assert "pip install 'hf-eco2ai[lightning]'" in output
