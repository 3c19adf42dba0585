"""A small CPU workload for `hf-eco2ai profile`: a few seconds of arithmetic on every core."""

import multiprocessing
import time


def spin(seconds: float) -> int:
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        count += sum(i * i for i in range(1000))
    return count


if __name__ == "__main__":
    with multiprocessing.Pool() as pool:
        pool.map(spin, [2.0] * (multiprocessing.cpu_count() or 1))
    print("busy.py: done")
