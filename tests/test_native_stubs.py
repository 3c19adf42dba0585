"""The hand-written `_core.pyi` matches the native module, as mypy's stubtest sees it."""

from __future__ import annotations

import subprocess
import sys

import pytest


# stubtest type-checks the stub against typeshed from scratch: minutes on a busy 2-core machine.
@pytest.mark.timeout(600)
def test_core_stubs_match_the_native_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "hf_eco2ai._core"], capture_output=True, text=True, timeout=570
    )
    assert result.returncode == 0, result.stdout + result.stderr
