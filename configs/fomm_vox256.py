"""First-order motion model, the reference's config/vox-256.yaml (VoxCeleb, 256 px).

`--config=configs/fomm_vox256.py` (arguments, comma-separated):
- `tiny`: the CPU recipe: 64 px frames; keypoint detector and dense motion at scale 0.5
  (32 px) with 3 hourglass blocks; narrower channels; fewer bottleneck blocks; pyramid scales
  (1, 0.5, 0.25) (VGG19 needs 16 px); batch 8 and 600 steps. Everything else (losses,
  transform, normalisation) is vox-256's.
- `res=N`: the vox-256 architecture on N px frames, with the keypoint detector and dense
  motion at scale 0.25 for N >= 256 and 0.5 below (`kp_scale=S` overrides); `res=64` is the
  setting of the 64 px speed figures against the PyTorch peer (docs/performance.md).
- `batch=N`, `steps=N`, `align_corners=1`.
Values follow the reference yaml at the head of
github.com/AliaksandrSiarohin/first-order-model (keypoint detector block_expansion 32,
batch size 40). Sections:
- model: sizes (read by `deepjax.models.motion.fomm.FOMM.from_config`).
- train: optimiser and schedule (Adam, betas (0.5, 0.999), lr x `lr_decay` at
  `epoch_milestones`, which fall at step round(m / num_epochs * num_steps)), pyramid
  scales of the perceptual loss and the random TPS transform of the equivariance losses.
- loss: loss weights (as the reference's `loss_weights`) and `vgg_weights`, a path to a
  VGG19 `.npz` (deepjax.models.vgg); "" = multi-scale L1 fallback, logged as such.
- data: a folder of talking-head videos (or frame folders), held-out list, frame size.
How a photo is animated (relative motion, adapted scale) is chosen by `deepjax animate`'s
flags, whose defaults are the reference's vox-256 `normalization_params`.
"""
import ml_collections

from deepjax.configs_lib import apply_run_args, parse_arg, set_loop, set_motion_resolution


def model_vox256() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      num_kp=10, num_channels=3, estimate_jacobian=True,
      # grid_sample convention: False = the reference code under torch >= 1.3 (its
      # requirements pin 1.7.1); the published checkpoints were trained under torch 1.0
      # (behaves as True). See deepjax/ops/sampling.py.
      align_corners=False,
      kp_detector=dict(temperature=0.1, block_expansion=32, max_features=1024,
                       scale_factor=0.25, num_blocks=5, single_jacobian_map=False, pad=0),
      generator=dict(block_expansion=64, max_features=512, num_down_blocks=2,
                     num_bottleneck_blocks=6, estimate_occlusion_map=True),
      dense_motion=dict(block_expansion=64, max_features=1024, num_blocks=5,
                        scale_factor=0.25, kp_variance=0.01),
      discriminator=dict(scales=(1.0,), block_expansion=32, max_features=512, num_blocks=4,
                         sn=True, use_kp=False, kp_variance=0.01)))


def train_vox256() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      num_epochs=100, epoch_milestones=(60, 90), lr_decay=0.1,
      lr_generator=2e-4, lr_discriminator=2e-4, lr_kp_detector=2e-4, adam_b1=0.5, adam_b2=0.999,
      scales=(1.0, 0.5, 0.25, 0.125),
      transform=dict(sigma_affine=0.05, sigma_tps=0.005, points_tps=5)))


def loss_vox256() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      generator_gan=0.0, discriminator_gan=1.0, feature_matching=(10.0, 10.0, 10.0, 10.0),
      perceptual=(10.0, 10.0, 10.0, 10.0, 10.0), equivariance_value=10.0,
      equivariance_jacobian=10.0, vgg_weights=""))


def data_vox256() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      source="videos",            # "videos": a folder of clips (mp4 or frame folders), or
                                  # "synthetic" (below)
      video_dir="",               # root folder; with train/ and test/ subfolders if split
      size=256, frame_shape=(256, 256, 3),
      id_sampling=True,           # sample by identity (name prefix before '#')
      held_out=(),                # clip names kept out of training (else a 20% split)
      test_fraction=0.2,
      pairs_list="",
      data_dir="",                # prepared datasets; "" = ~/.cache/deepjax/datasets
      # source="synthetic": rendered talking heads (no footage needed; tests, benchmarks):
      # identities from identity_offset, the last num_test_identities held out.
      num_identities=8, num_test_identities=2, num_frames=16, identity_offset=1000,
      augmentation=dict(horizontal_flip=True, time_flip=True, brightness=0.1, contrast=0.1,
                        saturation=0.1, hue=0.1)))


def make_tiny(c: ml_collections.ConfigDict) -> None:
  """The CPU recipe's sizes (see the module docstring), in place."""
  c.model.kp_detector.update(block_expansion=16, max_features=256, scale_factor=0.5,
                             num_blocks=3)
  c.model.generator.update(block_expansion=16, max_features=128, num_down_blocks=2,
                           num_bottleneck_blocks=2)
  c.model.dense_motion.update(block_expansion=16, max_features=256, num_blocks=3,
                              scale_factor=0.5)
  c.model.discriminator.update(block_expansion=16, max_features=128, num_blocks=3)
  c.data.update(size=64, frame_shape=(64, 64, 3))
  # VGG19's relu5_1 needs 16 px: the 8 px (0.125) pyramid level of vox-256 is dropped.
  c.train.update(num_epochs=10, epoch_milestones=(6, 9), scales=(1.0, 0.5, 0.25))
  set_loop(c, batch_size=8, num_steps=600, every=200, log_every=50, eval_batches=1)


def get_config(arg=None) -> ml_collections.ConfigDict:
  args = parse_arg(arg)
  c = ml_collections.ConfigDict()
  c.task = "motion"
  c.seed = 0
  c.model = model_vox256()
  c.train = train_vox256()
  c.loss = loss_vox256()
  c.data = data_vox256()
  # The loop's keys (configs_lib.set_loop). The reference's batch (40) and schedule: 100
  # epochs x 75 repeats of VoxCeleb's 18,556 training clips, one pair per clip.
  set_loop(c, batch_size=40, num_steps=100 * 75 * 18_556 // 40)
  if "tiny" in args:
    make_tiny(c)
  apply_run_args(c, args)
  if "align_corners" in args:
    c.model.align_corners = args["align_corners"] in (True, "1", "true", "True")
  if "res" in args:
    res = int(args["res"])
    set_motion_resolution(c, res)
    scale = float(args.get("kp_scale", 0.25 if res >= 256 else 0.5))
    c.model.kp_detector.scale_factor = scale
    c.model.dense_motion.scale_factor = scale
  c.lock()
  return c
