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
    if name == "track":
        # Importing the submodule makes `hf_eco2ai.track` the module; it is callable and forwards
        # to the function, so `from hf_eco2ai import track` works either way.
        assert exported in (module, module.track) and callable(exported)
    else:
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
