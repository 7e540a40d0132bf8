"""Metric output: console lines, TensorBoard event files (tensorboardX, no TensorFlow), PNGs.

Only process 0 writes; other processes get a writer that does nothing.
"""
import os
import sys
import time

import jax
import numpy as np
from absl import logging

from deepjax.io_utils import atomic_path


def _summary_writer_class():
  """tensorboardX's SummaryWriter, imported without torch.

  tensorboardX imports torch whenever it is installed (the torch extra), only to accept
  torch tensors, which deepjax never passes: about a second of every training start. A torch
  that is already imported is left as it is."""
  if "torch" in sys.modules:
    from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
    return SummaryWriter
  sys.modules["torch"] = None  # `import torch` raises ImportError while this is set
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
  finally:
    del sys.modules["torch"]
  return SummaryWriter


class MetricWriter:
  """Writes scalars to TensorBoard event files under `<workdir>/tb`."""

  def __init__(self, workdir: str, enabled: bool | None = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._tb = None
    if self.enabled:
      self._tb = _summary_writer_class()(os.path.join(workdir, "tb"))

  def scalars(self, step: int, values: dict) -> None:
    if self._tb is None:
      return
    for k, v in values.items():
      self._tb.add_scalar(k, float(v), step)
    self._tb.flush()

  def image(self, step: int, name: str, image_uint8_HxWx3: np.ndarray) -> None:
    if self._tb is None:
      return
    self._tb.add_image(name, image_uint8_HxWx3, step, dataformats="HWC")
    self._tb.flush()

  def close(self):
    if self._tb is not None:
      self._tb.close()


def write_png(path: str, image_uint8_HxWx3: np.ndarray) -> None:
  """Writes an (H,W,3) uint8 array as PNG, atomically."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  with atomic_path(path) as tmp:
    Image.fromarray(np.asarray(image_uint8_HxWx3)).save(tmp, format="PNG")


class Progress:
  """Steps/s, images/s and ETA between log lines."""

  def __init__(self, total_steps: int, images_per_step: int, start_step: int):
    self.total = total_steps
    self.images_per_step = images_per_step
    self.last_step = start_step
    self.last_time = time.perf_counter()

  def line(self, step: int, metrics: dict) -> str:
    now = time.perf_counter()
    dt = max(now - self.last_time, 1e-9)
    sps = (step - self.last_step) / dt
    self.last_step, self.last_time = step, now
    eta = (self.total - step) / sps if sps > 0 else float("inf")
    parts = [f"step {step}/{self.total}"]
    parts += [f"{k} {float(v):.4g}" for k, v in sorted(metrics.items())]
    parts += [f"{sps:.2f} steps/s", f"{sps * self.images_per_step:.1f} images/s",
              f"ETA {_fmt_time(eta)}"]
    return " | ".join(parts)


def _fmt_time(s: float) -> str:
  if not np.isfinite(s):
    return "?"
  s = int(s)
  return f"{s // 3600}h{(s % 3600) // 60:02d}m{s % 60:02d}s" if s >= 3600 else \
      f"{s // 60}m{s % 60:02d}s"


def log(msg: str) -> None:
  """An info line from process 0 through absl logging (the programs show it on the console)."""
  if jax.process_index() == 0:
    logging.info("%s", msg)
