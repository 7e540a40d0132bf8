"""Re-encoded copies of crop folders: the crops a detector meets after a video platform.

`reencode_folder(src, dst, crf)` writes each source clip's crops of a crop folder (one
written by `deepjax extract`, `deepjax swap` in image mode or `deepjax animate` to a folder)
as one H.264 clip at the given CRF, decodes it, and saves the decoded crops as PNG under the
same names, with the folder's `alignments.json` and `masks/` copied (names mapped to .png):
a folder the detection builder reads like the original.
"""
import json
import os
import shutil
import tempfile

import numpy as np
from absl import logging

from deepjax.data import images, video
from deepjax.data.builders import detection, face_folders
from deepjax.errors import UserError


def clip_groups(folder: str) -> list[list[str]]:
  """File names of `folder`'s crops as the detection builder reads them
  (`detection.folder_faces`), grouped by source clip, each group in frame order."""
  groups: dict[str, list[tuple[int, str]]] = {}
  for face in detection.folder_faces(folder, "real"):
    groups.setdefault(face["clip"], []).append((face["frame"], face["file"]))
  return [[name for _, name in sorted(g)] for _, g in sorted(groups.items())]


def _reencode_group(names: list[str], src: str, dst: str, crf: int, fps: float,
                    scratch: str) -> None:
  crops = [images.read_image(os.path.join(src, n)) for n in names]
  shape = crops[0].shape
  if any(c.shape != shape for c in crops):
    raise UserError(f"{src}: crops of one clip differ in size; cannot encode them as a video")
  clip = os.path.join(scratch, "clip.mp4")
  video.write_video(clip, crops, fps, crf=crf)
  decoded, _, _ = video.read_video(clip)
  if len(decoded) != len(names):
    raise UserError(f"{src}: {len(names)} crops encoded, {len(decoded)} decoded")
  for name, frame in zip(names, decoded):
    images.write_image(os.path.join(dst, os.path.splitext(name)[0] + ".png"),
                       np.asarray(frame, np.uint8))


def reencode_folder(src: str, dst: str, crf: int, fps: float = 25.0) -> int:
  """Writes `dst`: the crops of `src` after H.264 at `crf` (one clip per source clip),
  as PNG, plus `src`'s alignments.json (file names mapped to .png) and masks/.
  `dst` appears whole or not at all. Returns the number of crops."""
  if not os.path.isdir(src):
    raise UserError(f"crop folder not found: {src}")
  groups = clip_groups(src)
  if not groups:
    raise UserError(f"no crops in {src}")
  parent = os.path.dirname(os.path.abspath(dst))
  os.makedirs(parent, exist_ok=True)
  partial = tempfile.mkdtemp(prefix=".reencode.", dir=parent)
  try:
    renamed = {}
    with tempfile.TemporaryDirectory() as scratch:
      for names in groups:
        _reencode_group(names, src, partial, crf, fps, scratch)
        renamed.update({n: os.path.splitext(n)[0] + ".png" for n in names})
    _copy_metadata(src, partial, renamed)
    if os.path.exists(dst):
      shutil.rmtree(dst)
    os.replace(partial, dst)
  except BaseException:
    shutil.rmtree(partial, ignore_errors=True)
    raise
  n = sum(len(g) for g in groups)
  logging.info("re-encoded %d crops of %s at CRF %d -> %s", n, src, crf, dst)
  return n


def _copy_metadata(src: str, dst: str, renamed: dict[str, str]) -> None:
  align = os.path.join(src, face_folders.ALIGNMENTS_FILE)
  if os.path.exists(align):
    with open(align, encoding="utf-8") as f:
      data = json.load(f)
    for e in data.get("faces", []):
      name = os.path.basename(str(e.get("file", "")))
      if name in renamed:
        e["file"] = renamed[name]
    with open(os.path.join(dst, face_folders.ALIGNMENTS_FILE), "w", encoding="utf-8") as f:
      json.dump(data, f)
  masks = os.path.join(src, "masks")
  if os.path.isdir(masks):
    os.makedirs(os.path.join(dst, "masks"))
    for name in os.listdir(masks):
      shutil.copyfile(os.path.join(masks, name),
                      os.path.join(dst, "masks", renamed.get(name, name)))
