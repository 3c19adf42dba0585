"""The stand-in workload of the measure_* examples: put your real training where they call it."""

import time

import numpy as np


def busy_cpu(seconds):
    """Matrix products until ``seconds`` have passed."""
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((128, 128))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        matrix = np.tanh(matrix @ matrix.T / 128.0)
    return float(matrix.sum())
