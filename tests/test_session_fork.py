"""A process forked while a session runs (DataLoader workers, multiprocessing) never hangs on it.

The background drain holds the session's lock while it drains; a fork at that moment copies the
lock held, by a thread the child does not have. The child's copy gets a fresh lock and is a
stopped session that says it was forked.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from hf_eco2ai import CarbonConfig, EnergyMeter
from hf_eco2ai.session.fork_safety import is_forked_copy
from hf_eco2ai.session.tracking_session import TrackingSession

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork only")]

FORKS = 60
CHILD_LIMIT_S = 10.0
HUNG = 3


def _child_uses(session: TrackingSession) -> int:
    """Exit status of the child: 0 when every call returned and the session says it is a copy."""
    figures = session.log({"loss": 0.5})
    session.drain()
    session.epoch_end()
    session.snapshot()
    report = session.stop()
    return 0 if figures == {} and report == {} and not session.running and is_forked_copy(session) else 1


def _wait(pid: int) -> int:
    deadline = time.monotonic() + CHILD_LIMIT_S
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return HUNG


def test_forking_while_the_drainer_runs_never_hangs_the_child(tmp_path: Path) -> None:
    config = CarbonConfig(output_dir=str(tmp_path), offline=True, country_iso_code="FR", measurement_interval=0.001)
    meter = EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 100.0}, rate_hz=2000)
    session = TrackingSession(config, meter=meter, store=False)
    session.start()
    outcomes = []
    try:
        for _ in range(FORKS):
            for _ in range(50):
                session.mark_step()
            pid = os.fork()
            if pid == 0:
                status = 1
                try:
                    status = _child_uses(session)
                finally:
                    os._exit(status)
            outcomes.append(_wait(pid))
    finally:
        report = session.stop()
    assert outcomes == [0] * FORKS, f"{outcomes.count(HUNG)} children hung, {outcomes.count(1)} misbehaved"
    assert report["steps_marked"] == FORKS * 50
    assert not is_forked_copy(session)
    assert all(warning["code"] != "forked-copy" for warning in report["warnings"])
