"""Choosing faces over time: main face, identity tracks, landmark smoothing.

* `main_face_index(faces, frame_hw)`: the largest face, discounted by distance
  from the frame centre (a big face at the edge loses to a slightly smaller
  central one).
* `IdentityTracker`: gives each face a track id that persists across frames: first
  by box overlap (IoU) with the tracks seen in the last `max_gap` frames, then —
  for faces no box matched (a cut, a jump, a face that re-appears) — by the dlib
  identity embedding (Euclidean distance below `max_distance`, 0.6 is dlib's
  same-person threshold). With an embedding function, box matches must agree
  with the identity too (one embedding per face per frame: tracking costs more).
* `smooth_average(seq, window)`: centred moving average of (T, ...) landmark
  sequences (edges use the available frames only).
* `OneEuroFilter`: the 1-euro filter (Casiez et al., CHI 2012): a low-pass whose
  cutoff rises with speed, so still faces stop jittering and moving faces do not
  lag.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from deepjax.faces.detect import Face


def iou(a: Sequence[float], b: Sequence[float]) -> float:
  """Intersection over union of two [l, t, r, b] boxes."""
  iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  inter = iw * ih
  union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
  return float(inter / union) if union > 0 else 0.0


def main_face_index(faces: Sequence[Face], frame_hw: tuple[int, int]) -> Optional[int]:
  """Index of the main face: area x (1 - 0.5 * distance to centre / half-diagonal)."""
  if not faces:
    return None
  h, w = frame_hw
  half_diag = 0.5 * np.hypot(w, h)

  def key(f):
    cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
    d = np.hypot(cx - w / 2, cy - h / 2) / half_diag
    return f.area * (1.0 - 0.5 * min(d, 1.0))
  return int(max(range(len(faces)), key=lambda i: key(faces[i])))


class IdentityTracker:
  """Assigns persistent integer track ids to faces frame by frame."""

  def __init__(self, min_iou: float = 0.3, max_distance: float = 0.6, max_gap: int = 30):
    self.min_iou = min_iou
    self.max_distance = max_distance
    self.max_gap = max_gap
    self.tracks: list[dict] = []  # {"id", "box", "frame", "embedding" (sum), "n"}

  def update(self, frame_index: int, faces: Sequence[Face],
             embed: Optional[Callable[[Face], np.ndarray]] = None) -> list[int]:
    """Track ids for `faces` (in order).

    `embed(face) -> (128,)`: with it, every face is embedded and a box match is
    only accepted when the identity agrees too (so two people who trade places at
    a cut keep their ids); without it, boxes alone decide.
    """
    ids: list[Optional[int]] = [None] * len(faces)
    embs = [embed(f) for f in faces] if embed is not None else [None] * len(faces)
    recent = [t for t in self.tracks if frame_index - t["frame"] <= self.max_gap]
    pairs = sorted(((iou(f.box, t["box"]), i, k) for i, f in enumerate(faces)
                    for k, t in enumerate(recent)), reverse=True)
    used = set()
    for score, i, k in pairs:
      if score < self.min_iou:
        break
      if ids[i] is None and k not in used and self._same(recent[k], embs[i]):
        ids[i] = recent[k]["id"]
        used.add(k)
        self._touch(recent[k], faces[i], frame_index, embs[i])
    taken = {recent[k]["id"] for k in used}
    for i, f in enumerate(faces):
      if ids[i] is not None:
        continue
      emb = embs[i]
      best, best_d = None, self.max_distance
      if emb is not None:
        for t in self.tracks:
          if t["id"] in taken or t["embedding"] is None:
            continue
          d = float(np.linalg.norm(t["embedding"] / t["n"] - emb))
          if d < best_d:
            best, best_d = t, d
      if best is None:
        best = {"id": len(self.tracks), "box": f.box, "frame": frame_index,
                "embedding": None, "n": 0}
        self.tracks.append(best)
      ids[i] = best["id"]
      taken.add(best["id"])
      self._touch(best, f, frame_index, emb)
    return [int(i) for i in ids]

  def _same(self, t, emb) -> bool:
    if emb is None or t["embedding"] is None:
      return True
    return float(np.linalg.norm(t["embedding"] / t["n"] - emb)) < self.max_distance

  @staticmethod
  def _touch(track, face, frame_index, emb):
    track["box"], track["frame"] = face.box, frame_index
    if emb is not None:  # running sum of the last ~50 embeddings (appearance drifts)
      if track["n"] >= 50:
        track["embedding"] = track["embedding"] * (49.0 / track["n"])
        track["n"] = 49
      track["embedding"] = emb if track["embedding"] is None else track["embedding"] + emb
      track["n"] += 1


def smooth_average(seq: np.ndarray, window: int) -> np.ndarray:
  """Centred moving average over the first axis of a (T, ...) array; window <= 1: copy."""
  seq = np.asarray(seq, np.float64)
  if window <= 1 or len(seq) < 2:
    return seq.astype(np.float32)
  half = window // 2
  csum = np.concatenate([np.zeros((1,) + seq.shape[1:]), np.cumsum(seq, 0)], 0)
  t = np.arange(len(seq))
  lo, hi = np.maximum(t - half, 0), np.minimum(t + window - half, len(seq))
  shape = (-1,) + (1,) * (seq.ndim - 1)
  return ((csum[hi] - csum[lo]) / (hi - lo).reshape(shape)).astype(np.float32)


class OneEuroFilter:
  """1-euro filter for arrays sampled at a fixed rate.

  Args:
    rate: samples per second (e.g. the video fps).
    min_cutoff: cutoff (Hz) when still; lower = smoother.
    beta: how fast the cutoff rises with speed; higher = less lag.
    d_cutoff: cutoff (Hz) for the speed estimate.
  """

  def __init__(self, rate: float, min_cutoff: float = 1.0, beta: float = 0.05,
               d_cutoff: float = 1.0):
    self.rate, self.min_cutoff, self.beta, self.d_cutoff = rate, min_cutoff, beta, d_cutoff
    self.x = None
    self.dx = None

  def _alpha(self, cutoff):
    tau = 1.0 / (2 * np.pi * cutoff)
    return 1.0 / (1.0 + tau * self.rate)

  def __call__(self, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if self.x is None:
      self.x, self.dx = x, np.zeros_like(x)
      return x.astype(np.float32)
    dx = (x - self.x) * self.rate
    a_d = self._alpha(self.d_cutoff)
    self.dx = a_d * dx + (1 - a_d) * self.dx
    a = self._alpha(self.min_cutoff + self.beta * np.abs(self.dx))
    self.x = a * x + (1 - a) * self.x
    return self.x.astype(np.float32)


def smooth_euro(seq: np.ndarray, rate: float, min_cutoff: float = 1.0,
                beta: float = 0.05) -> np.ndarray:
  """Runs a fresh `OneEuroFilter` over a (T, ...) sequence."""
  f = OneEuroFilter(rate, min_cutoff, beta)
  return np.stack([f(x) for x in np.asarray(seq)]) if len(seq) else np.asarray(seq, np.float32)
