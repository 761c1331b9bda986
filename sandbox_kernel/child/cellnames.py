"""Cell file names as ipykernel's debugger names them (runs inside the sandbox).

The frontend finds the file of a cell it sets breakpoints in by hashing the cell's
code with Murmur2 (the seed, prefix and suffix come from ``debugInfo``), so cells
run while the debugger is on are compiled under that name. The hash is ipykernel's
``murmur2_x86`` (ipykernel/compiler.py, BSD-3-Clause), here because the executor
never imports ipykernel (the Jupyter wire protocol stays in the trusted kernel).
"""

from __future__ import annotations

import os
import tempfile

__all__ = ["HASH_SEED", "cell_directory", "cell_file_name", "murmur2_x86"]

HASH_SEED = 0xC70F6907


def murmur2_x86(text: str, seed: int) -> int:
    """MurmurHash2 (x86, 32-bit) of the UTF-8 bytes of ``text``, as JupyterLab computes it."""
    m = 0x5BD1E995
    data = text.encode("utf-8")
    length = len(data)
    h = seed ^ length
    rounded_end = length & 0xFFFFFFFC
    for i in range(0, rounded_end, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length & 0x03
    k = 0
    if tail == 3:
        k = data[rounded_end + 2] << 16
    if tail in (2, 3):
        k |= data[rounded_end + 1] << 8
    if tail:
        k |= data[rounded_end]
        h ^= k
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def cell_directory() -> str:
    return f"{tempfile.gettempdir()}{os.sep}ipykernel_{os.getpid()}"


def cell_file_name(code: str) -> str:
    return f"{cell_directory()}{os.sep}{murmur2_x86(code, HASH_SEED)}.py"
