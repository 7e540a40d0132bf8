"""Animation row: frames/s of the jitted animation function `deepjax animate` runs.

`animate_row(config, batch, steps)` builds the motion model of a config (first-order or
thin-plate-spline, `deepjax.loading.build_model`; random weights) and times `deepjax.infer.animate.make_animate_fn` compiled as
`animate_frames` compiles it: `batch` driving frames per call, each call detecting the
driving keypoints, normalising them against the first frame (relative motion, as
`deepjax animate`'s defaults) and generating the frames from one source image.
Compilation is timed separately.
"""
import jax
import jax.numpy as jnp

from deepjax import compile_options
from deepjax.bench.timing import Result, compile_timed, load_spec, time_calls
from deepjax.infer.animate import make_animate_fn
from deepjax.loading import build_model


def animate_row(config: str = "fomm_vox256:tiny", batch: int = 8, steps: int = 3,
                relative: bool = True, adapt_scale: bool = False) -> Result:
  """Median seconds per call of `batch` frames (after one warm-up call), over `steps` calls.

  `relative`, `adapt_scale`: as `deepjax animate --mode=relative --adapt_scale`.
  """
  cfg = load_spec(config)
  size = int(cfg.data.size)
  fomm = build_model(cfg)
  variables = fomm.init(jax.random.key(0), (1, size, size, 3))
  k1, k2 = jax.random.split(jax.random.key(1))
  source = jax.random.uniform(k1, (1, size, size, 3), jnp.float32)
  frames = jax.random.uniform(k2, (batch, size, size, 3), jnp.float32)
  detect = compile_options.jit(fomm.detect)
  kp_source = detect(variables, source)
  kp_initial = detect(variables, frames[:1])
  step = compile_options.jit(make_animate_fn(fomm, relative, adapt_scale))
  args = (variables, source, kp_source, kp_initial, frames)
  compiled, compile_s, flops = compile_timed(step, *args)
  t = time_calls(compiled, *args, repeats=steps, warmup=1)
  return Result(batch=batch, compile_s=compile_s, step_s=t.median,
                images_per_s=batch / t.median, gflops=flops / t.median / 1e9,
                note=f"animate {config} ({size} px), frames/s",
                extra={"mean_s": t.mean, "best_s": t.best, "gflop_per_frame": flops / batch / 1e9,
                       "device": str(jax.devices()[0].device_kind)})
