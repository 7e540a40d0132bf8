"""Procedural, anti-aliased synthetic faces with exact ground truth.

An *identity* (skin, hair, eyes, brows, nose, mouth, face shape, clothes, background) and a
per-frame *motion* (translation, in-plane rotation, scale, yaw, blink, mouth opening, brow
raise, gaze) are independent, so `render(identity_B, motion_of_A)` is the exact ground truth
of swapping face B into frame A, and of animating B with A's motion. Landmarks (68 points,
iBUG 300-W order, (x, y) in [-1, 1], align_corners=False) come from the same geometry as the
pixels.

    ident = sample_identity(3)
    motion = motion_clip(7, n_frames=50)
    images, landmarks = render(ident, motion, size=64)   # (50,64,64,3), (50,68,2) float32

Identity fields (float32): colours (3,) `skin hair brow beard_rgb lips iris clothes bg_top
bg_bottom glasses_rgb`; scalars for the face outline (`face_w face_hu face_hl jaw_taper`),
eyes (`eye_y eye_sep eye_w eye_h eye_tilt iris_r`), brows (`brow_y brow_arch brow_th
brow_tilt`), nose (`nose_tip_y nose_w nose_depth`), mouth (`mouth_y mouth_w lip_up lip_lo
lip_bow`), hair (`hair_w hair_h hair_len hairline_y hairline_curv hair_part`), `ear neck_w
clothes_w light blush beard glasses bg_angle`. Lengths are in face units (face half-width
~0.9; at scale 1 one face unit is a quarter of the image width).
Motion fields (float32 (n,)): `tx ty` (image units, [-1, 1] spans the image), `rot`
(radians, clockwise on screen), `scale`, `yaw` (radians, + turns features towards +x),
`blink mouth_open brow_raise` in [0, 1], and optional `gaze` (+-1, default 0) and `smile`
([0, 1], default 0). Yaw is clipped to
+-0.9, blink to [0, 1], mouth_open to >= 0; the other fields are used as given.

Rendering is one jitted, vmapped JAX function per (size, chunk of frames, window sizes);
the eyes, brows, nose and mouth are drawn in small per-frame windows (much faster than full
frames). Batch your frames: a call pads to at least 8 frames. The result depends only on the
inputs (deterministic). Sampling uses `np.random.default_rng(seed)`.
"""
import math

import jax
import numpy as np

from deepjax.data import synthetic_geometry as geo
from deepjax.data import synthetic_raster as raster
from deepjax.errors import UserError

MOTION_FIELDS = ("tx", "ty", "rot", "scale", "yaw", "blink", "mouth_open", "brow_raise",
                 "gaze", "smile")
_OPTIONAL_MOTION = {"gaze": 0.0, "smile": 0.0}
_PIXELS_PER_CHUNK = 1 << 20

_SKIN = np.array([[0.98, 0.85, 0.75], [0.94, 0.76, 0.63], [0.84, 0.63, 0.48],
                  [0.68, 0.47, 0.33], [0.48, 0.32, 0.21], [0.31, 0.2, 0.14]], np.float32)
_HAIR = np.array([[0.06, 0.05, 0.05], [0.18, 0.11, 0.07], [0.36, 0.23, 0.13],
                  [0.55, 0.4, 0.24], [0.85, 0.7, 0.42], [0.58, 0.24, 0.1],
                  [0.62, 0.62, 0.62], [0.92, 0.9, 0.85]], np.float32)
_HAIR_P = np.array([0.22, 0.22, 0.16, 0.12, 0.1, 0.07, 0.06, 0.05])
_IRIS = np.array([[0.33, 0.19, 0.09], [0.14, 0.09, 0.06], [0.3, 0.5, 0.75],
                  [0.35, 0.5, 0.3], [0.5, 0.55, 0.6], [0.5, 0.38, 0.18]], np.float32)


def _seed(seed) -> int:
  """Any Python/NumPy integer -> a non-negative int for np.random.default_rng."""
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
    raise UserError(f"seed must be an integer, got {seed!r}")
  return int(seed) % (1 << 63)


def _hsv(h, s, v):
  """HSV in [0, 1] -> RGB float32 (3,)."""
  i = int(h * 6.0) % 6
  f = h * 6.0 - math.floor(h * 6.0)
  p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
  return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i],
                  np.float32)


def sample_identity(seed: int) -> dict[str, np.ndarray]:
  """One random person: dict of float32 scalars (shape ()) and RGB colours (shape (3,))."""
  rng = np.random.default_rng([_seed(seed), 0x1D])
  u = lambda lo, hi: np.float32(rng.uniform(lo, hi))
  jitter = lambda c, a: np.clip(c + rng.uniform(-a, a, 3), 0.0, 1.0).astype(np.float32)
  ts = rng.uniform(0.0, len(_SKIN) - 1)
  k = min(int(ts), len(_SKIN) - 2)
  skin = jitter(_SKIN[k] + (ts - k) * (_SKIN[k + 1] - _SKIN[k]), 0.03)
  if rng.uniform() < 0.06:  # dyed hair
    hair = _hsv(rng.uniform(), rng.uniform(0.5, 0.9), rng.uniform(0.4, 0.9))
  else:
    hair = jitter(_HAIR[rng.choice(len(_HAIR), p=_HAIR_P)], 0.05)
  brow = (hair * rng.uniform(0.45, 0.8) + 0.06 * rng.uniform()).astype(np.float32)
  redness = rng.uniform(0.0, 1.0) ** 2
  lips = (skin * np.array([0.82, 0.55, 0.55]) * (1 - redness)
          + redness * np.array([0.72, 0.18, 0.25])).astype(np.float32)
  bg_h = rng.uniform()
  bg_top = _hsv(bg_h, rng.uniform(0.05, 0.6), rng.uniform(0.25, 0.95))
  bg_bottom = _hsv((bg_h + rng.uniform(-0.15, 0.15)) % 1.0, rng.uniform(0.05, 0.6),
                   rng.uniform(0.2, 0.9))
  face_w = u(0.8, 1.0)
  eye_h = u(0.075, 0.11)
  ident = dict(
      skin=skin, hair=hair, brow=brow, lips=lips,
      iris=jitter(_IRIS[rng.integers(len(_IRIS))], 0.05),
      clothes=_hsv(rng.uniform(), rng.uniform(0.1, 0.85), rng.uniform(0.15, 0.9)),
      bg_top=bg_top, bg_bottom=bg_bottom, bg_angle=u(0.0, 2 * np.pi),
      face_w=face_w, face_hu=u(1.15, 1.35), face_hl=u(1.15, 1.45), jaw_taper=u(0.1, 0.45),
      eye_y=u(-0.34, -0.22), eye_sep=u(0.34, 0.43), eye_w=u(0.17, 0.22), eye_h=eye_h,
      eye_tilt=u(-0.06, 0.14), iris_r=np.float32(eye_h * rng.uniform(0.85, 1.05)),
      brow_y=u(-0.55, -0.46), brow_arch=u(0.015, 0.08), brow_th=u(0.03, 0.065),
      brow_tilt=u(-0.06, 0.06),
      nose_tip_y=u(0.18, 0.34), nose_w=u(0.11, 0.17), nose_depth=u(0.25, 0.45),
      mouth_y=u(0.6, 0.74), mouth_w=u(0.27, 0.38), lip_up=u(0.035, 0.075),
      lip_lo=u(0.05, 0.1), lip_bow=u(0.0, 0.6),
      hair_w=u(1.1, 1.35), hair_h=u(0.85, 1.1), hair_len=u(-0.4, 2.0),
      hairline_y=u(-1.05, -0.62), hairline_curv=u(0.0, 0.4), hair_part=u(-0.25, 0.25),
      ear=u(0.8, 1.2), neck_w=np.float32(face_w * rng.uniform(0.45, 0.6)),
      clothes_w=u(0.0, 1.0), light=u(-1.0, 1.0), blush=u(0.0, 1.0),
      beard=np.float32(rng.uniform(0.3, 0.95) if rng.uniform() < 0.25 else 0.0),
      glasses=np.float32(rng.uniform() < 0.15),
      glasses_rgb=_hsv(rng.uniform(), rng.uniform(0.0, 0.8), rng.uniform(0.05, 0.6)),
  )
  ident["beard_rgb"] = (0.5 * hair + 0.4 * brow).astype(np.float32)
  if ident["beard"] > 0:  # bearded people: less blush, shorter hair more often
    ident["blush"] = np.float32(ident["blush"] * 0.3)
  # brow_y is relative to the eyes.
  ident["brow_y"] = np.float32(ident["eye_y"] + ident["brow_y"] + 0.3)
  return {key: np.asarray(v, np.float32) for key, v in ident.items()}


IDENTITY_FIELDS = tuple(sorted(sample_identity(0)))


def stack_identities(identities: list[dict]) -> dict[str, np.ndarray]:
  """List of n identities -> one dict whose fields have a leading axis n."""
  if not identities:
    raise UserError("stack_identities needs at least one identity")
  return {k: np.stack([np.asarray(d[k], np.float32) for d in identities])
          for k in identities[0]}


def neutral_motion(n: int) -> dict[str, np.ndarray]:
  """n frames of the frontal, neutral pose (eyes open, mouth closed), float32 (n,)."""
  m = {k: np.zeros(n, np.float32) for k in MOTION_FIELDS}
  m["scale"] = np.ones(n, np.float32)
  return m


def sample_motion(seed: int, n: int) -> dict[str, np.ndarray]:
  """n independent random frames: dict of float32 (n,) fields.

  Ranges: tx, ty +-0.16 (8 % of the size), rot +-15 degrees (radians), scale 0.9-1.1,
  yaw +-0.5, blink, mouth_open, brow_raise, smile in [0, 1] (eyes mostly open), gaze +-0.7.
  """
  rng = np.random.default_rng([_seed(seed), 0x30])
  f = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)
  closing = rng.uniform(size=n) < 0.3
  blink = np.where(closing, rng.uniform(0.3, 1.0, n), rng.uniform(0.0, 0.25, n))
  talking = rng.uniform(size=n) < 0.6
  mouth = np.where(talking, rng.uniform(0.0, 1.0, n), rng.uniform(0.0, 0.08, n))
  return dict(tx=f(-0.16, 0.16), ty=f(-0.16, 0.16), rot=f(-np.pi / 12, np.pi / 12),
              scale=f(0.9, 1.1), yaw=f(-0.5, 0.5), blink=blink.astype(np.float32),
              mouth_open=mouth.astype(np.float32), brow_raise=f(0.0, 1.0) ** 2,
              gaze=f(-0.7, 0.7), smile=f(0.0, 1.0) ** 2)


def _smooth_noise(rng, n, fps, lo_hz, hi_hz, k=4):
  """Sum of k random sinusoids, normalised to about [-1, 1], float64 (n,)."""
  t = np.arange(n) / fps
  freqs = rng.uniform(lo_hz, hi_hz, k)
  phases = rng.uniform(0, 2 * np.pi, k)
  amps = rng.uniform(0.5, 1.0, k)
  return (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])).sum(0) / (
      amps.sum() * 0.6)


def motion_clip(seed: int, n_frames: int, fps: float = 25.0) -> dict[str, np.ndarray]:
  """Smooth talking-head motion over n_frames at `fps`: dict of float32 (n_frames,) fields.

  Slow head drift and turns, blinks every 2-5 s lasting ~0.25 s, a mouth that opens and
  closes at syllable rate while speaking, occasional brow raises.
  """
  rng = np.random.default_rng([_seed(seed), 0xC1])
  n = int(n_frames)
  t = np.arange(n) / fps
  sn = lambda: np.clip(_smooth_noise(rng, n, fps, 0.05, 0.5), -1.0, 1.0)
  m = dict(tx=0.08 * rng.uniform(-1, 1) + 0.05 * sn(), ty=0.06 * rng.uniform(-1, 1) + 0.04 * sn(),
           rot=0.12 * rng.uniform(-1, 1) + 0.1 * sn(), scale=1.0 + 0.04 * rng.uniform(-1, 1)
           + 0.03 * sn(), yaw=0.2 * rng.uniform(-1, 1) + 0.25 * sn(),
           gaze=np.clip(0.3 * rng.uniform(-1, 1) + 0.4 * sn(), -1, 1))
  blink = np.zeros(n)
  start = rng.uniform(0.0, 3.0)
  while n and start < t[-1] + 1.0:
    dur = rng.uniform(0.18, 0.32)
    phase = np.clip((t - start) / dur, 0.0, 1.0)
    blink = np.maximum(blink, np.sin(np.pi * phase) ** 2)
    start += rng.uniform(2.0, 5.0)
  speaking = np.clip(2.0 * _smooth_noise(rng, n, fps, 0.1, 0.3) + 0.8, 0.0, 1.0)
  syll = np.abs(np.sin(2 * np.pi * rng.uniform(2.5, 4.0) * t + rng.uniform(0, 6)
                       + 1.5 * _smooth_noise(rng, n, fps, 0.5, 1.5)))
  m["mouth_open"] = np.clip(speaking * syll ** 1.5 * rng.uniform(0.6, 1.0), 0.0, 1.0)
  m["brow_raise"] = np.clip(0.5 * _smooth_noise(rng, n, fps, 0.1, 0.4) + 0.1, 0.0, 1.0) ** 1.5
  m["smile"] = np.clip(0.6 * _smooth_noise(rng, n, fps, 0.05, 0.3) + rng.uniform(-0.2, 0.3),
                       0.0, 1.0)
  m["blink"] = blink
  return {k: np.asarray(m[k], np.float32) for k in MOTION_FIELDS}


def _check_motion(motion):
  if not isinstance(motion, dict):
    raise UserError("motion must be a dict of (n,) arrays (see sample_motion)")
  missing = [k for k in MOTION_FIELDS if k not in motion and k not in _OPTIONAL_MOTION]
  if missing:
    raise UserError(f"motion is missing fields {missing}")
  first = np.asarray(motion["tx"])
  if first.ndim != 1:
    raise UserError(f"motion fields must have shape (n,), got {first.shape}")
  n = first.shape[0]
  out = {}
  for k in MOTION_FIELDS:
    v = np.asarray(motion.get(k, np.full(n, _OPTIONAL_MOTION.get(k, 0.0))), np.float32)
    if v.shape != (n,):
      raise UserError(f"motion field {k!r} has shape {v.shape}, expected ({n},)")
    out[k] = v
  return out, n


def _check_identity(identity, n):
  if not isinstance(identity, dict) or "face_w" not in identity:
    raise UserError("identity must be a dict from sample_identity or stack_identities")
  missing = sorted(set(IDENTITY_FIELDS) - set(identity))
  if missing:
    raise UserError(f"identity is missing fields {missing} (use sample_identity)")
  single = np.ndim(identity["face_w"]) == 0
  out = {}
  for k in IDENTITY_FIELDS:
    v = np.asarray(identity[k], np.float32)
    if single:
      v = np.broadcast_to(v, (n,) + v.shape)
    elif v.shape[:1] != (n,):
      raise UserError(f"batched identity field {k!r} has shape {v.shape}, expected ({n}, ...)")
    out[k] = v
  return out


def _frames(identity, motion, size, windows):
  return jax.vmap(lambda i, m: raster.shade_frame(i, m, size, windows))(identity, motion)


_render_chunk = jax.jit(_frames, static_argnums=(2, 3))
_landmarks_batch = jax.jit(jax.vmap(geo.landmarks_frame))


def _pad(tree, n, chunk, lo):
  """Slice [lo, lo + chunk) of every field, repeating the last frame past n."""
  idx = np.minimum(np.arange(lo, lo + chunk), n - 1)
  return {k: v[idx] for k, v in tree.items()}


def _window_sizes(identity, motion, size):
  """Static pixel sizes of the feature windows (raster.WINDOW_GROUPS) for these frames.

  Each window holds its group's landmark bounding box plus the drawing margin in every
  frame: the larger of a fixed bound that covers all `sample_identity` faces under
  `sample_motion` ranges (so the sizes, and the compiled renderer, usually depend on `size`
  alone) and the extent measured on these frames. Rounded up to a multiple of
  max(4, size // 16).
  """
  lm = _landmarks_padded(identity, motion)
  scale = np.maximum(np.abs(motion["scale"]), 1e-3)
  reach = geo.S0 * max(1.1, float(np.max(scale))) * 0.5 * size
  step = max(4, size // 16)
  sizes = []
  for group, margin, bound in zip(raster.WINDOW_GROUPS, raster.WINDOW_MARGINS,
                                  raster.WINDOW_BOUNDS):
    p = lm[:, list(group)]
    ext = np.max((p.max(axis=1) - p.min(axis=1)).max(axis=1) / (geo.S0 * scale))
    win = math.ceil(max(bound, float(ext) + 2.0 * margin) * reach + 3.0)
    sizes.append(min(size, step * math.ceil(win / step)))
  return tuple(sizes)


def render(identity: dict, motion: dict, size: int) -> tuple[np.ndarray, np.ndarray]:
  """Renders n frames of `identity` (one, broadcast, or batched with leading n) moving
  with `motion` (fields (n,)).

  Returns images float32 (n, size, size, 3) in [0, 1] and landmarks float32 (n, 68, 2),
  (x, y) in [-1, 1] (align_corners=False). Landmarks do not depend on `size`.
  """
  if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 8:
    raise UserError(f"render size must be an integer >= 8, got {size!r}")
  size = int(size)
  motion, n = _check_motion(motion)
  identity = _check_identity(identity, n)
  if n == 0:
    return np.zeros((0, size, size, 3), np.float32), np.zeros((0, 68, 2), np.float32)
  windows = _window_sizes(identity, motion, size)
  cap = max(1, _PIXELS_PER_CHUNK // (size * size))
  chunk = min(max(8, 1 << (n - 1).bit_length()), 1 << (cap.bit_length() - 1))
  images, marks = [], []
  for lo in range(0, n, chunk):
    img, lm = _render_chunk(_pad(identity, n, chunk, lo), _pad(motion, n, chunk, lo), size,
                            windows)
    images.append(np.asarray(img))
    marks.append(np.asarray(lm))
  return (np.concatenate(images)[:n], np.concatenate(marks)[:n])


def landmarks(identity: dict, motion: dict) -> np.ndarray:
  """The (n, 68, 2) float32 landmarks `render` would return, without drawing pixels."""
  motion, n = _check_motion(motion)
  identity = _check_identity(identity, n)
  if n == 0:
    return np.zeros((0, 68, 2), np.float32)
  return _landmarks_padded(identity, motion)


def _landmarks_padded(identity, motion):
  """Landmarks of checked inputs, computed in power-of-two chunks (few compiles)."""
  n = len(motion["tx"])
  chunk = min(max(8, 1 << (n - 1).bit_length()), 4096)
  out = [np.asarray(_landmarks_batch(_pad(identity, n, chunk, lo), _pad(motion, n, chunk, lo)))
         for lo in range(0, n, chunk)]
  return np.concatenate(out)[:n]
