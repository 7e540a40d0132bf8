"""Swap a folder of face crops (or one face image) with a trained model.

`swap_images(swapper, paths, output_dir, direction)` writes each swapped face as PNG under
`output_dir` with the input's name, at the input's size. Beside them it writes what a
detection data set needs to use them as labelled fakes (`deepjax.data.builders.detection`):
`masks/<name>` (grayscale, 255 = changed: the model's learned mask for the GAN family, the
whole crop for models without one), and, when the crops came from a folder with an
`alignments.json` (as `deepjax extract` writes), an `alignments.json` whose entries are the
input crops' (source clip, frame, identity, landmarks: the swap keeps the pose) with
`generator` set to the model's family. Unreadable files are skipped with a log line; faces
whose mask is empty (the output is the input) are written and counted in a warning.
"""
import json
import os
from typing import Callable, Optional, Sequence

import numpy as np
from absl import logging
from PIL import Image

from deepjax.data import images
from deepjax.data.builders import face_folders
from deepjax.errors import UserError
from deepjax.faces.mask import count_empty_masks, empty_mask_warning
from deepjax.io_utils import write_text_atomic

MASKS_DIR = "masks"


def input_records(paths: Sequence[str]) -> dict[str, dict]:
  """{input file name: its alignments.json entry} of the folder(s) the paths are in."""
  records = {}
  for folder in sorted({os.path.dirname(os.path.abspath(p)) for p in paths}):
    path = os.path.join(folder, face_folders.ALIGNMENTS_FILE)
    if not os.path.exists(path):
      continue
    try:
      with open(path, encoding="utf-8") as f:
        entries = json.load(f)["faces"]
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise UserError(f"bad {path} ({type(e).__name__}: {e})") from None
    for e in entries:
      if isinstance(e, dict) and e.get("file"):
        records[os.path.basename(str(e["file"]))] = e
  return records


def _resized_uint8(x_SxSxC: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
  im = Image.fromarray((np.clip(x_SxSxC, 0, 1) * 255 + 0.5).astype(np.uint8).squeeze())
  if im.size != (hw[1], hw[0]):
    im = im.resize((hw[1], hw[0]), Image.BICUBIC)
  return np.asarray(im)


def swap_images(swapper, paths: Sequence[str], output_dir: str, direction: str,
                log: Callable[[str], None] = logging.info, provenance=None) -> int:
  """Swaps each image file into `output_dir`; returns the number written.

  swapper: a `deepjax.infer.swap.Swapper`; direction: "a2b" or "b2a";
  provenance: a `deepjax.provenance.Provenance` (marks and signs each face) or None.
  """
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise UserError(f"the output folder is a file: {output_dir}")
  faces, sizes, names, sources = [], [], [], []
  for p in paths:
    try:
      img = images.read_image(p)
    except UserError as e:
      log(f"skip: {e}")
      continue
    sizes.append(img.shape[:2])
    sources.append(p)
    names.append(os.path.splitext(os.path.basename(p))[0] + ".png")
    faces.append(np.asarray(Image.fromarray(img).resize((swapper.size, swapper.size),
                                                       Image.BICUBIC), np.float32) / 255)
  if not faces:
    return 0
  swapped, masks = swapper(np.stack(faces), direction)
  empty = count_empty_masks(masks)
  if empty:
    log(empty_mask_warning(empty, len(faces)) + "; as labelled fakes they would be real faces")
  os.makedirs(os.path.join(output_dir, MASKS_DIR), exist_ok=True)
  for out, mask, hw, name, src in zip(swapped, masks, sizes, names, sources):
    image, path = _resized_uint8(out, hw), os.path.join(output_dir, name)
    images.write_image(path, image if provenance is None else provenance.mark_frames(image))
    images.write_image(os.path.join(output_dir, MASKS_DIR, name), _resized_uint8(mask, hw))
    if provenance is not None:
      provenance.sign(path, size=(hw[1], hw[0]), ingredients=[src])
  _write_alignments(output_dir, sources, names, str(swapper.config.task), direction)
  return len(faces)


def _write_alignments(output_dir: str, sources: Sequence[str], names: Sequence[str],
                      generator: str, direction: str) -> Optional[str]:
  """The output's alignments.json from the inputs' entries (None when they have none)."""
  records = input_records(sources)
  faces = []
  for src, name in zip(sources, names):
    entry = records.get(os.path.basename(src))
    if entry is not None:
      faces.append(dict(entry, file=name, generator=generator, swap=direction))
  if not faces:
    return None
  path = os.path.join(output_dir, face_folders.ALIGNMENTS_FILE)
  write_text_atomic(path, json.dumps({"faces": faces}, indent=1))
  return path
