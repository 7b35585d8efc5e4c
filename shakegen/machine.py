"""What machine this is (no TensorFlow import, so any script can use it): benchmarks and the pretrained card name it."""

from __future__ import annotations

import os
from pathlib import Path


def _cpu_flags() -> set[str]:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))


def native_bfloat16() -> bool:
    """Whether the processor multiplies bfloat16 in hardware (AMX or AVX512-BF16); without it
    TensorFlow emulates bfloat16, slower than float32."""
    return bool(_cpu_flags() & {"amx_bf16", "avx512_bf16"})


def preferred_precision(gpu: bool = False) -> str:
    """The fastest sound training precision here: ``mixed_bfloat16`` on a CPU with native
    bfloat16, else ``float32`` (on a GPU too: cuDNN's GRU has no bfloat16 kernel)."""
    return "mixed_bfloat16" if native_bfloat16() and not gpu else "float32"


def processor_description() -> str:
    """Model name, cores and the vector features that decide speed (AVX2, AVX-512, BF16, AMX)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")
    flags = _cpu_flags()
    features = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if flag in flags]
    return f"{name}, {os.cpu_count()} cores, {' '.join(features) or 'no AVX2'}"
