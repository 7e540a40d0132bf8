"""Task families. A task gives init / train_step / eval_step / preview / data_iterator.

`build_task(config)` picks the family from `config.task`; the loop never knows which.
"""
import importlib

from deepjax.errors import UserError

# family name -> "module:Class" (imported lazily: a family's deps load only when used).
TASKS = {
    "ae": "deepjax.train.tasks.ae:AETask",
    "vae": "deepjax.train.tasks.vae:VAETask",
    "gan": "deepjax.train.tasks.gan:GANTask",
    "motion": "deepjax.train.tasks.motion:MotionTask",
    "detect": "deepjax.train.tasks.detect:DetectTask",
}


def task_class(name: str):
  if name not in TASKS:
    raise UserError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}")
  module, cls = TASKS[name].split(":")
  try:
    mod = importlib.import_module(module)
  except ModuleNotFoundError as e:
    if e.name == module:
      raise UserError(f"task {name!r} is not available in this version of deepjax") from e
    raise
  return getattr(mod, cls)


def build_task(config):
  return task_class(config.task)(config)
