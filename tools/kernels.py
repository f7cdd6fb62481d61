"""The two CPU kernel configurations that keep the chapters' compared outputs portable.

The same PyTorch code gives different last digits on different CPUs: ATen picks
vectorised kernels for the processor it finds (AVX-512, AVX2 or plain), MKL picks
its own matrix-multiply code paths, and the thread count changes how sums are
split. A training run then ends at a slightly different loss, and a chapter that
prints that loss raw would pass on its author's machine and fail on the next one.

So the committed notebooks and the tests never run under the same kernels:

* ``reference``: how ``make execute`` / ``make book`` execute the chapters whose
  outputs are committed: ATen's portable, non-vectorised kernels (``default``).
* ``test``: how ``make test`` re-executes them under nbval: ATen's AVX2 kernels,
  which every current x86-64 CPU has.

Every compared output therefore has to come out the same under two different
sets of kernels, on the author's own machine: an output that depends on them
fails there, not on a learner's laptop. (Measured on an AVX-512 machine, 40
training steps of a 4-layer GPT: native AVX-512, ``avx2`` and ``default`` give
three different losses from the 6th digit on; ``default`` is about 2x slower.)

Both profiles pin what they can:

* MKL, which does PyTorch's float32 matrix products, runs its AVX2 code path in
  strict conditional-numerical-reproducibility mode (``MKL_CBWR=AVX2,STRICT``):
  Intel documents that this makes MKL's own results independent of the memory
  alignment (without ``STRICT`` the alignment of a tensor changes the last bits)
  and of the processor model. Its ``COMPATIBLE`` path would add a second
  difference but is 2.5x slower.
* oneDNN (bfloat16 matrix products under autocast) is capped at AVX2.
* Two threads (the size of the course's reference machine): the thread count
  changes how sums are split, and so the last digits.

What this does NOT give is the same run on every machine. MKL is only one
library among several in a training step (ATen's own kernels, OpenBLAS in NumPy,
the way the operating system and the CPU's microcode handle denormals and fused
multiply-adds), and a long training run amplifies any last-bit difference.
Measured: chapter 05's CPU run under the ``reference`` profile ends at a
validation loss of 1.624 on one 2-core AVX2 machine and at 1.619 on another. So
the portability of the committed outputs does not rest on reproducible
arithmetic: nbval compares only outputs that cannot depend on the last digits
(verified bounds, counts, shapes), and every outcome of training sits in a cell
that nbval does not compare, followed by an assertion of a band measured across
kernels, machines and seeds. Running the chapters under two different profiles
on the author's own machine is how an output that leaks the last digits is
caught before it reaches another CPU.

``native`` leaves everything as the machine chooses (``COURSE_KERNELS=native``).
NumPy's own BLAS (OpenBLAS) picks its kernels by itself and is left alone:
chapters never print its rounding-level digits, only verified bounds
(`course.verify.agree`).
"""

from __future__ import annotations

import os
import subprocess
import sys

THREADS = "2"

PROFILES: dict[str, dict[str, str]] = {
    "reference": {
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_CBWR": "AVX2,STRICT",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "OMP_NUM_THREADS": THREADS,
        "MKL_NUM_THREADS": THREADS,
    },
    "test": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_CBWR": "AVX2,STRICT",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "OMP_NUM_THREADS": THREADS,
        "MKL_NUM_THREADS": THREADS,
    },
    "native": {},
}

ENV_PROFILE = "COURSE_KERNELS"


def profile_env(name: str) -> dict[str, str]:
    """The environment variables of a profile; a clear error for an unknown name."""
    if name not in PROFILES:
        raise SystemExit(f"unknown kernel profile {name!r} (set {ENV_PROFILE} to one of {', '.join(PROFILES)})")
    return dict(PROFILES[name])


def apply(name: str) -> dict[str, str]:
    """Set a profile's variables in this process's environment (before torch is imported)
    so that every kernel started from here inherits them. Returns what was set."""
    env = profile_env(name)
    os.environ.update(env)
    os.environ[ENV_PROFILE] = name
    return env


def observed() -> dict[str, str]:
    """What a fresh Python process sees under the current environment: PyTorch's CPU
    capability and thread count (checked, not assumed: an unsupported request falls back)."""
    code = (
        "import torch, json; "
        "print(json.dumps({'cpu_capability': torch.backends.cpu.get_cpu_capability(), "
        "'torch_threads': torch.get_num_threads(), 'torch': torch.__version__}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    import json

    return json.loads(out.strip().splitlines()[-1])
