"""Square crops that follow a face over a clip, for face animation (first-order motion).

Like first-order-model's `crop-video.py`, the crop is one fixed square per clip
around where the face is over time, so the background does not swim: the main
face's boxes over the sampled frames are combined into a robust union (5th/95th
percentiles of the box edges, so a few bad detections do not blow it up), then
made square with side `scale` x the union's longer side (about head and
shoulders at the default 2.0 for dlib's tight eyebrow-to-chin boxes), centred on
the union moved up by `lift` x its height (to keep the hair), and shifted (or, if
needed, shrunk) to lie inside the frame. Frames are cut and resized with Pillow
(antialiased), and videos keep their audio.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from deepjax.errors import UserError


def animation_box(boxes: np.ndarray, frame_hw: tuple[int, int], scale: float = 2.0,
                  lift: float = 0.1) -> tuple[int, int, int, int]:
  """Square [l, t, r, b) (ints, exclusive ends) inside the frame around (N, 4) boxes."""
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  if len(boxes) == 0:
    raise UserError("no face to centre the animation crop on")
  h, w = frame_hw
  l, t = np.percentile(boxes[:, 0], 5), np.percentile(boxes[:, 1], 5)
  r, b = np.percentile(boxes[:, 2], 95), np.percentile(boxes[:, 3], 95)
  side = min(scale * max(r - l, b - t), w, h)
  side = int(max(2, round(side)))
  cx, cy = (l + r) / 2, (t + b) / 2 - lift * (b - t)
  x0 = int(round(np.clip(cx - side / 2, 0, w - side)))
  y0 = int(round(np.clip(cy - side / 2, 0, h - side)))
  return x0, y0, x0 + side, y0 + side


def crop_resize(frame: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
  """(H, W, 3) uint8 -> (size, size, 3) uint8 of the square `box`, antialiased."""
  img = Image.fromarray(np.ascontiguousarray(frame))
  return np.asarray(img.resize((size, size), Image.BICUBIC, box=tuple(float(v) for v in box)))


def crop_frames(frames: Iterable[np.ndarray], box, size: int) -> Iterator[np.ndarray]:
  """Lazily crops every frame of a clip to the same square."""
  for f in frames:
    yield crop_resize(f, box, size)
