"""The NVML emulator (rust/nvml_emulator) for tests: built once, loaded in child processes.

NVML is initialised once per process and kept, so each emulated machine is a fresh Python
process whose dynamic loader finds the emulator as ``libnvidia-ml.so.1`` through
``LD_LIBRARY_PATH``, configured by the ``NVML_EMULATOR`` variable (see
rust/nvml_emulator/src/device.rs). The child's code talks to the emulator through ctypes
(``Emulator``) to set power live and to read the true energy.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from distributed_ranks import run_ranks

REPO = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent
LIBRARY_NAME = "libnvidia-ml.so.1"
# `make nvml-emulator` builds it here; tests build it themselves when it is missing or stale.
EMULATOR_DIR_VARIABLE = "HF_ECO2AI_NVML_EMULATOR_DIR"


def _newest_source_mtime() -> float:
    crate = REPO / "rust" / "nvml_emulator"
    return max(path.stat().st_mtime for path in [crate / "Cargo.toml", *crate.glob("src/*.rs")])


def build_emulator() -> Path:
    """The folder holding the emulator as libnvidia-ml.so.1, built with cargo if needed."""
    given = os.environ.get(EMULATOR_DIR_VARIABLE)
    if given and (Path(given) / LIBRARY_NAME).is_file():
        return Path(given)
    out_dir = REPO / "target" / "nvml-emulator"
    library = out_dir / LIBRARY_NAME
    if library.is_file() and library.stat().st_mtime >= _newest_source_mtime():
        return out_dir
    subprocess.run(
        ["cargo", "build", "--quiet", "-p", "nvml-emulator", "--target-dir", str(REPO / "target")],
        cwd=REPO,
        check=True,
        timeout=600,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "target" / "debug" / "libnvml_emulator.so", library)
    return out_dir


def emulator_env(library_dir: Path, config: str, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(library_dir), env.get("LD_LIBRARY_PATH")]))
    env["NVML_EMULATOR"] = config
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "python"), str(TESTS_DIR), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def run_emulated(
    library_dir: Path, config: str, code: str, env: Optional[Mapping[str, str]] = None, timeout_s: float = 120.0
) -> Any:
    """Runs ``code`` in a fresh Python on the emulated machine; returns the JSON it prints last.

    Warnings are errors in the child too, as under pytest, unless the code catches them.
    """
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        env=emulator_env(library_dir, config, env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert result.returncode == 0, f"child failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_two_ranks(library_dir: Path, config: str, script: str, out_dir: Path, visible: Tuple[str, str]) -> List[Any]:
    """Runs ``script`` as ranks 0 and 1 of a two-process ``torch.distributed`` job (gloo, on
    127.0.0.1) on one emulated machine, rank r seeing the GPUs ``visible[r]``
    (``CUDA_VISIBLE_DEVICES``). The script gets ``out_dir`` as ``sys.argv[1]`` and writes
    ``rank<r>.json`` there; returns those two documents in rank order."""
    return run_ranks(
        script,
        [str(out_dir)],
        out_dir,
        lambda rank, rendezvous: emulator_env(
            library_dir, config, {**rendezvous, "CUDA_VISIBLE_DEVICES": visible[rank]}
        ),
    )


class Emulator:
    """The emulator's control functions, in a process that loaded it (call after NVML is up)."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(LIBRARY_NAME)
        lib.nvml_emulator_set_watts.argtypes = [ctypes.c_uint, ctypes.c_double]
        lib.nvml_emulator_set_scenario.argtypes = [ctypes.c_uint, ctypes.c_char_p]
        lib.nvml_emulator_true_joules.argtypes = [ctypes.c_uint, ctypes.c_double, ctypes.c_double]
        lib.nvml_emulator_true_joules.restype = ctypes.c_double
        lib.nvml_emulator_true_watts.argtypes = [ctypes.c_uint, ctypes.c_double]
        lib.nvml_emulator_true_watts.restype = ctypes.c_double
        lib.nvml_emulator_origin_s.restype = ctypes.c_double
        self._lib = lib

    ALL = 0xFFFFFFFF

    def set_watts(self, gpu: int, watts: float) -> None:
        if self._lib.nvml_emulator_set_watts(gpu, watts) != 0:
            raise ValueError(f"emulator refused set_watts({gpu}, {watts})")

    def set_scenario(self, gpu: int, spec: str) -> None:
        if self._lib.nvml_emulator_set_scenario(gpu, spec.encode()) != 0:
            raise ValueError(f"emulator refused scenario {spec!r} for GPU {gpu}")

    def true_joules(self, gpu: int, t0_s: float, t1_s: float) -> float:
        return float(self._lib.nvml_emulator_true_joules(gpu, t0_s, t1_s))

    def true_watts(self, gpu: int, t_s: float) -> float:
        return float(self._lib.nvml_emulator_true_watts(gpu, t_s))

    def origin_s(self) -> float:
        return float(self._lib.nvml_emulator_origin_s())
