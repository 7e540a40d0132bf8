"""Geometry of the synthetic faces, shared by the rasteriser and the landmarks.

Three coordinate systems (all float32, Y pointing down):

- face space (X, Y): the frontal, expression-posed face; the face outline has half-width
  `face_w` (~0.9) and the origin lies between the eyes and the mouth.
- turned space (X', Y): face space after the yaw approximation. The face surface is a
  vertical cylinder of radius Rc = RC_RATIO * face_w turned by `yaw` radians:
  X' = X cos(yaw) + sqrt(Rc^2 - X^2) sin(yaw). Points standing out of the surface (the
  nose) move by a further `depth * sin(yaw)`. Near-side features spread, far-side ones
  are compressed, the whole face shifts towards the turn.
- image space u in [-1, 1] (align_corners=False, see docs/CONTRACTS.md):
  u = (tx, ty) + S0 * scale * R(rot) (X', Y - Y_C).

Every function here works on one frame: identity and motion fields are scalars (colours
(3,)), so the rasteriser can `jax.vmap` over frames.
"""
import jax
import jax.numpy as jnp
import numpy as np

S0 = 0.5  # image units per face unit at scale 1
Y_C = 0.2  # face-space Y placed at the image centre (and the centre of rotation)
RC_RATIO = 1.22  # cylinder radius / face half-width
OPEN_H = 0.3  # mouth opening (face units) at mouth_open = 1
BROW_RAISE = 0.11  # brow lift (face units) at brow_raise = 1
SMILE_LIFT = 0.07  # mouth-corner lift (face units) at smile = 1
MAX_YAW = 0.9  # yaw is clipped to +-MAX_YAW radians

# Brow shape along its length, q = 0 (outer end) .. 1 (inner end), 5 landmark points.
_BROW_Q = np.linspace(0.0, 1.0, 5)
_BROW_ARCH = np.array([0.35, 0.85, 1.0, 0.85, 0.55])
_BROW_RADIUS = np.array([0.45, 0.75, 0.9, 1.0, 1.0])
# Nose: depth (in units of `nose_depth`) of points 27..35.
_NOSE_DEPTH = np.array([0.15, 0.35, 0.6, 0.9, 0.45, 0.65, 0.75, 0.65, 0.45])


def cyl_forward(x, rc, sin_yaw, cos_yaw):
  """Face-space X -> turned X' (any shape, same dtype)."""
  return x * cos_yaw + jnp.sqrt(jnp.maximum(rc * rc - x * x, 0.0)) * sin_yaw


def cyl_inverse(xp, rc, sin_yaw, cos_yaw):
  """Turned X' -> (face-space X, dX/dX') for the visible (front) side of the cylinder."""
  r2 = jnp.maximum(rc * rc - xp * xp, (0.08 * rc) ** 2)
  inv_root = jax.lax.rsqrt(r2)
  x = xp * cos_yaw - r2 * inv_root * sin_yaw
  jx = cos_yaw + xp * sin_yaw * inv_root
  # Where jx <= 0 the ray meets the back of the cylinder first: push X far outside the face
  # so that nothing drawn in face coordinates appears there a second time.
  x = jnp.where(jx > 0.0, x, jnp.sign(xp) * 3.0 * rc)
  return x, jnp.maximum(jx, 0.05)


def pose_forward(xp, y, motion):
  """Turned space (X', Y) -> image u (x, y). Arrays of any (equal) shape."""
  s = S0 * motion["scale"]
  c, sn = jnp.cos(motion["rot"]), jnp.sin(motion["rot"])
  yc = y - Y_C
  return (motion["tx"] + s * (c * xp - sn * yc), motion["ty"] + s * (sn * xp + c * yc))


def pose_inverse(ux, uy, motion):
  """Image u -> turned space (X', Y); inverse of `pose_forward`."""
  s = S0 * motion["scale"]
  c, sn = jnp.cos(motion["rot"]), jnp.sin(motion["rot"])
  dx, dy = ux - motion["tx"], uy - motion["ty"]
  inv = 1.0 / s
  return (c * dx + sn * dy) * inv, (-sn * dx + c * dy) * inv + Y_C


def derived(identity, motion):
  """Per-frame scalars of the posed face (dict of float32 scalars)."""
  mouth_open = jnp.maximum(motion["mouth_open"], 0.0)
  smile = motion["smile"]
  open_h = OPEN_H * mouth_open
  yaw = jnp.clip(motion["yaw"], -MAX_YAW, MAX_YAW)  # beyond this the cylinder folds over
  blink = jnp.clip(motion["blink"], 0.0, 1.0)
  eye_lo = identity["eye_h"] * 0.62
  # Lower lid rises a little when closing; the upper lid meets it at blink = 1.
  bot = eye_lo * (1.0 - 0.35 * blink)
  top = -identity["eye_h"] * (1.0 - blink) + bot * blink
  return dict(
      sin_yaw=jnp.sin(yaw), cos_yaw=jnp.cos(yaw),
      rc=RC_RATIO * identity["face_w"],
      face_hl=identity["face_hl"] + 0.85 * open_h,  # the jaw drops with the mouth
      eye_top=top, eye_bot=bot,
      mouth_w=identity["mouth_w"] * (1.0 - 0.12 * mouth_open + 0.1 * smile),
      mouth_in=0.88 * identity["mouth_w"] * (1.0 - 0.12 * mouth_open + 0.1 * smile),
      smile_lift=SMILE_LIFT * smile,
      open_up=0.22 * open_h, open_lo=0.78 * open_h,
      brow_lift=BROW_RAISE * motion["brow_raise"],
  )


def _jaw(identity, g):
  """17 points on the face outline (face space), image-left ear -> chin -> right ear."""
  theta0 = -0.3
  theta = theta0 + (np.pi / 2 - theta0) * np.arange(9) / 8.0
  theta = np.concatenate([theta, theta[7::-1]]).astype(np.float32)
  sign = np.concatenate([-np.ones(8), np.zeros(1), np.ones(8)]).astype(np.float32)
  sn = jnp.sin(theta)
  h = jnp.where(sn < 0, identity["face_hu"], g["face_hl"])
  w = identity["face_w"] * (1.0 - identity["jaw_taper"] * jnp.maximum(sn, 0.0) ** 2)
  return sign * w * jnp.cos(theta), h * sn


def brow_points(identity, g):
  """(x, y) of the 10 brow points 17..26 in face space, left-to-right in the image."""
  sep, ew = identity["eye_sep"], identity["eye_w"]
  x_out = sep + 1.2 * ew
  x_in = jnp.maximum(sep - 0.95 * ew, 0.1)
  q = jnp.asarray(_BROW_Q, jnp.float32)
  xm = x_out + (x_in - x_out) * q
  lift = g["brow_lift"] * (0.7 + 0.6 * q)  # the inner end rises more
  ym = (identity["brow_y"] - identity["brow_arch"] * jnp.asarray(_BROW_ARCH, jnp.float32)
        + identity["brow_tilt"] * (q - 0.5) - lift)
  x = jnp.concatenate([-xm, xm[::-1]])
  y = jnp.concatenate([ym, ym[::-1]])
  return x, y


def brow_radii(identity):
  """(10,) half-thickness of the brows at points 17..26."""
  r = identity["brow_th"] * jnp.asarray(_BROW_RADIUS, jnp.float32)
  return jnp.concatenate([r, r[::-1]])


def eye_frame(identity, side):
  """Centre (cx, cy) and rotation (cos, sin) of an eye; side -1 image-left, +1 right."""
  a = -side * identity["eye_tilt"]
  return side * identity["eye_sep"], identity["eye_y"], jnp.cos(a), jnp.sin(a)


def _eye(identity, g, side):
  """Points 36..41 (side -1) or 42..47 (side +1) in face space."""
  cx, cy, c, s = eye_frame(identity, side)
  ew = identity["eye_w"]
  t = np.array([-1.0, -1 / 3, 1 / 3, 1.0, 1 / 3, -1 / 3], np.float32)
  on_top = np.array([0, 1, 1, 0, 0, 0], np.float32)
  q = 1.0 - t * t
  ly = q * (on_top * g["eye_top"] + (1.0 - on_top) * g["eye_bot"])
  lx = t * ew
  return cx + lx * c - ly * s, cy + lx * s + ly * c


def mouth_curves(identity, g, x):
  """Inner-upper, inner-lower, outer-upper, outer-lower lip Y at face-space X.

  Also returns t_out = X / mouth_w and t_in = X / mouth_in (for the derivatives).
  """
  my = identity["mouth_y"]
  t_out = x / g["mouth_w"]
  t_in = x / g["mouth_in"]
  q_in = jnp.maximum(1.0 - t_in * t_in, 0.0)
  q_out = 1.0 - t_out * t_out
  bow = identity["lip_bow"] * jnp.maximum(1.0 - (t_out / 0.3) ** 2, 0.0) ** 2
  my = my - g["smile_lift"] * t_out * t_out  # smiling lifts the corners
  iu = my - g["open_up"] * q_in
  il = my + g["open_lo"] * q_in
  ou = iu - identity["lip_up"] * q_out * (1.0 - bow)
  ol = il + identity["lip_lo"] * q_out
  return iu, il, ou, ol


def _mouth(identity, g):
  """Points 48..67 in face space."""
  t_out = np.array([-1.0, -0.62, -0.3, 0.0, 0.3, 0.62, 1.0, 0.62, 0.3, 0.0, -0.3, -0.62],
                   np.float32)
  t_in = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 0.5, 0.0, -0.5], np.float32)
  xo = t_out * g["mouth_w"]
  xi = t_in * g["mouth_in"]
  _, _, ou, ol = mouth_curves(identity, g, xo)
  iu, il, _, _ = mouth_curves(identity, g, xi)
  top_o = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], np.float32)
  top_i = np.array([1, 1, 1, 1, 1, 0, 0, 0], np.float32)
  yo = top_o * ou + (1.0 - top_o) * ol
  yi = top_i * iu + (1.0 - top_i) * il
  return jnp.concatenate([xo, xi]), jnp.concatenate([yo, yi])


def _nose(identity):
  """Points 27..35 in face space (frontal) and their depth (for the yaw shift)."""
  ty, nw = identity["nose_tip_y"], identity["nose_w"]
  y27 = identity["eye_y"] + 0.02
  f = np.array([0.0, 1 / 3, 2 / 3, 1.0], np.float32)
  bx = np.array([-1.0, -0.5, 0.0, 0.5, 1.0], np.float32)
  by = np.array([0.06, 0.1, 0.12, 0.1, 0.06], np.float32)
  x = jnp.concatenate([jnp.zeros(4, jnp.float32), bx * nw])
  y = jnp.concatenate([y27 + (ty - y27) * f, ty + by])
  return x, y, identity["nose_depth"] * jnp.asarray(_NOSE_DEPTH, jnp.float32)


def turned_points(identity, motion, g):
  """All 68 points in turned space: (x' (68,), y (68,))."""
  jx, jy = _jaw(identity, g)
  bx, by = brow_points(identity, g)
  nx, ny, nd = _nose(identity)
  ex0, ey0 = _eye(identity, g, -1.0)
  ex1, ey1 = _eye(identity, g, 1.0)
  mx, my = _mouth(identity, g)
  x = jnp.concatenate([jx, bx, nx, ex0, ex1, mx])
  y = jnp.concatenate([jy, by, ny, ey0, ey1, my])
  depth = jnp.concatenate([jnp.zeros(27, jnp.float32), nd, jnp.zeros(32, jnp.float32)])
  xp = cyl_forward(x, g["rc"], g["sin_yaw"], g["cos_yaw"]) + depth * g["sin_yaw"]
  return xp, y


def landmarks_frame(identity, motion):
  """(68, 2) float32 landmarks in image space u for one frame."""
  g = derived(identity, motion)
  xp, y = turned_points(identity, motion, g)
  ux, uy = pose_forward(xp, y, motion)
  return jnp.stack([ux, uy], axis=-1)
