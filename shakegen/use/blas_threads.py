"""How many threads NumPy's OpenBLAS may use, for the engine's small matrix products.

The engine's products are small ((batch, units) by (units, 3 units), once per character). Split
over threads they gain little, and on a busy machine OpenBLAS's spinning threads fight for the
cores: on a 2-core AMD EPYC shared with other work, the pretrained model sampled 150 to 220
characters/s at batch 1 with two BLAS threads, against about 2,300 with one. The engine therefore runs its loops under
``limited(1)``, which lowers OpenBLAS's thread count for the duration and restores it after.

OpenBLAS is found among the libraries this process has loaded (``/proc/self/maps``) and set
through its own C functions; with another BLAS, or where that is not possible, nothing changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from pathlib import Path
from typing import Iterator

# (getter, setter) names: NumPy's wheels bundle scipy-openblas (64-bit ints, prefixed names);
# a system NumPy links a plain OpenBLAS.
_FUNCTIONS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)


@functools.lru_cache(maxsize=None)
def _openblas():
    """(get, set) functions of the OpenBLAS NumPy loaded, or None."""
    import numpy  # noqa: F401  (loads its BLAS)

    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = sorted({line.split()[-1] for line in maps.splitlines() if "openblas" in line.rsplit("/", 1)[-1].lower()})
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in _FUNCTIONS:
            if hasattr(library, get_name) and hasattr(library, set_name):
                get, set_ = getattr(library, get_name), getattr(library, set_name)
                get.restype, get.argtypes = ctypes.c_int, []
                set_.restype, set_.argtypes = None, [ctypes.c_int]
                return get, set_
    return None


@contextlib.contextmanager
def limited(threads: int = 1) -> Iterator[None]:
    """At most ``threads`` OpenBLAS threads inside the block; the previous count after it."""
    found = _openblas()
    before = found[0]() if found else 0
    if before <= threads:
        yield
        return
    found[1](threads)
    try:
        yield
    finally:
        found[1](before)
