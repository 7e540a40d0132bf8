"""deepjax evaluate --workdir=DIR [--task=swap] [--output=FILE] [--frames=64]

A dispatcher: `--task` names an evaluation in TASKS (a function taking no
arguments that reads the flags it needs). Tasks:
- swap (default): a face-swap workdir (ae / vae / gan trained on synthetic
  identities) on a held-out synthetic clip: A->B and B->A against the exact
  ground truth: PSNR, SSIM, L1 and the landmark (pose/expression) error of the
  outputs, next to baselines; prints a table, writes JSON (default
  DIR/evaluate_swap.json).
- swap_real: a face-swap workdir trained from face folders (data.source=folders),
  on held-out crops of both real people (the folders' test split, or
  --frames_a/--frames_b): dlib identity retrieval and distances, landmark NME and
  jitter vs the input, face-found rate, sharpness (`deepjax.eval.swap_real`);
  prints a table, writes JSON (default DIR/evaluate_swap_real.json).
- train_landmarks: trains the synthetic-face landmark regressor used by `swap`
  into --output (default: the cache folder swap uses), and prints its own error.
  `swap` trains it lazily into the cache when absent; `--landmarks=DIR` picks
  another copy.
- detection: a detector workdir (configs/detect.py) on the held-out identities of its
  data (`--split`), or on other crop folders (`--folders=real:DIR,ae:DIR`): real crops
  and self-blends of them (plus any generated fakes; --nosbi: the crops alone, e.g. real
  against one generator's fakes), frame- and video-level ROC AUC, EER and accuracy at 0.5;
  writes JSON (default DIR/evaluate_detection.json). `--workdir=DIR1,DIR2,...` scores an
  ensemble (the mean of the detectors' fake probabilities; JSON by default in the folder
  the members share).
"""
import json
import os
import sys

from absl import flags

from deepjax.cli import program

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of a trained model (detection: "
                                "or several comma-separated, an ensemble).")
_TASK = flags.DEFINE_string("task", "swap", "Evaluation to run: swap | swap_real | "
                            "reconstruction | train_landmarks | detection.")
_OUTPUT = flags.DEFINE_string("output", None, "JSON file (swap) or folder (train_landmarks).")
_FRAMES = flags.DEFINE_integer("frames", 64, "Frames of the held-out clip (swap); at most this many "
                                "held-out crops per person (swap_real).")
_LANDMARKS = flags.DEFINE_string("landmarks", None,
                                 "Landmark regressor folder (default: the cache).")


def swap():
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  from deepjax.eval import swap_quality  # pylint: disable=import-outside-toplevel
  from deepjax.io_utils import write_text_atomic  # pylint: disable=import-outside-toplevel
  if not _WORKDIR.value:
    raise UserError("--workdir is required (a folder written by deepjax train)")
  if _FRAMES.value <= 0:
    raise UserError(f"--frames must be positive, got {_FRAMES.value}")
  workdir = os.path.abspath(_WORKDIR.value)
  if not os.path.isdir(workdir):
    raise UserError(f"workdir not found: {workdir}")
  report = swap_quality.evaluate(workdir, _FRAMES.value, _LANDMARKS.value)
  out = _OUTPUT.value or os.path.join(workdir, "evaluate_swap.json")
  write_text_atomic(out, json.dumps(report, indent=2))
  print(f"swap quality of {workdir} (step {report['step']}, task {report['task']}) on a "
        f"held-out synthetic clip of {report['frames']} frames (exact ground truth):")
  print(swap_quality.format_table(report))
  print(f"wrote {out}")


def train_landmarks():
  from deepjax.eval import landmark_regressor as lmr  # pylint: disable=import-outside-toplevel
  folder = os.path.abspath(_OUTPUT.value or _LANDMARKS.value or lmr.default_cache_dir())
  params, report = lmr.train()
  lmr.save(folder, params, report)
  t = report["test"]
  print(f"landmark regressor trained in {report['train_seconds']:.0f} s; error on unseen "
        f"synthetic faces: NME {t['sharp']['nme_mean']:.4f} (p90 {t['sharp']['nme_p90']:.4f}, "
        f"{t['sharp']['pixels_mean']:.2f} px at {report['settings']['size']} px) sharp, "
        f"{t['half_blurred']['nme_mean']:.4f} with half blurred; wrote {folder}")


# name -> function; other evaluations (e.g. reconstruction of motion models) register here.
_VIDEOS = flags.DEFINE_string("videos", None, "reconstruction: folder of clips (default: the "
                              "run's held-out split).")


def reconstruction():
  """First-order motion: the reference protocol on held-out videos (L1, AKD, AED, MKR)."""
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  from deepjax.io_utils import write_text_atomic  # pylint: disable=import-outside-toplevel
  if not _WORKDIR.value:
    raise UserError("--workdir (a trained motion model's run folder) is required")
  if not os.path.isdir(_WORKDIR.value):
    raise UserError(f"--workdir not found: {_WORKDIR.value}")
  if _FRAMES.present and _FRAMES.value <= 0:
    raise UserError(f"--frames must be positive, got {_FRAMES.value}")
  from deepjax.eval import reconstruction as rec  # pylint: disable=import-outside-toplevel
  report = rec.evaluate_reconstruction(_WORKDIR.value, _VIDEOS.value,
                                       _FRAMES.value if _FRAMES.present else None)
  out = _OUTPUT.value or os.path.join(_WORKDIR.value, "evaluate_reconstruction.json")
  write_text_atomic(out, json.dumps(report, indent=2))
  print(rec.format_report(report))
  print(f"wrote {out}", file=sys.stderr)


_SPLIT = flags.DEFINE_string("split", "test", "detection: split of the run's data to score.")
_SBI = flags.DEFINE_boolean("sbi", None, "detection: also score a self-blend of each real "
                             "crop (default: as the run was trained; --nosbi scores only the "
                             "crops, e.g. real against one generator's fakes).")
_FOLDERS = flags.DEFINE_list("folders", None, "detection: crop folders generator:PATH to score "
                             "instead of the run's data (e.g. real:faces,ae:run/faces).")


def detection():
  """A deepfake detector on held-out identities: frame AUC, EER, accuracy at 0.5."""
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  from deepjax.eval import detection as det  # pylint: disable=import-outside-toplevel
  from deepjax.io_utils import write_text_atomic  # pylint: disable=import-outside-toplevel
  from deepjax.loading import ensemble_members  # pylint: disable=import-outside-toplevel
  usage = ("--workdir must be the run folder of a detector (deepjax train "
           "--config=configs/detect.py), or several comma-separated (an ensemble)")
  names = ensemble_members(_WORKDIR.value) if _WORKDIR.value else []
  if not names:
    raise UserError(usage)
  for name in names:
    if not os.path.isdir(name):
      raise UserError(f"{usage}; not found: {name}")
  data = {"source": "folders", "folders": tuple(_FOLDERS.value)} if _FOLDERS.value else None
  report = det.evaluate_workdir(names, _SPLIT.value, data=data, eval_sbi=_SBI.value)
  home = names[0] if len(names) == 1 else os.path.commonpath([os.path.abspath(n) for n in names])
  out = _OUTPUT.value or os.path.join(home, "evaluate_detection.json")
  write_text_atomic(out, json.dumps(report, indent=2))
  what = (f"detector {names[0]}" if len(names) == 1 else
          f"ensemble of {len(names)} detectors ({', '.join(names)})")
  print(f"{what} (step {report['step']}) on the '{report['split']}' split: "
        f"{report['n_real']} real, {report['n_fake']} fake crops")
  print(f"  frame AUC {report['auc']:.4f}  EER {report['eer']:.4f}  "
        f"accuracy@0.5 {report['accuracy']:.4f}")
  print(f"  threshold calling 5 % of these real crops fake: {report['threshold_fpr5']:.4f} "
        "(deepjax detect --threshold)")
  if "video_auc" in report:
    print(f"  video AUC {report['video_auc']:.4f}  EER {report['video_eer']:.4f}  "
          f"accuracy@0.5 {report['video_accuracy']:.4f} ({report['n_videos']} videos: a clip's "
          "real crops and its fakes count as two)")
  print(f"wrote {out}", file=sys.stderr)


_FRAMES_A = flags.DEFINE_string("frames_a", None, "swap_real: folder of held-out crops of A "
                                 "(default: the test split of data.a).")
_FRAMES_B = flags.DEFINE_string("frames_b", None, "swap_real: the same for B.")
_GALLERY = flags.DEFINE_list("gallery", [], "swap_real: extra face folders (other people) "
                             "added to the identity gallery.")
_GALLERY_MAX = flags.DEFINE_integer("gallery_max", 64, "swap_real: training crops per identity "
                                    "averaged into its gallery embedding.")


def swap_real():
  """Real people: identity, expression/pose, jitter, face-found rate, sharpness (dlib)."""
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  from deepjax.io_utils import write_text_atomic  # pylint: disable=import-outside-toplevel
  if not _WORKDIR.value:
    raise UserError("--workdir is required (a swap run trained from face folders)")
  workdir = os.path.abspath(_WORKDIR.value)
  if not os.path.isdir(workdir):
    raise UserError(f"workdir not found: {workdir}")
  if _FRAMES.value <= 0 or _GALLERY_MAX.value <= 0:
    raise UserError("--frames and --gallery_max must be positive")
  from deepjax.eval import swap_real as sr  # pylint: disable=import-outside-toplevel
  report = sr.evaluate(workdir, _FRAMES_A.value, _FRAMES_B.value, _GALLERY.value,
                       _FRAMES.value, _GALLERY_MAX.value)
  out = _OUTPUT.value or os.path.join(workdir, "evaluate_swap_real.json")
  write_text_atomic(out, json.dumps(report, indent=2))
  print(f"swap quality of {workdir} (step {report['step']}, task {report['task']}) on held-out "
        f"crops of real people (dlib embedding + 68 landmarks at {report['analysis_side']} px; "
        "retrieval/distances against the gallery, NME/jitter/sharpness against the input):")
  print(sr.format_table(report))
  print(f"wrote {out}")


TASKS = {"swap": swap, "swap_real": swap_real, "reconstruction": reconstruction,
         "train_landmarks": train_landmarks, "detection": detection}


def main(argv):
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  program.check_args(argv)
  if _TASK.value not in TASKS:
    raise UserError(f"unknown --task {_TASK.value!r}; known: {', '.join(TASKS)}")
  TASKS[_TASK.value]()


def run(argv=None):
  program.run(main, argv)
