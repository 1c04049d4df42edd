"""What the benchmark scripts record about the machine they ran on, beyond what ``platform`` tells."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` says.

    Results move with the CPU, not only with its core count: the same code
    and seed train along other trajectories, and the env-to-CartPole ratios
    differ, on an AMD EPYC and on an Intel Xeon of the same size.
    """
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()
