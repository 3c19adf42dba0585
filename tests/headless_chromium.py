"""Drive Debian's ``chromium`` headless for tests: the DOM after load, console messages, screenshots.

Console messages come from Chromium's own log (``--enable-logging=stderr``), where every message a
page sends to the DevTools console, including SVG attribute parse errors, appears as a
``CONSOLE`` line. Each call gets a fresh profile directory so parallel runs never share a lock.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections import Counter
from pathlib import Path
from typing import List, NamedTuple, Tuple

import numpy as np

CONSOLE_LINE = re.compile(r":CONSOLE[:(]")
TIMEOUT_S = 90


class PageLoad(NamedTuple):
    dom: str
    console: List[str]


def chromium_path() -> str:
    path = shutil.which("chromium")
    assert path, "chromium is not installed; run `bash scripts/install_system_deps.sh` (make test does)"
    return path


def _run(page: Path, *mode: str) -> Tuple[str, List[str]]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        completed = subprocess.run(
            [
                chromium_path(),
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                *mode,
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    assert completed.returncode == 0, f"chromium failed ({completed.returncode}): {completed.stderr[-2000:]}"
    console = [line for line in completed.stderr.splitlines() if CONSOLE_LINE.search(line)]
    return completed.stdout, console


def load(page: Path) -> PageLoad:
    """The serialised DOM once the page has loaded, and every console message it produced."""
    dom, console = _run(page, "--dump-dom")
    return PageLoad(dom=dom, console=console)


def screenshot(page: Path, png: Path, width: int = 1100, height: int = 2400) -> List[str]:
    """Write a PNG of the page's top ``height`` pixels; return the console messages."""
    _, console = _run(page, f"--window-size={width},{height}", f"--screenshot={png}")
    assert png.exists() and png.stat().st_size > 0, "chromium wrote no screenshot"
    return console


def png_colour_counts(png: Path) -> "Counter[Tuple[int, int, int]]":
    """Pixels per RGB colour of an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat = 8, b""
    width = height = colour_type = 0
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour_type in (2, 6) and interlace == 0, "unsupported PNG layout"
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    channels = 3 if colour_type == 2 else 4
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, stride + 1)
    pixels = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for row in range(height):
        filter_type, line = raw[row, 0], raw[row, 1:]
        if filter_type == 0:
            decoded = line.copy()
        elif filter_type == 1:  # Sub: a running sum along each colour channel
            decoded = (
                (line.reshape(width, channels).astype(np.uint32).cumsum(axis=0) & 0xFF).astype(np.uint8).reshape(stride)
            )
        elif filter_type == 2:  # Up
            decoded = line + previous
        else:  # Average and Paeth depend on the byte just decoded: byte by byte
            decoded = _unfilter_sequential(int(filter_type), line.tolist(), previous.tolist(), channels)
        pixels[row] = decoded
        previous = pixels[row]
    rgb = pixels.reshape(height, width, channels)[:, :, :3].reshape(-1, 3).astype(np.uint32)
    packed, counts = np.unique((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2], return_counts=True)
    return Counter({(int(v) >> 16, (int(v) >> 8) & 0xFF, int(v) & 0xFF): int(n) for v, n in zip(packed, counts)})


def _unfilter_sequential(filter_type: int, line: List[int], previous: List[int], channels: int) -> "np.ndarray":
    for i in range(len(line)):
        left = line[i - channels] if i >= channels else 0
        up = previous[i]
        if filter_type == 3:
            line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
            continue
        up_left = previous[i - channels] if i >= channels else 0
        estimate = left + up - up_left
        distances = (abs(estimate - left), abs(estimate - up), abs(estimate - up_left))
        predictor = (left, up, up_left)[distances.index(min(distances))]
        line[i] = (line[i] + predictor) & 0xFF
    return np.array(line, dtype=np.uint8)
