#!/usr/bin/env python
"""Peer timing: the reference PyTorch thin-plate-spline motion model on this CPU (dev only).

  pip install torch==2.13.0 torchvision==0.28.0 --no-deps   (CPU wheels; no weights needed)
  python scripts/peer_tpsmm_bench.py --reference=/path/to/Thin-Plate-Spline-Motion-Model

`--reference` is a checkout of github.com/yoyo-nb/Thin-Plate-Spline-Motion-Model; its
`modules/` and `config/vox-256.yaml` are used from there, nothing of it is stored here. The
models get PyTorch's default random initialisation and a random-weight VGG19 (nothing is
downloaded), the same shapes as deepjax's bench rows `tpsmm_train_{64,256}` and
`tpsmm_animate_{64,256}` (`deepjax bench --rows=...`):
- train: one step of the reference's train.py at an epoch where the background predictor
  and TPS dropout are both on (GeneratorFullModel forward, backward, the inf-norm clipping
  and both Adam steps), batch 8 at 64 px (dense motion at scale 0.5, pyramid scales
  1, 0.5, 0.25: deepjax's `tpsmm_vox256:res=64`) and batch 2 at 256 px (vox-256);
- animate: frames/s of the reference demo's `make_animation` work (relative motion with the
  convex-hull scale) three ways: eager frame by frame (as demo.py), eager with 8 (256 px)
  or 16 (64 px) frames a call, and torch.compile with that batch.
Prints one JSON line per measurement; medians over `--repeats` timed calls after warm-up.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time
import types



def import_reference(path):
  """The reference's classes; torchvision without its C++ operators if they do not load."""
  import importlib.util  # pylint: disable=import-outside-toplevel
  try:
    import torchvision  # pylint: disable=import-outside-toplevel,unused-import
  except (ImportError, RuntimeError):
    spec = importlib.util.find_spec("torchvision")
    for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
      del sys.modules[name]
    package = types.ModuleType("torchvision")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["torchvision"] = package
  from torchvision import models  # pylint: disable=import-outside-toplevel
  vgg19 = models.vgg19
  models.vgg19 = lambda pretrained=False, **kw: vgg19(weights=None)  # random weights
  sys.path.insert(0, os.path.abspath(path))
  # pylint: disable=import-outside-toplevel
  from modules.bg_motion_predictor import BGMotionPredictor
  from modules.dense_motion import DenseMotionNetwork
  from modules.inpainting_network import InpaintingNetwork
  from modules.keypoint_detector import KPDetector
  from modules.model import GeneratorFullModel
  return types.SimpleNamespace(kp=KPDetector, bg=BGMotionPredictor, dense=DenseMotionNetwork,
                               inpainting=InpaintingNetwork, full=GeneratorFullModel)


def reference_config(path, res):
  import yaml  # pylint: disable=import-outside-toplevel
  with open(os.path.join(path, "config", "vox-256.yaml"), encoding="utf-8") as f:
    cfg = yaml.safe_load(f)
  if res < 256:  # as configs/tpsmm_vox256.py `res=`: the 5-block hourglass needs 32 px
    cfg["model_params"]["dense_motion_params"]["scale_factor"] = 0.5
  cfg["train_params"]["scales"] = [s for s in cfg["train_params"]["scales"] if res * s >= 16]
  return cfg


def build(ref, cfg):
  m = cfg["model_params"]
  common = m["common_params"]
  nets = types.SimpleNamespace(
      kp=ref.kp(**common),
      bg=ref.bg(),
      dense=ref.dense(**common, **m["dense_motion_params"]),
      inpainting=ref.inpainting(**common, **m["generator_params"]))
  return nets


def timed(fn, repeats, warmup=1):
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def train_step_fn(ref, cfg, batch, res):
  """One step of the reference's train loop (train.py) at epoch bg_start."""
  import torch  # pylint: disable=import-outside-toplevel
  from torch.nn.utils import clip_grad_norm_  # pylint: disable=import-outside-toplevel
  nets = build(ref, cfg)
  tp = cfg["train_params"]
  full = ref.full(nets.kp, nets.bg, nets.dense, nets.inpainting, tp)
  lr = tp["lr_generator"]
  opt = torch.optim.Adam(list(nets.inpainting.parameters()) + list(nets.dense.parameters())
                         + list(nets.kp.parameters()), lr=lr, betas=(0.5, 0.999),
                         weight_decay=1e-4)
  opt_bg = torch.optim.Adam(nets.bg.parameters(), lr=lr, betas=(0.5, 0.999), weight_decay=1e-4)
  g = torch.Generator().manual_seed(0)
  x = {k: torch.rand(batch, 3, res, res, generator=g) for k in ("source", "driving")}
  epoch = tp["bg_start"]  # background predictor on, TPS dropout on (epoch < dropout_epoch)

  def step():
    losses, _ = full(x, epoch)
    loss = sum(v.mean() for v in losses.values())
    loss.backward()
    for net in (nets.kp, nets.dense, nets.bg):
      clip_grad_norm_(net.parameters(), max_norm=10, norm_type=math.inf)
    opt.step()
    opt.zero_grad()
    opt_bg.step()
    opt_bg.zero_grad()
  return step


def animate_fns(ref, cfg, res, batch, frames):
  """(frame-by-frame eager, batched eager, batched torch.compile) animation callables."""
  import torch  # pylint: disable=import-outside-toplevel
  from scipy.spatial import ConvexHull  # pylint: disable=import-outside-toplevel
  nets = build(ref, cfg)
  for net in vars(nets).values():
    net.eval()
  g = torch.Generator().manual_seed(1)
  source = torch.rand(1, 3, res, res, generator=g)
  driving = torch.rand(frames, 3, res, res, generator=g)
  with torch.no_grad():
    kp_source = nets.kp(source)
    kp_initial = nets.kp(driving[:1])
  area = lambda kp: ConvexHull(kp["fg_kp"][0].numpy()).volume  # noqa: E731
  scale = math.sqrt(area(kp_source)) / math.sqrt(area(kp_initial))

  def animate(drv):  # demo.py's loop body, for a batch of driving frames
    b = drv.shape[0]
    kp_driving = nets.kp(drv)
    kp_norm = {"fg_kp": (kp_driving["fg_kp"] - kp_initial["fg_kp"]) * scale + kp_source["fg_kp"]}
    src = source.expand(b, -1, -1, -1)
    kp_src = {"fg_kp": kp_source["fg_kp"].expand(b, -1, -1)}
    motion = nets.dense(source_image=src, kp_driving=kp_norm, kp_source=kp_src, bg_param=None,
                        dropout_flag=False)
    return nets.inpainting(src, motion)["prediction"]

  def run(fn, step):
    def go():
      with torch.no_grad():
        for i in range(0, frames, step):
          fn(driving[i:i + step]).numpy()
    return go
  compiled = torch.compile(animate)
  return {"eager, frame by frame": run(animate, 1), f"eager, {batch} a call": run(animate, batch),
          f"torch.compile, {batch} a call": run(compiled, batch)}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--reference", required=True)
  p.add_argument("--sizes", default="64,256")
  p.add_argument("--parts", default="train,animate")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--threads", type=int, default=os.cpu_count())
  a = p.parse_args(argv)
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(a.threads)
  ref = import_reference(a.reference)
  for res in (int(s) for s in a.sizes.split(",")):
    cfg = reference_config(a.reference, res)
    if "train" in a.parts:
      batch = 8 if res < 256 else 2
      s = timed(train_step_fn(ref, cfg, batch, res), a.repeats if res < 256 else 1)
      print(json.dumps({"row": f"reference tpsmm train {res} px", "batch": batch,
                        "step_s": round(s, 3), "images_per_s": round(batch / s, 2)}), flush=True)
    if "animate" in a.parts:
      batch = 16 if res < 256 else 8
      frames = 2 * batch
      for name, fn in animate_fns(ref, cfg, res, batch, frames).items():
        s = timed(fn, 1 if res >= 256 else a.repeats)
        print(json.dumps({"row": f"reference tpsmm animate {res} px", "how": name,
                          "frames_per_s": round(frames / s, 2)}), flush=True)


if __name__ == "__main__":
  main()
