"""An animation written as a folder of face crops: detection-ready fakes of a motion model.

`write_crops(frames, output_dir, ...)` writes each animated frame as `frame_NNNNNN.png`
and an `alignments.json` whose entries name the driving clip (`source`), the frame, the
identity of the animated face and the `generator` (the motion model's family, e.g.
`fomm`, `tpsmm`), the layout `deepjax.data.builders.detection` reads as fakes. An
animation changes the whole crop, so no `masks/` folder is written (the builder's
default for a fake without a mask is the whole crop). The face shown is the source
photo's person: its identity is the photo's `alignments.json` entry's identity or clip
when the photo comes from a crop folder (`deepjax extract`), else the photo's file stem.
No landmarks are written (the animation's own are unknown).
"""
import json
import os
from typing import Optional, Sequence

import numpy as np

from deepjax.data import images, video
from deepjax.data.builders import face_folders
from deepjax.errors import UserError
from deepjax.io_utils import write_text_atomic
from deepjax.infer.swap_images import input_records

WRITABLE_VIDEO = (".mp4", ".m4v", ".mov", ".mkv")


def is_video_name(path: str) -> bool:
  """True for a video file name the animation can be written to; UserError for another
  video name (e.g. .avi); False for anything else (a folder of crops)."""
  if path.lower().endswith(WRITABLE_VIDEO):
    return True
  if path.lower().endswith(video.VIDEO_EXTENSIONS):
    raise UserError(f"output must be a video file name ({', '.join(WRITABLE_VIDEO)}) or a "
                    f"folder, got {path}")
  return False


def check_output_folder(output_dir: str) -> None:
  """UserError unless `output_dir` is a new or empty folder whose parent exists."""
  if os.path.exists(output_dir):
    if not os.path.isdir(output_dir):
      raise UserError(f"the output folder is a file: {output_dir}")
    if os.listdir(output_dir):
      raise UserError(f"the output folder is not empty: {output_dir}")
  elif not os.path.isdir(os.path.dirname(os.path.abspath(output_dir))):
    raise UserError(f"the output folder's parent does not exist: {output_dir}")


def source_identity(source_path: str) -> str:
  """Whose face the source photo shows: its crop folder's identity/clip, else its stem."""
  entry = input_records([source_path]).get(os.path.basename(source_path))
  if entry is not None:
    if entry.get("identity"):
      return str(entry["identity"])
    if entry.get("source"):
      return os.path.splitext(os.path.basename(str(entry["source"])))[0]
  return os.path.splitext(os.path.basename(source_path))[0]


def write_crops(frames_TxSxSx3: np.ndarray, output_dir: str, source_path: str,
                driving_path: str, generator: str, frame_numbers: Optional[Sequence[int]] = None,
                provenance=None) -> int:
  """Writes uint8 frames (T,S,S,3) as crops + alignments.json into `output_dir` (created;
  checked with `check_output_folder` first). `frame_numbers`: each frame's index in the
  driving clip (default 0..T-1). `provenance` marks and signs each crop. Returns T."""
  check_output_folder(output_dir)
  frames = np.asarray(frames_TxSxSx3)
  if frames.dtype != np.uint8:
    frames = (np.clip(frames, 0, 1) * 255 + 0.5).astype(np.uint8)
  if provenance is not None:
    frames = provenance.mark_frames(frames)
  numbers = list(range(len(frames))) if frame_numbers is None else list(frame_numbers)
  identity = source_identity(source_path)
  os.makedirs(output_dir, exist_ok=True)
  faces = []
  for frame, number in zip(frames, numbers):
    name = f"frame_{number:06d}.png"
    path = os.path.join(output_dir, name)
    images.write_image(path, frame)
    if provenance is not None:
      provenance.sign(path, size=frame.shape[1::-1], ingredients=[source_path, driving_path])
    faces.append({"file": name, "source": os.path.abspath(driving_path), "frame": int(number),
                  "identity": identity, "generator": generator,
                  "animated_photo": os.path.abspath(source_path)})
  write_text_atomic(os.path.join(output_dir, face_folders.ALIGNMENTS_FILE),
                    json.dumps({"faces": faces}, indent=1))
  return len(faces)
