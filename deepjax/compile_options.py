"""Per-jit XLA options for CPU: which library runs convolutions, the vector width, and
LLVM's level for what runs once (a model's init).

On CPU, jax 0.10's XLA hands convolutions to YNNPACK by default. On the 2-core development
CPU (Zen 4) that path computes convolution *weight gradients* on maps of 32 px and more at
20-55 GFLOP/s, where XLA's Eigen convolutions reach 110-210 (`deepjax bench`
rows before/after, and docs/performance.md). Keeping YNNPACK for dots only
(`xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT`) measured:
faceswap "Original" train step 14.0 -> 9.0 s (batch 64), FOMM vox-256 train step 12.1 ->
7.8 s (batch 2, 256 px), FOMM animation 18.5 -> 22.9 frames/s (64 px).

`jit(fn, **kw)` is `jax.jit(fn, compiler_options=cpu_options(), **kw)`: the options are
given per compiled function (no process-wide XLA_FLAGS, nothing changed for other code in
the process), only on the CPU backend, and only when this jaxlib knows the option (probed
once with a tiny compile; unknown -> no option). `DEEPJAX_CPU_CONV=ynn` keeps XLA's default
(to compare, or if a future jaxlib turns the tables).

Second option: `xla_cpu_prefer_vector_width=512` (XLA's default is 256): the loops XLA
generates itself (BatchNorm, activations, the optimiser update, copies) use 512-bit vectors
where the CPU has them (AVX-512; elsewhere LLVM keeps the widest it has). FOMM 64 px train
step 2.49 -> 2.40 s (three alternating idle runs each, `deepjax bench
--rows=fomm_train_64 --steps=5`). `DEEPJAX_CPU_VECTOR_WIDTH=256` restores the default.

Third, for what runs once per process (`jit_once`: a model's `init`): LLVM at -O1
(`xla_backend_optimization_level=1`; XLA's default is 3). An init's program is mostly the
random-number generator of every parameter, whose integer code LLVM's -O3 passes are slow
to compile: `loop.init_state` took 9.3-10.5 -> 2.8-2.9 s for `fomm_vox256:tiny` and
17.9-20.6 -> 11.2-12.1 s for `tpsmm_vox256:tiny`, the parameters bit for bit the same
(`scripts/ab_init_compile.py`, docs/performance.md). Train and animation steps keep -O3:
-O1 compiles them 1-10 s sooner but runs FOMM's and TPSMM's 256 px steps 4-9 % slower
(docs/performance.md). A level set in XLA_FLAGS (the tests' -O0) is left as it is.

Your own `jax.jit` of deepjax modules can pass `compiler_options=cpu_options()`, or set
`XLA_FLAGS="--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT
--xla_cpu_prefer_vector_width=512"`.
"""
import functools
import os
from typing import Callable, Dict, Optional

import jax
import jax.numpy as jnp

YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
YNN_DOTS_ONLY = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"
VECTOR_WIDTH_OPTION = "xla_cpu_prefer_vector_width"
OPT_LEVEL_OPTION = "xla_backend_optimization_level"


@functools.lru_cache(maxsize=None)
def _probe(option: str, value: str) -> bool:
  """True when this jaxlib's CPU compiler accepts `option=value` (one tiny compile)."""
  try:
    jax.jit(lambda x: x + 1, compiler_options={option: value}).lower(
        jnp.zeros((2,), jnp.float32)).compile()
    return True
  except Exception:  # pylint: disable=broad-except  (an unknown option raises backend errors)
    return False


def cpu_conv_options() -> Optional[Dict[str, str]]:
  """{"xla_cpu_experimental_ynn_fusion_type": dots only} on CPU, else None."""
  if os.environ.get("DEEPJAX_CPU_CONV", "eigen").lower() == "ynn":
    return None
  if jax.default_backend() != "cpu":
    return None
  if not _probe(YNN_OPTION, YNN_DOTS_ONLY):
    return None
  return {YNN_OPTION: YNN_DOTS_ONLY}


def cpu_vector_options() -> Optional[Dict[str, str]]:
  """{"xla_cpu_prefer_vector_width": "512"} on CPU (DEEPJAX_CPU_VECTOR_WIDTH), else None."""
  width = os.environ.get("DEEPJAX_CPU_VECTOR_WIDTH", "512")
  if jax.default_backend() != "cpu" or width == "256":
    return None
  if not _probe(VECTOR_WIDTH_OPTION, width):
    return None
  return {VECTOR_WIDTH_OPTION: width}


def cpu_options() -> Optional[Dict[str, str]]:
  """All of deepjax's per-jit CPU options (convolution library, vector width), or None."""
  opts = {**(cpu_conv_options() or {}), **(cpu_vector_options() or {})}
  return opts or None


def once_options() -> Optional[Dict[str, str]]:
  """`cpu_options()` plus LLVM -O1 on CPU (when this jaxlib accepts it and XLA_FLAGS sets no
  level of its own: the tests' -O0 stays), or None."""
  opts = dict(cpu_options() or {})
  if (jax.default_backend() == "cpu" and OPT_LEVEL_OPTION not in os.environ.get("XLA_FLAGS", "")
      and _probe(OPT_LEVEL_OPTION, "1")):
    opts[OPT_LEVEL_OPTION] = "1"
  return opts or None


def jit(fn: Callable, **kwargs) -> Callable:
  """jax.jit(fn, **kwargs) with `cpu_options()` as compiler options."""
  return jax.jit(fn, compiler_options=cpu_options(), **kwargs)


def jit_once(fn: Callable, **kwargs) -> Callable:
  """jax.jit(fn, **kwargs) with `once_options()`: for a function run once per process (a
  model's init), where compiling is the cost and the run is short."""
  return jax.jit(fn, compiler_options=once_options(), **kwargs)
