"""deepjax swap --workdir=DIR --input=FACES --output=OUT [--direction=a2b]
deepjax swap --workdir=DIR --video=IN.mp4 --output=OUT.mp4 [--direction=a2b]

Image mode: --input is a face image or a folder of face crops (as written by
`deepjax extract`); each is resized to the model's size, swapped, resized back
to its own size and written as PNG under --output (a folder) with the same name,
with its mask under masks/ and, for extracted crops, an alignments.json naming each
fake's source clip, identity and generator (see deepjax/infer/swap_images.py): the
folder is ready for the detection data set as `ae:OUT`.
Video mode: every frame's faces are found, aligned, swapped and pasted back
(see deepjax/infer/video_swap.py); frames without a face pass through; the frame
count, size, fps and audio of the input are kept. Options: --color=none|mean_std|
histogram, --blend=alpha|seamless, --erode/--blur (mask, crop pixels), --forehead,
--detector, --faces=main|all, --smooth=N (landmark 1-euro filter), --batch (frames
per model call), --coverage/--centering (default: as the training crops),
--max_frames.
"""
import os

from absl import flags

from deepjax.cli import program
from deepjax.cli.provenance_flags import provenance_for

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of a trained swap model.")
_INPUT = flags.DEFINE_string("input", None, "Face image or folder of face images.")
_VIDEO = flags.DEFINE_string("video", None, "Input video (video mode).")
_OUTPUT = flags.DEFINE_string("output", None, "Output folder (images) or .mp4 (video).")
_DIRECTION = flags.DEFINE_enum("direction", "a2b", ["a2b", "b2a"], "Swap direction.")
_BATCH = flags.DEFINE_integer("batch", None, "Faces per model call (default 32 for images; "
                              "16 for --video, where it is also the frames per chunk).")
# Video mode only (see deepjax/infer/video_swap.py).
_COLOR = flags.DEFINE_enum("color", "mean_std", ["none", "mean_std", "histogram"],
                           "Video: colour matching of the swapped face to the original "
                           "(mean/std in Lab, or per-channel histogram).")
_BLEND = flags.DEFINE_enum("blend", "alpha", ["alpha", "seamless"],
                           "Video: feathered alpha blend, or Poisson (seamless) blend.")
_ERODE = flags.DEFINE_float("erode", None, "Video: mask erosion in crop pixels "
                            "(default crop size / 32).")
_BLUR = flags.DEFINE_float("blur", None, "Video: mask feather (Gaussian sigma) in crop pixels "
                           "(default crop size / 16).")
_FOREHEAD = flags.DEFINE_float("forehead", 0.2, "Video: how far the landmark mask reaches "
                               "over the forehead (0 = brows).")
_DETECTOR = flags.DEFINE_enum("detector", "auto", ["auto", "dlib", "dlib_cnn", "face_alignment"],
                              "Video: face detector / landmark backend.")
_FACES = flags.DEFINE_enum("faces", "main", ["main", "all"], "Video: swap the main face or "
                           "every face.")
_SMOOTH = flags.DEFINE_integer("smooth", 0, "Video: landmark smoothing (1-euro filter, stronger "
                               "for larger values); 0/1 = off.")
_COVERAGE = flags.DEFINE_float("coverage", None, "Video: crop coverage (default: as the "
                               "training crops' alignments.json, else 0.75).")
_CENTERING = flags.DEFINE_enum("centering", None, ["face", "head", "legacy"], "Video: crop "
                               "centring (default: as the training crops, else face).")
_MAX_FRAMES = flags.DEFINE_integer("max_frames", None, "Video: only the first N frames.")


def _swap_video(video_swap) -> None:
  """Video mode: the flags as `SwapOptions`, the swap, and its one-line summary."""
  opts = video_swap.SwapOptions(
      direction=_DIRECTION.value, color=_COLOR.value, blend=_BLEND.value, erode=_ERODE.value,
      blur=_BLUR.value, forehead=_FOREHEAD.value, detector=_DETECTOR.value, faces=_FACES.value,
      smooth=_SMOOTH.value, batch=_BATCH.value or 16, coverage=_COVERAGE.value,
      centering=_CENTERING.value, max_frames=_MAX_FRAMES.value)
  from deepjax.provenance import credentials  # pylint: disable=import-outside-toplevel
  prov = provenance_for(_WORKDIR.value, credentials.COMPOSITE, [_VIDEO.value])
  out = video_swap.swap_video_from_run(_WORKDIR.value, _VIDEO.value, _OUTPUT.value, opts,
                                       provenance=prov)
  print(f"swapped {out['with_face']}/{out['frames']} frames with a face ({opts.direction}) in "
        f"{out['seconds']:.1f} s ({out['frames_per_s']:.1f} frames/s), {out['width']}x"
        f"{out['height']} at {out['fps']:g} fps{', audio kept' if out['audio'] else ''} -> "
        f"{_OUTPUT.value}")
  if out["empty_masks"]:
    print(f"warning: {out['empty_masks']} faces were pasted back unchanged: the model's mask "
          "is empty on them (a GAN whose mask collapsed in training)")


def main(argv):
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  program.check_args(argv, (("workdir", _WORKDIR.value, "a trained swap model's run folder"),
                            ("output", _OUTPUT.value, None)))
  if bool(_INPUT.value) == bool(_VIDEO.value):
    raise UserError("give exactly one of --input (face images) or --video")
  from deepjax.infer.swap import Swapper  # pylint: disable=import-outside-toplevel
  if _VIDEO.value:
    try:
      from deepjax.infer import video_swap  # pylint: disable=import-outside-toplevel
    except ModuleNotFoundError as e:
      raise UserError("video mode is not available in this version of deepjax") from e
    _swap_video(video_swap)
    return
  from deepjax.data import video  # pylint: disable=import-outside-toplevel
  src = _INPUT.value
  if os.path.isdir(src):
    paths = video.list_images(src)
    if not paths:
      raise UserError(f"no images in {src}")
  elif os.path.isfile(src):
    paths = [src]
  else:
    raise UserError(f"input not found: {src}")
  from deepjax.provenance import credentials  # pylint: disable=import-outside-toplevel
  prov = provenance_for(_WORKDIR.value, credentials.GENERATED)
  from deepjax.infer.swap_images import swap_images  # pylint: disable=import-outside-toplevel
  swapper = Swapper(_WORKDIR.value, _BATCH.value or 32)
  n = swap_images(swapper, paths, _OUTPUT.value, _DIRECTION.value, provenance=prov,
                  log=print)
  if n == 0:
    raise UserError(f"no readable face images in {src}")
  print(f"swapped {n} of {len(paths)} images ({_DIRECTION.value}) into {_OUTPUT.value}")


def run(argv=None):
  program.run(main, argv)
