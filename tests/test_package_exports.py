"""Every name the package exports resolves, lazily, to the object its module defines."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import hf_eco2ai


@pytest.mark.parametrize("name", sorted(hf_eco2ai._LAZY_EXPORTS))
def test_each_lazy_export_is_its_modules_object(name: str) -> None:
    module = importlib.import_module(hf_eco2ai._LAZY_EXPORTS[name])
    exported = getattr(hf_eco2ai, name)
    assert exported is getattr(module, name)
    assert name in hf_eco2ai.__all__


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        hf_eco2ai.Nope  # noqa: B018


def test_importing_the_package_imports_no_framework_or_numpy() -> None:
    probe = "import sys, hf_eco2ai; print(sorted(m for m in ('torch', 'transformers', 'lightning', 'numpy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


DOCUMENTED_MODULES = [
    "hf_eco2ai.integrations.transformers",
    "hf_eco2ai.integrations.lightning",
    "hf_eco2ai.integrations.pytorch_lightning",
    "hf_eco2ai.integrations.prometheus",
    "hf_eco2ai.measure",
    "hf_eco2ai.meter",
    "hf_eco2ai.session",
    "hf_eco2ai.store",
    "hf_eco2ai.carbon",
    "hf_eco2ai.reporting",
    "hf_eco2ai.cli",
    "hf_eco2ai.tracer",
    "hf_eco2ai.tracer.config",
    "hf_eco2ai.tracer.analysis",
    "hf_eco2ai.tracer.storage",
    "hf_eco2ai.tracer.integrations",
    "hf_eco2ai.tracer.core.tracer",
    "hf_eco2ai.tracer.watch",
]


@pytest.mark.parametrize("module_name", DOCUMENTED_MODULES)
def test_each_documented_module_imports(module_name: str) -> None:
    assert importlib.import_module(module_name).__name__ == module_name


def test_layer_packages_export_their_main_classes() -> None:
    from hf_eco2ai.meter import EnergyMeter, StepRecords, WindowRecords
    from hf_eco2ai.session import TrackingSession
    from hf_eco2ai.store import RunStore

    assert (EnergyMeter, StepRecords, WindowRecords) == (
        hf_eco2ai.EnergyMeter,
        hf_eco2ai.StepRecords,
        hf_eco2ai.WindowRecords,
    )
    assert TrackingSession is hf_eco2ai.TrackingSession
    assert RunStore.__module__ == "hf_eco2ai.store.run_store"


def test_track_is_the_function_and_carries_current_session() -> None:
    from hf_eco2ai import track

    assert track is hf_eco2ai.track and callable(track)
    assert track.current_session() is None
    assert type(track(offline=True, country_iso_code="FR")).__name__ == "Tracker"


def test_cli_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hf_eco2ai.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "profile" in result.stdout and "devices" in result.stdout
