"""deepjax detect --input=VIDEO|IMAGE|FOLDER --workdir=RUN [--json=FILE] [--output=OUT]
[--every_n_frames=1]

Finds and tracks the faces of each file, scores every face of every sampled frame with
the detector in RUN (trained with configs/detect.py; `--workdir=RUN1,RUN2,...` scores with
an ensemble, the mean of their fake probabilities), and prints a verdict per face track
and per file with the fake probability (mean over a track's frames; a file takes its
most suspicious track). `--json` writes the full report (every face's score and box).
`--output` (one image or video as input) writes an annotated copy: every face boxed, green
(real) to red (fake), its probability beside it, the predicted manipulation mask tinted in
where the detector has a mask head; a video keeps its audio.
"""
import json

from absl import flags

from deepjax.cli import program

_INPUT = flags.DEFINE_string("input", None, "Image, video, or folder of images/videos.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of a trained detector, or several "
                                "comma-separated: an ensemble scoring their mean probability.")
_JSON = flags.DEFINE_string("json", None, "Write the full report to this JSON file.")
_OUTPUT = flags.DEFINE_string("output", None, "Write an annotated copy of the input here "
                              "(.mp4 for a video, an image name for an image).")
_EVERY = flags.DEFINE_integer("every_n_frames", 1, "Score every n-th video frame.")
_MAX_FRAMES = flags.DEFINE_integer("max_frames", None, "Read at most this many frames.")
_DETECTOR = flags.DEFINE_enum("detector", "auto", ["auto", "dlib", "dlib_cnn", "face_alignment"],
                              "Face detector backend.")
_THRESHOLD = flags.DEFINE_float("threshold", 0.5, "A face track (and a file) is FAKE when its "
                                "mean fake probability is at least this; new people's real "
                                "faces can score high, so set it on real footage like yours.")


def main(argv):
  import os  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  from deepjax import loading  # pylint: disable=import-outside-toplevel
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  from deepjax.infer import detect  # pylint: disable=import-outside-toplevel
  from deepjax.io_utils import write_text_atomic  # pylint: disable=import-outside-toplevel
  program.check_args(argv, (("input", _INPUT.value, "an image, a video or a folder"),
                            ("workdir", _WORKDIR.value, "a detector's run folder")))
  if _EVERY.value < 1:
    raise UserError(f"--every_n_frames must be >= 1, got {_EVERY.value}")
  if _MAX_FRAMES.value is not None and _MAX_FRAMES.value < 1:
    raise UserError(f"--max_frames must be >= 1, got {_MAX_FRAMES.value}")
  if not 0.0 <= _THRESHOLD.value <= 1.0:
    raise UserError(f"--threshold is a probability in [0, 1], got {_THRESHOLD.value}")
  for member in loading.ensemble_members(_WORKDIR.value):
    if not os.path.isdir(member):
      raise UserError(f"--workdir not found: {member}")
  opts = detect.DetectOptions(every_n_frames=_EVERY.value, max_frames=_MAX_FRAMES.value,
                              detector=_DETECTOR.value, threshold=_THRESHOLD.value)
  report = detect.detect_path(_INPUT.value, _WORKDIR.value, opts,
                              progress=lambda p: print(f"scored {p}", file=sys.stderr),
                              output=_OUTPUT.value)
  for msg in report["skipped"]:
    print(msg, file=sys.stderr)
  for f in report["files"]:
    if f["fake_probability"] is None:
      print(f"{f['file']}: no face found in {f['frames_sampled']} sampled frame(s)")
      continue
    print(f"{f['file']}: {f['verdict'].upper()} (fake probability {f['fake_probability']:.3f}, "
          f"{len(f['tracks'])} face track(s))")
    for t in f["tracks"]:
      print(f"  track {t['track']}: {t['verdict']} {t['fake_probability']:.3f} over "
            f"{t['frames']} frame(s)")
  if not any(f["fake_probability"] is not None for f in report["files"]):
    raise UserError(f"no face found in {_INPUT.value}")
  if _JSON.value:
    write_text_atomic(_JSON.value, json.dumps(report, indent=2))
    print(f"wrote {_JSON.value}", file=sys.stderr)
  if _OUTPUT.value:
    print(f"wrote {_OUTPUT.value}", file=sys.stderr)


def run(argv=None):
  program.run(main, argv)
