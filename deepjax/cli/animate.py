"""deepjax animate --workdir=DIR --source=PHOTO --driving=VIDEO --output=OUT.mp4

Animates a photo with the motion of a driving video using a trained or converted motion
model (`configs/fomm_vox256.py` or `configs/tpsmm_vox256.py`). See deepjax/infer/animate.py
for the details:
- inputs of any size/aspect become squares at the model's size: `--crop=face` (default)
  finds the face (a full scene is cropped to it; one fixed square over the whole driving
  clip), `--crop=center` takes the largest centred square, `--crop=none` resizes the
  whole frame (aspect not kept);
- `--mode`: `relative` (default) moves the photo's keypoints by the driving keypoints'
  motion from an initial driving frame, `absolute` uses the driving keypoints as they are,
  `avd` (thin-plate-spline models with an AVD network) takes the driving pose through that
  network; `--adapt_scale` scales relative motion by the keypoint-hull ratio;
  `--find_best_frame` starts from the driving frame whose face pose best matches the photo;
- all frames go through the model in batches of `--batch` inside one jitted function;
- the output is the square animation at the model's size, with the driving video's fps
  and audio, written atomically (no partial file on error); an `--output` that is not a
  video name is a new (or empty) folder that gets each frame as a crop and an
  alignments.json naming the generator, the driving clip and the photo's identity:
  fakes `deepjax detect-data` reads (`folders=...+fomm:FOLDER`).
"""
import os
import sys

from absl import flags

from deepjax.cli import program
from deepjax.cli.provenance_flags import provenance_for

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of a trained motion model.")
_SOURCE = flags.DEFINE_string("source", None, "Photo to animate.")
_DRIVING = flags.DEFINE_string("driving", None, "Driving video.")
_OUTPUT = flags.DEFINE_string("output", None, "Output video (.mp4), or a folder of crops "
                              "(detection-ready fakes).")
_MODE = flags.DEFINE_enum("mode", "relative", ["relative", "absolute", "avd"],
                          "Motion: relative to an initial driving frame, absolute keypoints, "
                          "or the AVD network (thin-plate-spline models).")
_ADAPT = flags.DEFINE_boolean("adapt_scale", False, "Scale relative motion by the hull ratio.")
_BEST = flags.DEFINE_boolean("find_best_frame", False,
                             "Start from the driving frame closest to the photo's pose.")
_CROP = flags.DEFINE_enum("crop", "face", ["face", "center", "none"], "How inputs are squared.")
_SCALE = flags.DEFINE_float("crop_scale", 2.0, "--crop=face: square side / face box side.")
_BATCH = flags.DEFINE_integer("batch", 16, "Frames per jitted model call.")
_EVERY = flags.DEFINE_integer("detect_every", 10, "Detect the face on every n-th driving frame.")
_MAX_FRAMES = flags.DEFINE_integer("max_frames", None, "Animate at most this many frames.")


def main(argv):
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  program.check_args(argv, [(name, flag.value, None) for name, flag in (
      ("workdir", _WORKDIR), ("source", _SOURCE), ("driving", _DRIVING), ("output", _OUTPUT))])
  if _BATCH.value < 1 or _EVERY.value < 1:
    raise UserError("--batch and --detect_every must be >= 1")
  if _MAX_FRAMES.value is not None and _MAX_FRAMES.value < 1:
    raise UserError("--max_frames must be >= 1")
  if not 1.0 <= _SCALE.value <= 6.0:
    raise UserError(f"--crop_scale must be in [1, 6], got {_SCALE.value}")
  out_dir = os.path.dirname(os.path.abspath(_OUTPUT.value))
  if not os.path.isdir(out_dir):
    raise UserError(f"output folder does not exist: {out_dir}")
  from deepjax.infer import animate as animation  # pylint: disable=import-outside-toplevel
  from deepjax.provenance import credentials  # pylint: disable=import-outside-toplevel
  prov = provenance_for(_WORKDIR.value, credentials.GENERATED, [_SOURCE.value, _DRIVING.value])
  info = animation.animate_file(
      _WORKDIR.value, _SOURCE.value, _DRIVING.value, _OUTPUT.value, relative=_MODE.value == "relative",
      adapt_scale=_ADAPT.value, find_best=_BEST.value, crop=_CROP.value, scale=_SCALE.value,
      batch_size=_BATCH.value, detect_every=_EVERY.value, max_frames=_MAX_FRAMES.value,
      provenance=prov, avd=_MODE.value == "avd")
  if info["crops"]:
    print(f"wrote {info['frames']} crops of {info['size']}x{info['size']} and alignments.json "
          f"to {info['output']}", file=sys.stderr)
    return
  print(f"wrote {info['output']}: {info['frames']} frames of {info['size']}x{info['size']} at "
        f"{info['fps']:g} fps ({'with' if info['audio'] else 'no'} audio; "
        f"{'avd' if info['avd'] else 'relative' if info['relative'] else 'absolute'} "
        f"motion from driving frame "
        f"{info['initial_frame']})", file=sys.stderr)


def run(argv=None):
  program.run(main, argv)
