"""Deepfake detector: an EfficientNet-like classifier trained from scratch on real faces
and their self-blended fakes (SBI), plus any generated fakes in the data.

Config arguments (comma-separated), e.g. `--config=configs/detect.py:tiny`:
- (none): EfficientNet-B0 stages at 128 px, batch 32, with the recipe measured to carry over
  to deepjax's fakes of new people (README's detection matrix; measured at `tiny`): the stem
  sees the picture minus its blur (`model.input_filter`), framing jitter without colour
  jitter, dropout 0.3, weight decay 0.05.
- `tiny`: a CPU-sized network at 64 px (4 short stages, ~0.1 M parameters), batch 16,
  5,000 steps (about 30 minutes on one CPU core).
- `plain`: the recipe before that (no input filter, framing and colour jitter, dropout 0.1 at
  `tiny` / 0.2, weight decay 1e-4): docs/detection.md's earlier rows were trained with it.
- `highpass`: the default recipe; it wins over `plain` (older commands run unchanged).
- `mask`: turn on the mask head (supervised by the manipulation masks).
- `noaug`: no framing / colour / quality jitter (flips only), for ablations.
- `folders=real:PATH+ae:PATH`: crop folders (generator:path, joined by '+'); without
  it the data are procedural synthetic faces.
- `batch`, `steps`, `res` overrides.
Any field can also be overridden on the command line: `--config.sbi.hue=0.1`.
"""
import ml_collections

from deepjax.configs_lib import apply_run_args, parse_arg, set_loop
from deepjax.models.detect import B0_STAGES
from deepjax.ops.self_blend import SBI_DEFAULTS

TINY_STAGES = ((16, 1, 1, 3, 1), (24, 1, 2, 3, 4), (40, 2, 2, 5, 4), (64, 1, 2, 3, 4))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = parse_arg(arg)
  tiny = "tiny" in args
  res = int(args.get("res", 64 if tiny else 128))
  c = ml_collections.ConfigDict()
  c.task = "detect"
  c.seed = 0
  c.model = ml_collections.ConfigDict(dict(
      stem=16 if tiny else 32, stages=TINY_STAGES if tiny else B0_STAGES,
      head=128 if tiny else 1280, se_ratio=0.25, dropout=0.3,
      mask_head="mask" in args, mask_stage=2,     # mask logits at 1/8 of the input
      depthwise="shifted",                        # "lax": compiles faster, runs slower on CPU
      input_filter="highpass"))                   # "none" / "standardize" (models/detect.py)
  c.sbi = ml_collections.ConfigDict(dict(SBI_DEFAULTS))
  c.detect = ml_collections.ConfigDict(dict(
      flip_prob=0.5, mask_weight=0.5 if "mask" in args else 0.0, eval_sbi=True,
      eval_seed=1234,
      ema_decay=0.999,    # evaluate / export a moving average of the parameters (0 = off)
      # weight real and fake rows to equal totals in every batch; measured
      # (docs/detection.md): no more reliable across seeds than unweighted, so off
      balance_classes=False,
      # framing jitter of every training input (deepjax.ops.detect_augment); colour jitter
      # off (with it the detector learnt its training people's faces: docs/detection.md);
      # quality loss (quality_prob, noise) off: it hid the blur of AE/VAE swaps
      augment=dict(rotation_deg=8.0, zoom=0.08, shift=0.04, hue=0.0, saturation=0.0,
                   brightness=0.0, contrast=0.0, quality_prob=0.0, blur_max=1.2,
                   down_min=0.5, noise=0.0)))
  folders = tuple(f for f in str(args.get("folders", "")).split("+") if f)
  c.data = ml_collections.ConfigDict(dict(
      source="folders" if folders else "synthetic",
      size=res,
      folders=folders,                # "generator:path" crop folders (source="folders")
      synthetic_identities=12, synthetic_frames=48,
      test_fraction=0.25, test_identities=(),
      val_identities=(),              # training people held out to choose the checkpoint
      data_dir="",                    # "" = ~/.cache/deepjax/datasets
      worker_count=0, shuffle=True))
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=2e-3 if tiny else 1e-3, b1=0.9, b2=0.999, weight_decay=0.05, clip_norm=1.0))
  # The loop's keys (configs_lib.set_loop); evaluation: held-out AUC (real crops vs their
  # self-blends).
  if tiny:
    # 5,000 steps: about what the recipe reached in 30 minutes on one core (README)
    set_loop(c, batch_size=16, num_steps=5000, every=500, log_every=50, eval_every=250)
  else:
    set_loop(c, batch_size=32, num_steps=30_000, every=2000, eval_batches=4)
  if "plain" in args and "highpass" not in args:
    c.model.input_filter = "none"
    c.model.dropout = 0.1 if tiny else 0.2
    c.optimizer.weight_decay = 1e-4
    c.detect.augment.update(dict(hue=0.03, saturation=0.2, brightness=0.1, contrast=0.15))
  if "noaug" in args:
    c.detect.augment = {}
  apply_run_args(c, args)
  c.lock()
  return c
