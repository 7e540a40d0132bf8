"""Per-pixel rasteriser of one synthetic face frame (JAX, vmapped over frames).

Every part is an implicit shape (ellipse, capsule, lens between two curves, ...) whose
signed distance is evaluated at every pixel centre, in face units, normalised by the
gradient of the implicit function in turned space (so the yaw compression is taken into
account). Coverage is a box filter of one pixel across the edge (`_cover`, `_stroke`), and
the parts are composited in painter's order. See `synthetic_geometry` for the coordinates.
"""
import jax
import jax.numpy as jnp

from deepjax.data import synthetic_geometry as geo

_SCLERA = jnp.array([0.94, 0.92, 0.89], jnp.float32)
_PUPIL = jnp.array([0.04, 0.03, 0.03], jnp.float32)
_MOUTH_IN = jnp.array([0.22, 0.05, 0.07], jnp.float32)
_TEETH = jnp.array([0.93, 0.91, 0.85], jnp.float32)
_WHITE = jnp.array([1.0, 1.0, 1.0], jnp.float32)


def _rgb(c):
  """(3,) colour -> (1, 1, 3) for compositing over (H, W, 3)."""
  return c[None, None, :]


def _over(img, alpha, color):
  """Composites `color` ((3,) or (H, W, 3)) with coverage `alpha` (H, W) over `img`."""
  if color.ndim == 1:
    color = _rgb(color)
  return img + alpha[..., None] * (color - img)


def _cover(d, pf):
  """Coverage of the inside (d < 0) of an edge, box filter one pixel (pf face units) wide."""
  return jnp.clip(0.5 - d * (1.0 / pf), 0.0, 1.0)


def _stroke(dist, half_w, pf):
  """Coverage of a band |dist| < half_w: exact overlap of a one-pixel box with the band."""
  c = jnp.abs(dist) * (1.0 / pf)
  w = half_w / pf
  return jnp.clip(jnp.minimum(c + 0.5, w) - jnp.maximum(c - 0.5, -w), 0.0, 1.0)


def _soft(d, pf, width):
  """Like `_cover` but with a ramp of max(width, pf) face units (soft shading edges)."""
  return jnp.clip(0.5 - d * (1.0 / jnp.maximum(width, pf)), 0.0, 1.0)


def _ellipse(x, y, rx, ry):
  """Approximate signed distance to an axis-aligned ellipse centred at 0."""
  ix, iy = 1.0 / rx, 1.0 / ry
  k0 = jnp.sqrt((x * ix) ** 2 + (y * iy) ** 2)
  k1 = jnp.sqrt((x * (ix * ix)) ** 2 + (y * (iy * iy)) ** 2)
  return k0 * (k0 - 1.0) / jnp.maximum(k1, 1e-6)


def _circle_turned(x, y, r, jx):
  """Signed distance to a circle in feature coords, measured in turned space."""
  ln = jnp.maximum(jnp.sqrt(x * x + y * y), 1e-6)
  return (ln - r) / jnp.sqrt((x / ln * jx) ** 2 + (y / ln) ** 2)


def _segment(px, py, ax, ay, bx, by):
  """Distance to segment a-b and the position h in [0, 1] of the nearest point."""
  dx, dy = bx - ax, by - ay
  h = jnp.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy + 1e-12), 0.0, 1.0)
  ex, ey = px - ax - h * dx, py - ay - h * dy
  return jnp.sqrt(ex * ex + ey * ey), h


def _polyline(px, py, xs, ys, rs):
  """Signed distance to a tapered capsule chain through points xs, ys with radii rs."""
  d = None
  for k in range(len(xs) - 1):
    dist, h = _segment(px, py, xs[k], ys[k], xs[k + 1], ys[k + 1])
    dk = dist - (rs[k] + h * (rs[k + 1] - rs[k]))
    d = dk if d is None else jnp.minimum(d, dk)
  return d


def _below(f, dfdx, jx):
  """Signed distance (in turned units) for the implicit f(X, Y) = curve(X) - Y."""
  return f * jax.lax.rsqrt((dfdx * jx) ** 2 + 1.0)


def _lens_cover(top, dtop, bot, dbot, y, jx, pf):
  """Coverage of {top(X) < Y < bot(X)}: c_top + c_bot - 1 (exact for parallel edges),
  at most the band's thickness in pixels (0 where the curves cross, top > bot)."""
  r1 = jax.lax.rsqrt((dtop * jx) ** 2 + 1.0)  # 1 / |gradient|
  r2 = jax.lax.rsqrt((dbot * jx) ** 2 + 1.0)
  c1 = _cover((top - y) * r1, pf)
  c2 = _cover((y - bot) * r2, pf)
  thick = (bot - top) * jnp.minimum(r1, r2) * (1.0 / pf)
  return jnp.clip(jnp.minimum(c1 + c2 - 1.0, thick), 0.0, 1.0), top - y


def _face_outline(xf, y, jx, idn, g):
  """Signed distance to the face outline (turned units) and the normalised radius rho."""
  w0, hu, hl, taper = idn["face_w"], idn["face_hu"], g["face_hl"], idn["jaw_taper"]
  pos = y > 0
  ihl = 1.0 / hl
  yy = jnp.where(pos, jnp.minimum(y * ihl, 1.0), 0.0)
  w = w0 * (1.0 - taper * yy * yy)
  dw = jnp.where(pos & (y < hl), (-2.0 * w0 * taper * ihl * ihl) * y, 0.0)
  iw, ih = 1.0 / w, jnp.where(pos, ihl, 1.0 / hu)
  a, b = xf * iw, y * ih
  r2 = jnp.maximum(a * a + b * b, 1e-6)
  irho = jax.lax.rsqrt(r2)
  rho = r2 * irho
  gx = a * iw * irho
  gy = (-a * xf * dw * iw * iw + b * ih) * irho
  return (rho - 1.0) * jax.lax.rsqrt(jnp.maximum((gx * jx) ** 2 + gy * gy, 1e-12)), rho


def _eye(img, xf, y, jx, pf, idn, mot, g, side):
  """Eye `side` (-1 image-left, +1 image-right): white, iris, pupil, lashes, crease."""
  cx, cy, c, s = geo.eye_frame(idn, side)
  dx, dy = xf - cx, y - cy
  lx, ly = dx * c + dy * s, -dx * s + dy * c
  ew = idn["eye_w"]
  t = lx / ew
  q = 1.0 - t * t
  dq = -2.0 * t / ew
  top, bot = g["eye_top"] * q, g["eye_bot"] * q
  lens, f_top = _lens_cover(top, g["eye_top"] * dq, bot, g["eye_bot"] * dq, ly, jx, pf)
  img = _over(img, lens, _SCLERA)
  ir = idn["iris_r"]
  ix, iy = lx - mot["gaze"] * ew * 0.35, ly + 0.25 * idn["eye_h"]
  iris = _cover(_circle_turned(ix, iy, ir, jx), pf) * lens
  img = _over(img, iris, idn["iris"])
  img = _over(img, _cover(_circle_turned(ix, iy, 0.45 * ir, jx), pf) * lens, _PUPIL)
  glint = _cover(_circle_turned(ix + 0.35 * ir, iy + 0.35 * ir, 0.2 * ir, jx), pf) * lens
  img = _over(img, 0.8 * glint, _WHITE)
  ends = _cover(jnp.abs(lx) - ew * 1.04, pf)
  n_top = jnp.sqrt((g["eye_top"] * dq * jx) ** 2 + 1.0)
  lash = _stroke(f_top / n_top + 0.012, 0.02, pf) * ends
  img = _over(img, 0.9 * lash, idn["brow"] * 0.45)
  crease_y = (-idn["eye_h"] - 0.055) * q
  crease = _stroke(_below(crease_y - ly, -(idn["eye_h"] + 0.055) * dq, jx), 0.012, pf)
  return _over(img, 0.35 * crease * ends, idn["skin"] * 0.55)


def _mouth(img, xf, y, jx, pf, idn, g):
  """Lips, the open mouth (dark inside, teeth) and the line between the lips."""
  ones = jnp.ones_like(xf)
  (iu, il, ou, ol), (diu, dil, dou, dol) = jax.jvp(
      lambda x: geo.mouth_curves(idn, g, x), (xf,), (ones,))
  lips, _ = _lens_cover(ou, dou, ol, dol, y, jx, pf)
  lower = _cover(idn["mouth_y"] - y, pf)
  lip_col = _rgb(idn["lips"]) * (1.0 + 0.12 * lower[..., None])
  img = _over(img, lips, lip_col)
  inner, _ = _lens_cover(iu, diu, il, dil, y, jx, pf)
  img = _over(img, inner, _MOUTH_IN)
  teeth = inner * _cover(y - iu - 0.045, pf) * _cover(jnp.abs(xf) - 0.75 * g["mouth_in"], pf)
  img = _over(img, 0.9 * teeth, _TEETH)
  mid = 0.5 * (iu + il)
  line = _stroke(_below(mid - y, 0.5 * (diu + dil), jx), 0.011, pf)
  line = line * _cover(jnp.abs(xf) - g["mouth_in"], pf)
  img = _over(img, 0.8 * line, idn["lips"] * 0.45)
  # Moustache: a band above the upper lip, as dense as the beard.
  band, _ = _lens_cover(ou - 0.085, dou, ou - 0.008, dou, y, jx, pf)
  band = band * _cover(jnp.abs(xf) - 1.08 * g["mouth_w"], pf)
  return _over(img, idn["beard"] * band, idn["beard_rgb"])


def _nose(img, xt, y, xf, pf, idn, px, py):
  """Nose shading in turned space from its turned points px, py (27..35 at 0..8), and
  the bridge of the glasses (face coordinates xf, y)."""
  skin = idn["skin"]
  inner = idn["eye_sep"] - GLASSES_RX * idn["eye_w"]
  bridge_y = idn["eye_y"] + 0.01 - 0.35 * GLASSES_RY * idn["eye_w"] + 0.1 * xf * xf
  d_bridge = jnp.maximum(jnp.abs(y - bridge_y) - 0.022, jnp.abs(xf) - inner - 0.01)
  img = _over(img, idn["glasses"] * _cover(d_bridge, pf), idn["glasses_rgb"])
  side = jnp.sign(idn["light"]) + (idn["light"] == 0)
  bridge, _ = _segment(xt, y, px[0] + 0.06 * side, py[0] + 0.05, px[3] + 0.06 * side,
                       py[3] - 0.04)
  img = _over(img, 0.22 * _soft(bridge - 0.025, pf, 0.06), skin * 0.7)
  tip = _ellipse(xt - px[3], y - py[3] - 0.02, 0.65 * idn["nose_w"], 0.075)
  img = _over(img, 0.25 * _soft(tip, pf, 0.05), jnp.minimum(skin * 1.15, 1.0))
  base = _polyline(xt, y, px[4:9], py[4:9], [0.012] * 5)
  img = _over(img, 0.45 * _soft(base, pf, 0.02), skin * 0.55)
  for a, b in ((4, 5), (8, 7)):
    nx, ny = 0.45 * px[a] + 0.55 * px[b], 0.5 * (py[a] + py[b]) - 0.012
    nostril = _ellipse(xt - nx, y - ny, 0.3 * idn["nose_w"], 0.028)
    img = _over(img, 0.8 * _cover(nostril, pf), skin * 0.35)
  return img


GLASSES_RX, GLASSES_RY = 1.45, 1.0  # glasses rims around the eyes, in units of eye_w

# Landmark groups drawn in their own windows: (image-left eye + brow, right eye + brow,
# nose, mouth). Window sizes come from the host (`window_sizes`), positions from here.
WINDOW_GROUPS = (tuple(range(17, 22)) + tuple(range(36, 42)),
                 tuple(range(22, 27)) + tuple(range(42, 48)),
                 tuple(range(27, 36)), tuple(range(48, 68)))
# Extra reach of each group's drawing beyond its landmarks' bounding box (face units).
WINDOW_MARGINS = (0.25, 0.25, 0.16, 0.12)
# Group extent plus margins, face units, that covers all sampled identities and motions.
WINDOW_BOUNDS = (1.16, 1.16, 1.15, 1.12)


def _coords(ux, uy, mot, g):
  """Pixel centres u -> turned (xt, y) and face (xf, dX/dX') coordinates."""
  xt, y = geo.pose_inverse(ux, uy, mot)
  xf, jx = geo.cyl_inverse(xt, g["rc"], g["sin_yaw"], g["cos_yaw"])
  return xt, y, xf, jx


def _in_window(img, win, lx, ly, draw):
  """Applies draw(sub_image, ux, uy) to the win x win window of img around points (lx, ly).

  The window is centred on the points' bounding box and shifted to lie inside the image
  (the shift keeps every in-image pixel of the part inside the window).
  """
  size = img.shape[0]
  to_px = lambda v: (v + 1.0) * (0.5 * size) - 0.5
  starts = []
  for v in (ly, lx):
    c = 0.5 * (to_px(jnp.min(v)) + to_px(jnp.max(v)))
    starts.append(jnp.clip(jnp.round(c - 0.5 * (win - 1)), 0, size - win).astype(jnp.int32))
  y0, x0 = starts
  sub = jax.lax.dynamic_slice(img, (y0, x0, 0), (win, win, 3))
  j = jnp.arange(win, dtype=jnp.float32) + 0.5
  ux = (x0.astype(jnp.float32) + j) * (2.0 / size) - 1.0
  uy = (y0.astype(jnp.float32) + j) * (2.0 / size) - 1.0
  zeros = jnp.zeros((win, win), jnp.float32)
  sub = draw(sub, ux[None, :] + zeros, uy[:, None] + zeros)
  return jax.lax.dynamic_update_slice(img, sub, (y0, x0, 0))


def _background_and_head(ux, uy, pf, idn, mot, g):
  """Background, back hair, neck, clothes, ears, face and front hair: (H, W, 3)."""
  xt, y, xf, jx = _coords(ux, uy, mot, g)
  xh = xt - 0.25 * idn["face_w"] * g["sin_yaw"]  # head (hair, neck) moves less than the face
  w0 = idn["face_w"]

  # Background: two-colour gradient in a random direction, darker corners.
  tb = jnp.clip(0.5 + 0.5 * (ux * jnp.cos(idn["bg_angle"]) + uy * jnp.sin(idn["bg_angle"])),
                0.0, 1.0)
  img = _rgb(idn["bg_top"]) + tb[..., None] * _rgb(idn["bg_bottom"] - idn["bg_top"])
  img = img * (1.0 - 0.12 * (ux * ux + uy * uy))[..., None]
  # Back hair, neck, clothes, ears.
  crown_y = y + 0.45 * idn["face_hu"]
  crown_rx, crown_ry = w0 * idn["hair_w"], idn["face_hu"] * idn["hair_h"]
  crown = _ellipse(xh, crown_y, crown_rx, crown_ry)
  side_top, side_bot = -0.45 * idn["face_hu"], idn["hair_len"]
  by = jnp.maximum(0.5 * (side_bot - side_top), 0.0)
  qx = jnp.abs(xh) - (crown_rx * 0.94 - 0.3)
  qy = jnp.abs(y - 0.5 * (side_top + side_bot)) - by
  box = (jnp.sqrt(jnp.maximum(qx, 0.0) ** 2 + jnp.maximum(qy, 0.0) ** 2)
         + jnp.minimum(jnp.maximum(qx, qy), 0.0) - 0.3)
  hair_shade = 1.0 - 0.3 * jnp.clip((y + 0.5) / 2.0, 0.0, 1.0)
  if ux.shape[0] >= 96:
    # Strands: a texture whose amplitude fades out before its wavelength nears 4 pixels
    # (below 96 pixels it would be invisible at the sampled scales: skipped).
    amp = 0.07 * jnp.clip(2.0 * jnp.pi / 60.0 / (4.0 * pf) - 0.5, 0.0, 1.0)
    hair_shade = hair_shade * (1.0 + amp * jnp.sin(60.0 * xh + 9.0 * jnp.sin(2.0 * y)))
  hair_col = _rgb(idn["hair"]) * hair_shade[..., None]
  img = _over(img, _cover(jnp.minimum(crown, box), pf), hair_col * 0.8)
  neck = jnp.maximum(jnp.abs(xh) - idn["neck_w"], -y)
  neck_col = _rgb(idn["skin"]) * (0.55 + 0.25 * jnp.clip((y - 0.8) / 0.8, 0.0, 1.0))[..., None]
  img = _over(img, _cover(neck, pf), neck_col)
  clothes = _ellipse(xh, y - idn["face_hl"] - 1.35, 1.55 + 0.5 * idn["clothes_w"], 0.95)
  img = _over(img, _cover(clothes, pf), idn["clothes"])
  ear = _ellipse(jnp.abs(xf) - (w0 + 0.03), y - idn["eye_y"] - 0.2, 0.11 * idn["ear"],
                 0.22 * idn["ear"])  # both ears (mirror images) at once
  img = _over(img, _cover(ear * jax.lax.rsqrt(jx), pf), idn["skin"] * 0.85)

  # Face with edge darkening, side light and blush.
  d_face, rho = _face_outline(xf, y, jx, idn, g)
  shade = (1.0 - 0.17 * jnp.clip((rho - 0.4) / 0.6, 0.0, 1.0) ** 2) * (
      1.0 + 0.1 * idn["light"] * xf / w0)
  face_col = _rgb(idn["skin"]) * shade[..., None]
  cheek = _ellipse(jnp.abs(xf) - (idn["eye_sep"] + 0.08), y - idn["mouth_y"] + 0.28, 0.2, 0.13)
  face_col = _over(face_col, idn["blush"] * 0.35 * _soft(cheek, pf, 0.15), idn["lips"])
  img = _over(img, _cover(d_face, pf), face_col)
  # Beard: the face below a curve from the sideburns down to under the lower lip.
  top0 = idn["mouth_y"] + 0.1
  k = top0 - idn["nose_tip_y"] + 0.05
  r = jnp.minimum((xf / w0) ** 2, 1.0)
  beard_top = top0 - k * r * r
  d_beard = _below(beard_top - y, jnp.where(r < 1.0, -4.0 * k * r * xf / (w0 * w0), 0.0), jx)
  img = _over(img, idn["beard"] * _cover(jnp.maximum(d_face, d_beard), pf), idn["beard_rgb"])

  # Front hair: the crown above the hairline.
  hl_y = idn["hairline_y"] + idn["hairline_curv"] * xf * xf + idn["hair_part"] * xf
  d_hl = _below(y - hl_y, -(2.0 * idn["hairline_curv"] * xf + idn["hair_part"]), jx)
  img = _over(img, _cover(jnp.maximum(crown, d_hl), pf), hair_col)

  return img


def _eye_and_brow(img, ux, uy, pf, idn, mot, g, side, bx, by, br):
  """Brow (polyline through turned points bx, by with radii br), then the eye."""
  xt, y, xf, jx = _coords(ux, uy, mot, g)
  brow = _polyline(xt, y, bx, by, br)
  img = _over(img, 0.92 * _cover(brow, pf), idn["brow"])
  img = _eye(img, xf, y, jx, pf, idn, mot, g, side)
  ring = _ellipse(xf - side * idn["eye_sep"], y - idn["eye_y"] - 0.01,
                  GLASSES_RX * idn["eye_w"], GLASSES_RY * idn["eye_w"])
  return _over(img, idn["glasses"] * _stroke(ring, 0.025, pf), idn["glasses_rgb"])


def shade_frame(idn, mot, size, windows):
  """Renders one frame.

  Args: identity and motion fields of one frame (scalars, colours (3,)); size (static int);
  windows: static (4,) ints, the pixel sizes of the windows of WINDOW_GROUPS.
  Returns: image float32 (size, size, 3) in [0, 1], landmarks float32 (68, 2).
  """
  g = geo.derived(idn, mot)
  u = (jnp.arange(size, dtype=jnp.float32) + 0.5) * (2.0 / size) - 1.0
  zeros = jnp.zeros((size, size), jnp.float32)
  pf = 2.0 / size / (geo.S0 * mot["scale"])
  img = _background_and_head(u[None, :] + zeros, u[:, None] + zeros, pf, idn, mot, g)

  xp, yp = geo.turned_points(idn, mot, g)
  ux_l, uy_l = geo.pose_forward(xp, yp, mot)
  pts = lambda grp: (jnp.stack([ux_l[k] for k in grp]), jnp.stack([uy_l[k] for k in grp]))
  radii = geo.brow_radii(idn)
  for e, side in enumerate((-1.0, 1.0)):
    ks = range(17 + 5 * e, 22 + 5 * e)
    draw = (lambda sub, ux, uy, side=side, ks=ks: _eye_and_brow(
        sub, ux, uy, pf, idn, mot, g, side, [xp[k] for k in ks], [yp[k] for k in ks],
        [radii[k - 17] for k in ks]))
    img = _in_window(img, windows[e], *pts(WINDOW_GROUPS[e]), draw)
  def nose(sub, ux, uy):
    xt, y, xf, _ = _coords(ux, uy, mot, g)
    return _nose(sub, xt, y, xf, pf, idn, [xp[k] for k in range(27, 36)],
                 [yp[k] for k in range(27, 36)])
  img = _in_window(img, windows[2], *pts(WINDOW_GROUPS[2]), nose)
  def mouth(sub, ux, uy):
    _, y, xf, jx = _coords(ux, uy, mot, g)
    return _mouth(sub, xf, y, jx, pf, idn, g)

  img = _in_window(img, windows[3], *pts(WINDOW_GROUPS[3]), mouth)
  return jnp.clip(img, 0.0, 1.0), jnp.stack([ux_l, uy_l], axis=-1)
