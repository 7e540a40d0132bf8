"""Thin-plate-spline motion model, the reference's config/vox-256.yaml (VoxCeleb, 256 px).

`--config=configs/tpsmm_vox256.py` (arguments, comma-separated):
- `tiny`: the CPU-sized variant: 64 px, narrow dense motion and inpainting networks, pyramid
  scales (1, 0.5, 0.25) (VGG19 needs 16 px), batch 8 and 600 steps with the epoch-based
  schedules (dropout, bg_start, milestones) scaled to 10 epochs; the keypoint detector and
  the background predictor stay ResNet-18 (the reference's fixed trunk).
- `res=N`: the vox-256 networks on N px frames (the speed rows' 64 px setting against the
  PyTorch reference): below 256 px the dense motion network runs at scale 0.5 (its 5-block
  hourglass needs 32 px) and pyramid levels under 16 px (VGG19's relu5_1) are dropped.
- `batch=N`, `steps=N`.
Values follow config/vox-256.yaml at the head of
github.com/yoyo-nb/Thin-Plate-Spline-Motion-Model (its AVD training, `train_avd_params`,
is not implemented here). Sections:
- model: sizes (read by `deepjax.models.motion.tpsmm.TPSMM.from_config`); `name` picks the
  motion model ("tpsmm"); `avd`: the AVD network's bottlenecks (None: no AVD network).
- train: optimiser and schedule (Adam, betas (0.5, 0.999), weight decay 1e-4, gradients
  clipped to infinity-norm 10, lr x0.1 at epoch milestones), pyramid scales, the random TPS
  transform of the equivariance loss, TPS dropout (probability from dropout_startp rising
  by dropout_maxp every dropout_inc_epoch epochs up to dropout_maxp, off from
  dropout_epoch) and the background predictor's start epoch `bg_start`.
- loss: loss weights (the reference's `loss_weights`) and `vgg_weights` (as FOMM's).
- data: as configs/fomm_vox256.py.
How a photo is animated is chosen by `deepjax animate`'s flags; the reference's demo uses
relative motion scaled by the convex-hull areas (`--adapt_scale`).
"""
import ml_collections

from deepjax.configs_lib import (apply_run_args, load_config, parse_arg, set_loop,
                                 set_motion_resolution)


def model_vox256() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name="tpsmm", num_tps=10, num_channels=3, bg=True, multi_mask=True,
      generator=dict(block_expansion=64, max_features=512, num_down_blocks=3),
      dense_motion=dict(block_expansion=64, max_features=1024, num_blocks=5,
                        scale_factor=0.25, kp_variance=0.01),
      avd=dict(id_bottle_size=128, pose_bottle_size=128)))


def train_vox256() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      num_epochs=100, epoch_milestones=(70, 90), lr_decay=0.1,
      lr_generator=2e-4, adam_b1=0.5, adam_b2=0.999, weight_decay=1e-4, clip_inf_norm=10.0,
      scales=(1.0, 0.5, 0.25, 0.125), dropout_epoch=35, dropout_maxp=0.3, dropout_startp=0.1, dropout_inc_epoch=10,
      bg_start=10,
      transform=dict(sigma_affine=0.05, sigma_tps=0.005, points_tps=5)))


def loss_vox256() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      perceptual=(10.0, 10.0, 10.0, 10.0, 10.0), equivariance_value=10.0, warp_loss=10.0,
      bg=10.0, vgg_weights=""))


def _tiny(c: ml_collections.ConfigDict) -> None:
  c.model.generator.update(block_expansion=16, max_features=128)
  c.model.dense_motion.update(block_expansion=16, max_features=256, num_blocks=3)
  c.model.avd.update(id_bottle_size=32, pose_bottle_size=32)
  c.data.update(size=64, frame_shape=(64, 64, 3))
  # VGG19's relu5_1 needs 16 px: the 8 px (0.125) pyramid level is dropped.
  c.train.update(num_epochs=10, epoch_milestones=(7, 9), scales=(1.0, 0.5, 0.25),
                 dropout_epoch=4, dropout_inc_epoch=1, bg_start=1)
  set_loop(c, batch_size=8, num_steps=600, every=200, log_every=50, eval_batches=1)


def get_config(arg=None) -> ml_collections.ConfigDict:
  args = parse_arg(arg)
  c = ml_collections.ConfigDict()
  c.task = "motion"
  c.seed = 0
  c.model = model_vox256()
  c.train = train_vox256()
  c.loss = loss_vox256()
  c.data = load_config("fomm_vox256").data.copy_and_resolve_references()
  # The loop's keys (configs_lib.set_loop). The reference's batch (28) and schedule: 100
  # epochs x 75 repeats of VoxCeleb's 18,556 training clips.
  set_loop(c, batch_size=28, num_steps=100 * 75 * 18_556 // 28)
  if "tiny" in args:
    _tiny(c)
  apply_run_args(c, args)
  if "res" in args:
    res = int(args["res"])
    set_motion_resolution(c, res)
    if res < 256:
      c.model.dense_motion.scale_factor = 0.5
  c.lock()
  return c
