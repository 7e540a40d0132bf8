"""Putting a new face crop back into its frame: mask, colour match, blend, warp back.

`paste_face(frame, new_crop, matrix, landmarks_unit)` is what a video swapper calls
per face with the record from `alignments.json` (`matrix`, `landmarks`):

1. the original crop is re-cut from the frame with the same matrix;
2. a landmark mask is drawn in crop space (hull + forehead, eroded, feathered);
3. the new crop's colours are matched to the original crop inside the mask
   (`color`: "none", "mean_std" (Lab), "histogram");
4. `blend`: "alpha" warps crop + feathered mask back and alpha-blends in the frame;
   "seamless" first solves a Poisson blend of the new crop into the original crop
   (in crop space, so it costs a size x size solve, not a frame-sized one), then
   pastes that with the feathered mask.
"""
from __future__ import annotations

import numpy as np

from deepjax.errors import UserError
from deepjax.faces import mask as mask_lib
from deepjax.ops import align, color

COLOR_MODES = ("none", "mean_std", "histogram")
BLEND_MODES = ("alpha", "seamless")


def paste_face(frame: np.ndarray, new_crop: np.ndarray, matrix: np.ndarray,
               landmarks_unit: np.ndarray | None = None, mask: np.ndarray | None = None,
               color_mode: str = "mean_std", blend: str = "alpha", forehead: float = 0.2,
               erode: float | None = None, feather: float | None = None) -> np.ndarray:
  """Returns the frame with `new_crop` pasted over the face `matrix` was made for.

  Args:
    frame: (H, W, 3) uint8 frame.
    new_crop: (S, S, 3) uint8 or float [0, 1] face in the aligned crop frame.
    matrix: (2, 3) frame->crop matrix (alignments.json "matrix").
    landmarks_unit: (68, 2) landmarks in the crop, [-1, 1]; used for the mask.
    mask: (S, S) float [0, 1] mask in crop space, instead of the landmark mask.
    color_mode: one of COLOR_MODES.
    blend: one of BLEND_MODES.
    forehead, erode, feather: landmark-mask shape (erode/feather default to
      S/32 and S/16 pixels).
  Returns:
    (H, W, 3) uint8.
  """
  if color_mode not in COLOR_MODES:
    raise UserError(f"unknown colour mode {color_mode!r}; choose one of {', '.join(COLOR_MODES)}")
  if blend not in BLEND_MODES:
    raise UserError(f"unknown blend {blend!r}; choose one of {', '.join(BLEND_MODES)}")
  frame = np.asarray(frame)
  size = new_crop.shape[0]
  erode = size / 32 if erode is None else erode
  feather = size / 16 if feather is None else feather
  new = new_crop.astype(np.float32) / 255.0 if new_crop.dtype == np.uint8 else new_crop
  original = align.crop(frame, matrix, size).astype(np.float32) / 255.0
  if mask is None:
    if landmarks_unit is None:
      raise ValueError("paste_face needs landmarks_unit or mask")
    hard = mask_lib.crop_mask(landmarks_unit, size, forehead, grow=-erode)
  else:
    hard = (np.asarray(mask, np.float32).reshape(size, size) > 0.5).astype(np.float32)
  if hard.sum() < 4:
    return frame.copy()
  if color_mode == "mean_std":
    new = color.match_mean_std_lab(new, original, hard)
  elif color_mode == "histogram":
    new = color.match_histogram(new, original, hard)
  if blend == "seamless":
    new = color.seamless_blend(new, original, hard)
  soft = mask_lib.blur_mask(hard, feather) if mask is None else np.asarray(mask, np.float32)
  return align.paste_back(frame, (new * 255.0).astype(np.float32), matrix, soft).astype(np.uint8)
