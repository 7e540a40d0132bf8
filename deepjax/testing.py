"""Helpers for tests and demos: small configs and run folders built without training.

`random_swap_run(workdir)` writes a checkpoint of an *untrained* swap model in the layout
`deepjax train` writes (`checkpoints/<step>/{state,config}`), so `Swapper` and
`deepjax swap` load it like a trained run: the full video path (detection, crop, batched
model call, paste back, encode) can be timed and tested without training first.
"""
from __future__ import annotations


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
  import numpy as np  # pylint: disable=import-outside-toplevel
  from deepjax import loading  # pylint: disable=import-outside-toplevel
  from deepjax.configs_lib import load_config  # pylint: disable=import-outside-toplevel
  from deepjax.train import checkpoint  # pylint: disable=import-outside-toplevel
  config = load_config("faceswap_ae", arg)
  if data:
    with config.unlocked():
      for k, v in data.items():
        config.data[k] = v
  model = loading.build_model(config)
  size = int(config.data.size)
  x = jnp.zeros((1, size, size, 3), jnp.float32)
  params = model.init(jax.random.key(seed), x, method=model.init_all)["params"]
  state = {"step": np.zeros((), np.int32), "params": jax.tree.map(np.asarray, params)}
  manager = checkpoint.make_manager(workdir, max_to_keep=1)
  checkpoint.save(manager, 0, state, {}, config)
  manager.close()
  return workdir
