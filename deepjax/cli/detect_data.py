"""deepjax detect-data --config=configs/detect.py:tiny,folders=real:CROPS+ae:FAKES

Prepares the detection data set a detector config trains on (the same one `deepjax train`
would prepare, and reuses), with a progress bar, and prints what is in it: crops per split,
generator and label, and the identities of each split (splits are by identity, never by
frame). Fakes come from deepjax's own generators, e.g. `deepjax swap --input=CROPS
--output=FAKES` (see README, "Detecting the fakes").
"""
import collections
import sys

from ml_collections import config_flags

from deepjax.cli import program

_CONFIG = config_flags.DEFINE_config_file("config", None, "Detector config (.py), with :args.",
                                          lock_config=True)


def _summary(splits: dict) -> list[str]:
  lines = []
  for split, faces in splits.items():
    by_gen = collections.Counter(f["generator"] for f in faces)
    ids = sorted({f["identity"] for f in faces})
    gens = ", ".join(f"{g} {n}" for g, n in sorted(by_gen.items()))
    lines.append(f"{split}: {len(faces)} crops ({gens}); {len(ids)} identities: "
                 f"{', '.join(ids[:8])}{' ...' if len(ids) > 8 else ''}")
  return lines


def main(argv):
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  program.check_args(argv)
  config = program.config_value(_CONFIG)
  if config is None:
    raise UserError("--config is required, e.g. --config=configs/detect.py:tiny,"
                    "folders=real:CROPS+ae:FAKES")
  if config.get("task") != "detect":
    raise UserError(f"the config trains a {config.get('task')!r} model, not a detector")
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel
  from deepjax.data import detection_pipeline  # pylint: disable=import-outside-toplevel
  from deepjax.data.builders import detection  # pylint: disable=import-outside-toplevel
  folders = detection_pipeline.detection_folders(config.data)
  splits = detection.plan_splits(folders, float(config.data.get("test_fraction", 0.2)),
                                 tuple(config.data.get("test_identities", ())),
                                 tuple(config.data.get("val_identities", ())))
  total = sum(len(f) for f in splits.values())
  with tqdm(total=total, unit="crop", desc="preparing", file=sys.stderr, disable=None) as bar:
    builder = detection_pipeline.detection_builder(config.data, multihost=False,
                                                   on_example=lambda: bar.update(1))
  print(f"detection data set {builder.builder_config.name} in {builder.data_path}")
  for line in _summary(splits):
    print(line)


def run(argv=None):
  program.run(main, argv)
