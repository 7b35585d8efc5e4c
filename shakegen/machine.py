"""What machine this is (no TensorFlow import, so any script can use it): benchmarks and the pretrained card name it."""

from __future__ import annotations

import os
from pathlib import Path


def processor_description() -> str:
    """Model name, cores and the vector features that decide speed (AVX2, AVX-512, BF16, AMX)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")
    flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
    features = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if flag in flags]
    return f"{name}, {os.cpu_count()} cores, {' '.join(features) or 'no AVX2'}"
