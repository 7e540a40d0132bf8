"""Helpers for tests and demos: small configs, prepared data and run folders built without
training.

- `small_swap_config(name, data_dir, steps)`: a faceswap config (configs/<name>.py) shrunk
  to 32 px and a few channels; `SMALL_SWAP_MODEL` / `TINY_SWAP_MODEL` are its two sizes.
- `tiny_motion_config(size, gan, steps)`: configs/fomm_vox256.py:tiny shrunk to `size` px.
- `prepared_data_dir(config)`: a shared folder holding `config.data` prepared.
- `tree_equal(a, b)`: two pytrees with exactly equal leaves.
- `program_env()`: the environment for a program started by a test, as a user's CPU
  session sees it (the real device count), keeping the suite's other XLA flags.
- `random_swap_run(workdir)` writes writes a checkpoint of an *untrained* swap model in the layout
`deepjax train` writes (`checkpoints/<step>/{state,config}`), so `Swapper` and
`deepjax swap` load it like a trained run: the full video path (detection, crop, batched
model call, paste back, encode) can be timed and tested without training first.
"""
from __future__ import annotations

import os

SMALL_SWAP_MODEL = dict(encoder_features=(16, 32, 64), latent_dim=64, upscale_features=32,
                        decoder_features=(32, 16))
TINY_SWAP_MODEL = dict(encoder_features=(16, 32), latent_dim=16, upscale_features=16,
                       decoder_features=(16,))


def small_swap_config(name: str, data_dir: str, steps: int = 30, *, arg: str = "tiny",
                      model: dict | None = None, num_train: int = 48,
                      learning_rate: float | None = 1e-3, mesh_devices: int = 1,
                      log_every: int = 5, checkpoint_every: int = 10, preview_every: int = 10):
  """`configs/<name>.py:<arg>` (batch 8, `steps` steps) on 32 px faces (`num_train` train and
  8 test images per identity) prepared under `data_dir`, trained on the pixel loss alone
  (no SSIM term); the model is SMALL_SWAP_MODEL with
  `model`'s settings over it (e.g. TINY_SWAP_MODEL, {"dtype": "bfloat16"});
  `learning_rate`: None keeps the config's."""
  from deepjax.configs_lib import load_config  # pylint: disable=import-outside-toplevel
  c = load_config(name, f"{arg},steps={steps},batch=8")
  with c.unlocked():
    c.data.size = 32
    c.data.num_train = num_train
    c.data.num_test = 8
    c.data.data_dir = str(data_dir)
    c.model.update(dict(SMALL_SWAP_MODEL, **(model or {})))
    c.loss.ssim = 0.0  # the pixel loss only: one compile less per test (SSIM: test_losses)
    if learning_rate is not None:
      c.optimizer.learning_rate = learning_rate
    c.log_every = log_every
    c.checkpoint_every = checkpoint_every
    c.preview_every = preview_every
    c.mesh_devices = mesh_devices
  return c


def tiny_motion_config(size: int = 32, gan: float = 0.0, steps: int = 20):
  """configs/fomm_vox256.py:tiny (batch 2, `steps` steps) shrunk to `size` px, 5 keypoints and a
  few channels (fast on CPU); `gan`: the generator's GAN loss weight."""
  from deepjax.configs_lib import load_config  # pylint: disable=import-outside-toplevel
  c = load_config("fomm_vox256", f"tiny,batch=2,steps={steps}")
  c.unlock()
  c.data.update(size=size, frame_shape=(size, size, 3))
  c.model.num_kp = 5
  c.model.kp_detector.update(block_expansion=8, max_features=32, num_blocks=3)
  c.model.generator.update(block_expansion=8, max_features=32, num_bottleneck_blocks=1)
  c.model.dense_motion.update(block_expansion=8, max_features=32, num_blocks=3)
  c.model.discriminator.update(block_expansion=8, max_features=32, num_blocks=2)
  c.loss.generator_gan = gan
  c.train.lr_generator = c.train.lr_kp_detector = 2e-3
  return c


def prepared_data_dir(config, kind: str = "swap") -> str:
  """A data_dir holding `config.data` prepared (`kind` "swap" or "motion").

  Synthetic datasets are named by their parameters and generator version, so one
  folder serves every test and run: $DEEPJAX_TEST_DATA_DIR, else
  ~/.cache/deepjax/test-datasets (next to the tests' compilation cache).
  """
  from deepjax.data import motion_pipeline, pipeline  # pylint: disable=import-outside-toplevel
  path = os.environ.get("DEEPJAX_TEST_DATA_DIR") or os.path.join(
      os.path.expanduser("~"), ".cache", "deepjax", "test-datasets")
  data = config.data.to_dict() | {"data_dir": path}
  if kind == "swap":
    pipeline.identity_builders(data, multihost=False)
  else:
    motion_pipeline.video_builder(data, multihost=False)
  return path


def program_env(**extra) -> dict:
  """os.environ with JAX_PLATFORMS=cpu and without a forced host device count (a program
  started by a test sees the machine's devices); other XLA flags are kept. `extra`: more
  variables."""
  import re  # pylint: disable=import-outside-toplevel
  env = dict(os.environ, JAX_PLATFORMS="cpu", **extra)
  flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", env.get("XLA_FLAGS", ""))
  env["XLA_FLAGS"] = " ".join(flags.split())
  return env


def tree_equal(a, b) -> bool:
  """Whether pytrees `a` and `b` have the same number of leaves, each exactly equal."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y))
                                    for x, y in zip(la, lb))


def random_swap_run(workdir: str, arg: str = "tiny", seed: int = 0, data: dict | None = None
                    ) -> str:
  """Saves a randomly initialised `configs/faceswap_ae.py:<arg>` model under `workdir`.

  Args:
    workdir: run folder to create (its `checkpoints/0` is written).
    arg: config argument ("tiny", "seeds", "original", ...).
    seed: init seed.
    data: optional overrides of `config.data` (e.g. {"source": "folders", "a": ...}).
  Returns:
    `workdir`.
  """
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from deepjax import loading  # pylint: disable=import-outside-toplevel
  from deepjax.configs_lib import load_config  # pylint: disable=import-outside-toplevel
  config = load_config("faceswap_ae", arg)
  if data:
    with config.unlocked():
      for k, v in data.items():
        config.data[k] = v
  model = loading.build_model(config)
  size = int(config.data.size)
  x = jnp.zeros((1, size, size, 3), jnp.float32)
  params = model.init(jax.random.key(seed), x, method=model.init_all)["params"]
  return _save_random_run(workdir, params, config)


def random_detect_run(workdir: str, config, seed: int = 0) -> str:
  """Saves a randomly initialised detector of `config` (configs/detect.py) under
  `workdir` (its `checkpoints/0`) and returns `workdir`."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from deepjax import loading  # pylint: disable=import-outside-toplevel
  model = loading.build_model(config)
  size = int(config.data.size)
  params = model.init(jax.random.key(seed), jnp.zeros((1, size, size, 3), jnp.float32)
                      )["params"]
  return _save_random_run(workdir, params, config)


def _save_random_run(workdir: str, params, config) -> str:
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from deepjax.train import checkpoint  # pylint: disable=import-outside-toplevel
  state = {"step": np.zeros((), np.int32), "params": jax.tree.map(np.asarray, params)}
  manager = checkpoint.make_manager(workdir, max_to_keep=1)
  checkpoint.save(manager, 0, state, {}, config)
  manager.close()
  return workdir
