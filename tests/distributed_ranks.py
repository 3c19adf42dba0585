"""Two-process ``torch.distributed`` jobs for the tests: ranks 0 and 1 on 127.0.0.1 (gloo)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_ranks(
    script: str,
    arguments: Sequence[str],
    out_dir: Path,
    environment: Callable[[int, Dict[str, str]], Dict[str, str]],
) -> List[Any]:
    """Runs ``script`` (``python -c``, with ``arguments``) as ranks 0 and 1 of one job; each
    rank's environment is ``environment(rank, rendezvous)``, where ``rendezvous`` holds the
    ``RANK``/``WORLD_SIZE``/``MASTER_*`` variables. Each rank writes ``rank<r>.json`` in
    ``out_dir``; returns those two documents in rank order."""
    port = free_port()
    children = []
    for rank in (0, 1):
        rendezvous = {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", script, *arguments],
                env=environment(rank, rendezvous),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    for child in children:
        output, _ = child.communicate(timeout=120)
        assert child.returncode == 0, output
    return [json.loads((out_dir / f"rank{rank}.json").read_text()) for rank in (0, 1)]
