"""The annotated copy of a scored file: every face boxed, coloured by its fake probability.

`deepjax detect --output=OUT` writes it. A box goes from green (probability 0, real) through
yellow to red (probability 1, fake), labelled with the probability; where the detector has a
mask head, its predicted manipulation mask is tinted red inside the face, warped back from
the crop with the crop's own alignment matrix. Video frames between two sampled frames
(`--every_n_frames`) keep the boxes of the last sampled one. The input's audio is kept.

The annotated copy is real footage with drawings on it, not generated media: it carries no
provenance mark (a watermark would make `deepjax verify` call real footage generated).
"""
import dataclasses
import os
from typing import Iterator, Optional

import numpy as np
from PIL import Image, ImageDraw

from deepjax.data import images, video
from deepjax.errors import UserError
from deepjax.ops import align

MASK_TINT = np.array([255, 0, 0], np.float32)
MASK_ALPHA = 0.45


@dataclasses.dataclass
class FaceMark:
  """One scored face of one frame.

  box: [left, top, right, bottom] in frame pixels; probability: fake probability in [0, 1];
  mask: optional float32 (S, S) predicted manipulation mask in crop space, [0, 1];
  matrix: (2, 3) frame->crop alignment matrix of that crop (needed with `mask`).
  """
  box: list
  probability: float
  mask: Optional[np.ndarray] = None
  matrix: Optional[np.ndarray] = None


def score_colour(p: float) -> tuple[int, int, int]:
  """RGB of a fake probability: green (0) -> yellow (0.5) -> red (1)."""
  p = float(np.clip(p, 0.0, 1.0))
  return (int(round(255 * min(1.0, 2 * p))), int(round(255 * min(1.0, 2 * (1 - p)))), 0)


def draw_marks(frame: np.ndarray, marks: list[FaceMark]) -> np.ndarray:
  """A copy of uint8 (H, W, 3) `frame` with each face's mask tint, box and label drawn."""
  out = np.asarray(frame, np.uint8)
  for m in marks:
    if m.mask is not None and m.matrix is not None:
      size = m.mask.shape[0]
      tint = np.ones((size, size, 1), np.float32) * MASK_TINT
      alpha = np.clip(m.mask, 0.0, 1.0) * MASK_ALPHA
      out = align.paste_back(out, tint, m.matrix, alpha)
  image = Image.fromarray(out)
  draw = ImageDraw.Draw(image)
  width = max(2, min(image.size) // 160)
  for m in marks:
    colour = score_colour(m.probability)
    left, top, right, bottom = (int(round(v)) for v in m.box)
    draw.rectangle((left, top, right, bottom), outline=colour, width=width)
    label = f"fake {m.probability:.2f}"
    tx, ty = left, max(0, top - 12 - width)
    text_box = draw.textbbox((tx, ty), label)
    draw.rectangle(text_box, fill=colour)
    draw.text((tx, ty), label, fill=(0, 0, 0))
  return np.asarray(image)


def _annotated_frames(path: str, marks_by_frame: dict[int, list[FaceMark]],
                      max_frames: Optional[int]) -> Iterator[np.ndarray]:
  current: list[FaceMark] = []
  for i, frame in enumerate(video.iter_video(path)):
    if max_frames is not None and i >= max_frames:
      return
    current = marks_by_frame.get(i, current)
    yield draw_marks(frame, current)


def write_annotated(path: str, kind: str, marks_by_frame: dict[int, list[FaceMark]],
                    output: str, max_frames: Optional[int] = None) -> int:
  """Writes the annotated copy of image or video `path` to `output` atomically.

  Args:
    path: the scored file; kind: "image" or "video" (`extract.classify`).
    marks_by_frame: {sampled frame index: [FaceMark]} (frames without faces may be absent:
      they keep the previous sampled frame's marks, none before the first).
    output: an image name for an image, an .mp4 name for a video.
    max_frames: the frames that were read (None = all).
  Returns: the number of frames written.
  """
  if kind == "image":
    images.write_image(output, draw_marks(video.read_image(path), marks_by_frame.get(0, [])))
    return 1
  fps = video.probe_video(path).fps
  return video.write_video(output, _annotated_frames(path, marks_by_frame, max_frames), fps,
                           audio_from=path)


def check_output(output: str, path: str, kind: str) -> str:
  """UserError unless `output` suits an annotated copy of `path` (a single `kind` file)."""
  ext = os.path.splitext(output)[1].lower()
  if kind == "video" and ext != ".mp4":
    raise UserError(f"the annotated copy of a video must be an .mp4: {output}")
  if kind == "image" and ext not in images.IMAGE_EXTENSIONS:
    raise UserError(f"the annotated copy of an image must end in one of "
                    f"{', '.join(sorted(images.IMAGE_EXTENSIONS))}: {output}")
  if os.path.isdir(output):
    raise UserError(f"the annotated copy's path is a folder: {output}")
  if os.path.exists(output) and os.path.samefile(output, path):
    raise UserError(f"the annotated copy would overwrite the input: {output}")
  parent = os.path.dirname(os.path.abspath(output))
  if not os.path.isdir(parent):
    raise UserError(f"the annotated copy's folder does not exist: {parent}")
  return output
