"""Speed of the convolution formulations of `deepjax.ops.conv` on FOMM's shapes (row
`conv` of `deepjax bench`; `deepjax bench --rows=conv` writes the per-case figures to the
JSON).

For each case (the first-order motion model's convolutions with few input or output
channels, 64 px frames, batch 8, keypoint detector and dense motion at 32 px), the time
of the forward pass and of forward + backward (gradients for input and kernel, a
non-linear loss so nothing is skipped), as ms and GFLOP/s, for `lax` and `im2col`;
and which one `conv.conv2d` picks.
"""
import jax
import jax.numpy as jnp

from deepjax import compile_options
from deepjax.bench.timing import Result, time_calls
from deepjax.ops import conv

# name -> (input shape, kernel size, output channels, padding)
CASES = {
    "gen_final": ((8, 64, 64, 64), 7, 3, 3),     # generator's RGB head
    "gen_first": ((8, 64, 64, 3), 7, 64, 3),     # generator's first conv
    "dm_mask": ((8, 32, 32, 108), 7, 11, 3),     # dense motion's mask head (K + 1 maps)
    "dm_occlusion": ((8, 32, 32, 108), 7, 1, 3),  # dense motion's occlusion head
    "kp_heatmap": ((8, 32, 32, 35), 7, 10, 0),   # keypoint heatmaps, unpadded 7x7
    "kp_jacobian": ((8, 32, 32, 35), 7, 40, 0),  # keypoint Jacobians, unpadded 7x7
    "gen_res16": ((8, 16, 16, 256), 3, 256, 1),  # generator's bottleneck (64 px frames)
    "gen_res64": ((2, 64, 64, 256), 3, 256, 1),  # generator's bottleneck (256 px frames)
    "gen_down32": ((8, 32, 32, 128), 3, 256, 1),  # second down block
    "gen_down64": ((8, 64, 64, 64), 3, 128, 1),  # first down block
    "hg_8px": ((8, 8, 8, 512), 3, 512, 1),  # hourglass, 8 px
}
FNS = {"lax": conv.conv_lax, "im2col": conv.conv_im2col}


def cases_table(cases=None, repeats: int = 5) -> list[dict]:
  """-> list of rows {case, formulation, fwd_ms, fwd_gflops, train_ms, train_gflops, picked}."""
  rows = []
  for name in cases or CASES:
    shape, k, cout, p = CASES[name]
    x = jax.random.normal(jax.random.key(0), shape, jnp.float32)
    w = jax.random.normal(jax.random.key(1), (k, k, shape[-1], cout), jnp.float32) * 0.05
    pad = (p, p)
    picked = conv.formulation(shape, w.shape, pad)
    out_elems = shape[0] * (shape[1] + 2 * p - k + 1) * (shape[2] + 2 * p - k + 1) * cout
    flops = 2.0 * out_elems * k * k * shape[-1]
    for label, f in FNS.items():
      fwd = compile_options.jit(lambda x, w, f=f: f(x, w, pad))
      grad = compile_options.jit(jax.grad(lambda x, w, f=f: jnp.sum(jnp.sin(f(x, w, pad))),
                                          argnums=(0, 1)))
      t_fwd = time_calls(fwd, x, w, repeats=repeats).best
      t_train = time_calls(grad, x, w, repeats=repeats).best
      rows.append({"case": name, "formulation": label, "picked": label == picked,
                   "fwd_ms": 1e3 * t_fwd, "fwd_gflops": flops / t_fwd / 1e9,
                   "train_ms": 1e3 * t_train, "train_gflops": 3 * flops / t_train / 1e9})
  return rows


def conv_row(cases: tuple | str = (), repeats: int = 5) -> Result:
  """Is the picked formulation the fastest (fwd + bwd)? `cases`: some of CASES (a tuple
  or a comma-separated string; all if empty); per-case figures go to `extra["cases"]`."""
  if isinstance(cases, str):  # `--row_arg=cases=a,b`
    cases = tuple(c for c in cases.split(",") if c)
  bad = [c for c in cases if c not in CASES]
  if bad:
    raise ValueError(f"unknown conv cases {bad}; known: {', '.join(CASES)}")
  rows = cases_table(cases or None, repeats)
  ratios = {}
  for case in dict.fromkeys(r["case"] for r in rows):
    mine = [r for r in rows if r["case"] == case]
    picked = next(r["train_ms"] for r in mine if r["picked"])
    ratios[case] = picked / min(r["train_ms"] for r in mine)
  worst = max(ratios, key=ratios.get)
  fastest = sum(v <= 1.0 for v in ratios.values())
  return Result(note=f"picked = fastest fwd+bwd in {fastest}/{len(ratios)} cases; worst "
                     f"{worst} at {ratios[worst]:.2f}x the fastest",
                extra={"cases": rows, "picked_over_fastest": ratios})
