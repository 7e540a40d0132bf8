"""A CPU-sized first-order motion model: 64 px, narrow layers, the reference architecture.

`--config=configs/fomm_tiny.py` (arguments as configs/fomm_vox256.py). Differences from
vox-256: 64 px frames; keypoint detector and dense motion at scale 0.5 (32 px) with
3 hourglass blocks; narrower channels; fewer bottleneck blocks; pyramid scales
(1, 0.5, 0.25) (VGG19 needs 16 px); small batch and a short schedule. Everything else (losses, transform, normalisation) is vox-256's.
"""
import ml_collections

from deepjax.configs_lib import load_config, parse_arg


def get_config(arg=None) -> ml_collections.ConfigDict:
  args = parse_arg(arg)
  c = load_config("fomm_vox256")
  c.unlock()
  c.model.kp_detector.update(block_expansion=16, max_features=256, scale_factor=0.5,
                             num_blocks=3)
  c.model.generator.update(block_expansion=16, max_features=128, num_down_blocks=2,
                           num_bottleneck_blocks=2)
  c.model.dense_motion.update(block_expansion=16, max_features=256, num_blocks=3,
                              scale_factor=0.5)
  c.model.discriminator.update(block_expansion=16, max_features=128, num_blocks=3)
  c.data.update(size=64, frame_shape=(64, 64, 3))
  # VGG19's relu5_1 needs 16 px: the 8 px (0.125) pyramid level of vox-256 is dropped.
  c.train.update(batch_size=8, num_epochs=10, num_repeats=5, epoch_milestones=(6, 9),
                 scales=(1.0, 0.5, 0.25))
  c.batch_size = 8
  c.num_steps = 600
  c.log_every = 50
  c.checkpoint_every = 200
  c.preview_every = 200
  if "batch" in args:
    c.batch_size = c.train.batch_size = int(args["batch"])
  if "steps" in args:
    c.num_steps = int(args["steps"])
  if "align_corners" in args:
    c.model.align_corners = args["align_corners"] in (True, "1", "true", "True")
  c.lock()
  return c
