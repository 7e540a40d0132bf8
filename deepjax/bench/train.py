"""Training-step rows: the train step `deepjax train` compiles, on random data.

`train_row(config, ...)` builds the task of a config (`configs/<name>.py:<arg>`), a random
batch of the shapes it expects (no data pipeline), the state as the loop creates it
(`loop.init_state`) and the step as the loop compiles it (`loop.compile_train_step`:
jit, donated state, the loop's shardings and non-finite guard); it reports compile
seconds, the median step seconds, images/s and GFLOP/s (XLA's cost analysis of the
compiled step / step seconds).
"""
import jax
import numpy as np

from deepjax.bench.timing import Result, compile_timed, load_spec, time_calls


def random_batch_for(config, batch_size: int, rng: np.random.Generator) -> dict:
  """A random host batch of the shapes `config.task` trains on."""
  s = int(config.data.size)
  if config.task == "motion":
    return {k: rng.integers(0, 256, (batch_size, s, s, 3), dtype=np.uint8)
            for k in ("source", "driving")}
  batch = {}
  for ident in ("a", "b"):
    batch[ident] = rng.integers(0, 256, (batch_size, s, s, 3), dtype=np.uint8)
    batch[f"{ident}_landmarks"] = rng.uniform(-0.6, 0.6, (batch_size, 68, 2)).astype(np.float32)
    batch[f"{ident}_has_landmarks"] = np.ones((batch_size,), bool)
  return batch


def train_row(config: str, batch: int | None = None, steps: int = 3,
              random_vgg: bool = False) -> Result:
  """Compiles and times `steps` train steps (after one warm-up step) of `config`.

  Args:
    config: 'name[:arg]', e.g. "faceswap_ae:tiny" or "fomm_vox256:res=64".
    batch: global batch size (default: the config's).
    steps: timed steps.
    random_vgg: a motion task whose config names no VGG19 file uses a random-weight VGG19
      for its perceptual pyramid (the same work as with real weights) instead of the
      multi-scale L1 fallback.
  """
  from deepjax.train import loop, parallel  # pylint: disable=import-outside-toplevel
  from deepjax.train.tasks import build_task  # pylint: disable=import-outside-toplevel
  cfg = load_spec(config)
  bs = int(batch or cfg.batch_size)
  task = build_task(cfg)
  if random_vgg and cfg.task == "motion" and task.vgg is None:
    from deepjax.models.vgg import random_vgg19_params  # pylint: disable=import-outside-toplevel
    task.vgg = random_vgg19_params(jax.random.key(5))
  mesh = parallel.make_mesh()
  data = parallel.to_global(random_batch_for(cfg, bs, np.random.default_rng(0)), mesh)
  state, _, state_sharding = loop.init_state(task, cfg, mesh, data)
  step = loop.compile_train_step(task, state_sharding, parallel.batch_sharding(mesh),
                                 parallel.replicated(mesh), cfg.get("nonfinite", "stop"))
  compiled, compile_s, flops = compile_timed(step, state, data)
  t = time_calls(compiled, state, data, repeats=steps, warmup=1, carry=1)
  images = bs * task.images_per_example
  extra = {"mean_s": t.mean, "best_s": t.best, "loss": float(t.last[1]["loss"]),
           "gflop_per_step": flops / 1e9}
  if cfg.task == "motion":
    extra.update(gan=bool(task.use_gan), vgg=task.vgg is not None)
  return Result(batch=bs, compile_s=compile_s, step_s=t.median, images_per_s=images / t.median,
                gflops=flops / t.median / 1e9, note=f"train {config}", extra=extra)
