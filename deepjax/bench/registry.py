"""The benchmark rows of `deepjax bench`: name -> row function and its arguments.

Every row function returns a `deepjax.bench.timing.Result`; `run_row(name)` calls one
(in the calling process; `deepjax bench` gives each row a fresh process, for honest
compile times and peak memory) and fills in the row name and peak memory.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Callable, Optional

from deepjax.bench.timing import Result, peak_rss_mb


@dataclasses.dataclass(frozen=True)
class Row:
  """fn: "module:function" of a row function; kwargs: its arguments; takes_steps: the
  `deepjax bench --steps` value is passed as `steps` (the row's kwargs fix it otherwise)."""
  fn: str
  kwargs: dict = dataclasses.field(default_factory=dict)
  takes_steps: bool = False

  def function(self) -> Callable[..., Result]:
    module, name = self.fn.split(":")
    return getattr(importlib.import_module(module), name)


def _train(config: str, batch: Optional[int] = None, steps: Optional[int] = None,
           **kwargs) -> Row:
  kw = dict(config=config, **kwargs)
  if batch:
    kw["batch"] = batch
  if steps:
    kw["steps"] = steps
  return Row("deepjax.bench.train:train_row", kw, takes_steps=steps is None)


ROWS: dict[str, Row] = {
    "matmul": Row("deepjax.bench.timing:matmul_peak"),
    "ae_seeds": _train("faceswap_ae:seeds", 64),
    "ae_tiny": _train("faceswap_ae:tiny"),
    "ae_original": _train("faceswap_ae:original", 64),
    "vae_tiny": _train("faceswap_vae:tiny"),
    "gan_tiny": _train("faceswap_gan:tiny"),
    "vae_original": _train("faceswap_vae:original", 64),
    "gan_original": _train("faceswap_gan:original", 64),
    "synthetic": Row("deepjax.bench.synthetic:synthetic_row"),
    "augment": Row("deepjax.bench.augment:augment_row"),
    "data_swap": Row("deepjax.bench.data:swap_pipeline_row"),
    "data_video": Row("deepjax.bench.data:video_io_row"),
    "extract": Row("deepjax.bench.extract:extract_row"),
    "swap_video": Row("deepjax.bench.video_swap:swap_video_row"),
    "fomm_train_64": _train("fomm_vox256:res=64", 8, 2, random_vgg=True),
    "fomm_train_256": _train("fomm_vox256", 2, 1, random_vgg=True),
    "fomm_animate_64": Row("deepjax.bench.animate:animate_row",
                           {"config": "fomm_vox256:res=64", "batch": 16, "steps": 3}),
    "fomm_animate_256": Row("deepjax.bench.animate:animate_row",
                            {"config": "fomm_vox256", "batch": 8, "steps": 2}),
    "tpsmm_train_64": _train("tpsmm_vox256:res=64", 8, 2, random_vgg=True),
    "tpsmm_train_256": _train("tpsmm_vox256", 2, 1, random_vgg=True),
    "tpsmm_animate_64": Row("deepjax.bench.animate:animate_row",
                            {"config": "tpsmm_vox256:res=64", "batch": 16, "steps": 3}),
    "tpsmm_animate_256": Row("deepjax.bench.animate:animate_row",
                             {"config": "tpsmm_vox256", "batch": 8, "steps": 2}),
    "fomm_parts_64": Row("deepjax.bench.motion_parts:parts_row",
                         {"config": "fomm_vox256:res=64", "batch": 8}),
    "tpsmm_parts_64": Row("deepjax.bench.tpsmm_parts:parts_row",
                          {"config": "tpsmm_vox256:res=64", "batch": 8}),
    "tpsmm_parts_256": Row("deepjax.bench.tpsmm_parts:parts_row",
                           {"config": "tpsmm_vox256", "batch": 2}),
    "fomm_tiny_train": _train("fomm_vox256:tiny", 8, 3),
    "startup": Row("deepjax.bench.startup:startup_row", {"config": "faceswap_ae:tiny"}),
    **{f"startup_{name}": Row("deepjax.bench.startup:startup_row", {"config": config})
       for name, config in (("seeds", "faceswap_ae:seeds"), ("vae", "faceswap_vae:tiny"),
                            ("gan", "faceswap_gan:tiny"), ("fomm", "fomm_vox256:tiny"),
                            ("tpsmm", "tpsmm_vox256:tiny"), ("detect", "detect:tiny"))},
    "reductions": Row("deepjax.bench.reductions:reductions_row"),
    "conv": Row("deepjax.bench.conv:conv_row"),
    "adam": Row("deepjax.bench.adam:adam_row", {"config": "fomm_vox256:res=64"}),
    "provenance": Row("deepjax.bench.provenance:provenance_row"),
    "fomm_ab_64": Row("deepjax.bench.motion_ab:ab_row",
                      {"config": "fomm_vox256:res=64", "batch": 8, "rounds": 8}),
}
DEFAULT_ROWS = ("matmul", "synthetic", "ae_seeds", "ae_tiny", "vae_tiny", "gan_tiny",
                "ae_original", "gan_original", "extract", "swap_video", "fomm_animate_64",
                "fomm_train_64")


def run_row(name: str, overrides: Optional[dict] = None, steps: Optional[int] = None
            ) -> Result:
  """Runs row `name` here with its registered arguments, then `steps` (rows that take
  `--steps`), then `overrides`. Returns its Result with `row` and `peak_rss_mb` set."""
  row = ROWS[name]
  kwargs = dict(row.kwargs)
  if row.takes_steps and steps is not None:
    kwargs["steps"] = steps
  kwargs.update(overrides or {})
  result = row.function()(**kwargs)
  if not isinstance(result, Result):
    raise TypeError(f"row {name} returned {type(result).__name__}, not a bench Result")
  result.row = name
  if result.peak_rss_mb is None:
    result.peak_rss_mb = peak_rss_mb()
  return result
