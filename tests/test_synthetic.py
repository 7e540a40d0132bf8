"""Tests of the procedural synthetic faces (deepjax.data.synthetic).

Renders are compiled per (size, chunk, windows); the fast tests share sizes 16 and 64 and
batches of 8 frames so that compiles are reused.
"""
import numpy as np
import pytest

from deepjax.data import synthetic as syn
from deepjax.data import synthetic_raster as raster
from deepjax.errors import UserError

N = 8
EYES = list(range(36, 48))
BROWS = list(range(17, 27))
MOUTH_OUTER = list(range(48, 60))


def _motion(**changes):
  """N neutral frames; frame k of each field set from `changes` {field: {k: value}}."""
  m = syn.neutral_motion(N)
  for field, frames in changes.items():
    for k, v in frames.items():
      m[field][k] = v
  return m


# Frames: 0 neutral, 1 shifted (+8 px, -4 px at 64), 2 rotated 90 degrees, 3 eyes closed,
# 4 mouth open, 5 yaw, 6 brows raised, 7 zoomed.
CRAFTED = _motion(tx={1: 0.25}, ty={1: -0.125}, rot={2: np.pi / 2}, blink={3: 1.0},
                  mouth_open={4: 1.0}, yaw={5: 0.4}, brow_raise={6: 1.0}, scale={7: 1.1})


@pytest.fixture(scope="module")
def people():
  """Two identities with clearly different skin, rendered at 64 px."""
  a, b = syn.sample_identity(0), syn.sample_identity(1)
  assert np.abs(a["skin"] - b["skin"]).sum() > 0.3  # precondition for the colour checks
  out = {"a": a, "b": b}
  out["a_img"], out["a_lm"] = syn.render(a, CRAFTED, 64)
  out["b_img"], out["b_lm"] = syn.render(b, CRAFTED, 64)
  return out


def _pixel(img, u):
  """Colour of the pixel containing image point u = (x, y) in [-1, 1]."""
  size = img.shape[0]
  j, i = np.clip(np.floor((np.asarray(u) + 1.0) * 0.5 * size).astype(int), 0, size - 1)
  return img[i, j]


def test_identity_sampling_deterministic_and_distinct():
  a1, a2, b = syn.sample_identity(7), syn.sample_identity(7), syn.sample_identity(8)
  assert a1.keys() == b.keys()
  for k in a1:
    assert a1[k].dtype == np.float32
    np.testing.assert_array_equal(a1[k], a2[k])
  assert any(not np.array_equal(a1[k], b[k]) for k in a1)
  many = syn.stack_identities([syn.sample_identity(s) for s in range(40)])
  assert many["skin"].shape == (40, 3) and many["face_w"].shape == (40,)
  # People differ in what a swap model sees: skin, hair, face shape, background.
  for k in ("skin", "hair", "bg_top"):
    assert many[k].std(axis=0).mean() > 0.08, k
  for k in ("face_w", "jaw_taper", "eye_w", "mouth_w", "hairline_y", "hair_len"):
    assert many[k].std() > 0.1 * (many[k].max() - many[k].min()), k


def test_motion_sampling():
  m1, m2 = syn.sample_motion(3, 500), syn.sample_motion(3, 500)
  for k in syn.MOTION_FIELDS:
    assert m1[k].shape == (500,) and m1[k].dtype == np.float32
    np.testing.assert_array_equal(m1[k], m2[k])
  assert not np.array_equal(m1["tx"], syn.sample_motion(4, 500)["tx"])
  assert np.abs(m1["tx"]).max() <= 0.16 and np.abs(m1["tx"]).max() > 0.12
  assert np.abs(m1["rot"]).max() <= np.pi / 12 + 1e-6
  assert m1["scale"].min() >= 0.9 and m1["scale"].max() <= 1.1
  assert np.abs(m1["yaw"]).max() <= 0.5 and np.abs(m1["yaw"]).max() > 0.4
  for k in ("blink", "mouth_open", "brow_raise"):
    assert m1[k].min() >= 0.0 and m1[k].max() <= 1.0 and m1[k].max() > 0.9, k
  neutral = syn.neutral_motion(3)
  assert neutral["scale"].tolist() == [1, 1, 1] and not neutral["blink"].any()


def test_motion_clip_is_smooth_talking_head():
  clip = syn.motion_clip(5, 250)  # 10 s at 25 fps
  again = syn.motion_clip(5, 250)
  indep = syn.sample_motion(5, 250)
  for k in ("tx", "ty", "rot", "scale", "yaw"):
    assert clip[k].shape == (250,) and clip[k].dtype == np.float32
    np.testing.assert_array_equal(clip[k], again[k])
    step = np.abs(np.diff(clip[k])).mean()
    assert step < 0.1 * np.abs(np.diff(indep[k])).mean(), k
  assert clip["blink"].max() > 0.9 and np.mean(clip["blink"] < 0.1) > 0.7  # blinks are brief
  assert clip["mouth_open"].max() > 0.3  # talking
  assert syn.motion_clip(5, 0)["tx"].shape == (0,)


def test_render_shapes_ranges_determinism(people):
  img, lm = people["a_img"], people["a_lm"]
  assert img.shape == (N, 64, 64, 3) and img.dtype == np.float32
  assert lm.shape == (N, 68, 2) and lm.dtype == np.float32
  assert np.isfinite(img).all() and img.min() >= 0.0 and img.max() <= 1.0
  assert np.isfinite(lm).all() and np.abs(lm).max() < 1.0
  img2, lm2 = syn.render(people["a"], CRAFTED, 64)
  np.testing.assert_array_equal(img, img2)
  np.testing.assert_array_equal(lm, lm2)
  # Different identities under the same motion: different pictures.
  assert np.abs(img - people["b_img"]).mean() > 0.05


def test_batched_identity_equals_broadcast(people):
  both = syn.stack_identities([people["a"], people["b"]] * (N // 2))
  img, lm = syn.render(both, CRAFTED, 64)
  np.testing.assert_allclose(img[0::2], people["a_img"][0::2], atol=1e-6)
  np.testing.assert_allclose(img[1::2], people["b_img"][1::2], atol=1e-6)
  np.testing.assert_allclose(lm[1::2], people["b_lm"][1::2], atol=1e-6)


def test_any_resolution_same_landmarks(people):
  for size in (16,):
    img, lm = syn.render(people["a"], CRAFTED, size)
    assert img.shape == (N, size, size, 3)
    # Landmarks are in [-1, 1] units: identical whatever the size.
    np.testing.assert_allclose(lm, people["a_lm"], atol=1e-6)
  assert np.allclose(syn.landmarks(people["a"], CRAFTED), people["a_lm"], atol=1e-6)


def test_pose_moves_landmarks_by_similarity(people):
  # u = t + scale * R(rot) u_neutral (rotation about the image centre).
  lm0 = people["a_lm"][0].astype(np.float64)
  np.testing.assert_allclose(people["a_lm"][1], lm0 + [0.25, -0.125], atol=1e-5)
  np.testing.assert_allclose(people["a_lm"][2], np.stack([-lm0[:, 1], lm0[:, 0]], -1), atol=1e-5)
  np.testing.assert_allclose(people["a_lm"][7], 1.1 * lm0, atol=1e-5)
  rng = np.random.default_rng(0)
  m = syn.neutral_motion(4)
  m.update(tx=rng.uniform(-.2, .2, 4), ty=rng.uniform(-.2, .2, 4), rot=rng.uniform(-1, 1, 4),
           scale=rng.uniform(.8, 1.2, 4))
  lm = syn.landmarks(people["a"], m)
  for k in range(4):
    c, s = np.cos(m["rot"][k]), np.sin(m["rot"][k])
    want = m["scale"][k] * lm0 @ np.array([[c, s], [-s, c]]) + [m["tx"][k], m["ty"][k]]
    np.testing.assert_allclose(lm[k], want, atol=1e-5)


def _face_box(lm, size, pad=1):
  """Pixel rows/cols of the inner face (brows, eyes, nose, mouth) bounding box."""
  px = (lm[17:] + 1.0) * 0.5 * size - 0.5
  lo, hi = np.floor(px.min(0)).astype(int) - pad, np.ceil(px.max(0)).astype(int) + pad
  return slice(lo[1], hi[1] + 1), slice(lo[0], hi[0] + 1)


def test_pose_moves_pixels(people):
  img = people["a_img"]
  rows, cols = _face_box(people["a_lm"][0], 64)
  # Shift by (+8, -4) pixels: the face pixels move exactly (the background does not).
  shifted = img[1][rows.start - 4:rows.stop - 4, cols.start + 8:cols.stop + 8]
  np.testing.assert_allclose(shifted, img[0][rows, cols], atol=2e-3)
  # 90 degrees about the centre: new[i, j] = old[S - 1 - j, i].
  rot = np.rot90(img[0], k=-1)
  rr, rc = _face_box(people["a_lm"][2], 64)
  np.testing.assert_allclose(img[2][rr, rc], rot[rr, rc], atol=2e-3)


def test_landmarks_lie_on_drawn_features(people):
  for who in ("a", "b"):
    img, lm, ident = people[who + "_img"][0], people[who + "_lm"][0], people[who]
    skin = ident["skin"]
    # Eye contour: lashes / white / iris, not skin.
    eye = np.array([_pixel(img, lm[k]) for k in EYES])
    assert np.abs(eye - skin).sum(-1).mean() > 0.3
    # Brows are drawn in the brow colour (blended with skin where thinner than a pixel).
    brow = np.array([_pixel(img, lm[k]) for k in BROWS])
    toward = ((brow - skin) * (ident["brow"] - skin)).sum(-1) / np.sum((ident["brow"] - skin)**2)
    assert np.mean(toward > 0.25) > 0.8, toward
    # The centre of the outer lip contour is on the lips (or the line between them).
    mouth = _pixel(img, lm[MOUTH_OUTER].mean(0))
    assert np.abs(mouth - skin).sum() > 0.15
    # Jaw points are on the face outline: along the ray from the nose through each point
    # there is a colour step at the point (within a pixel), and the face inside is smooth.
    for k in range(2, 15):
      d = (lm[k] - lm[30]) / np.linalg.norm(lm[k] - lm[30])
      col = lambda tk: _pixel(img, lm[k] + d * tk * 2.0 / img.shape[0])  # tk in pixels
      step = lambda m: np.abs(col(m + 1.0) - col(m - 1.0)).sum()
      at_point = max(step(m) for m in (-0.5, 0.0, 0.5))
      inside = max(step(m) for m in np.arange(-3.5, -1.99, 0.5))
      assert at_point > 0.1 and at_point > 1.5 * inside, (who, k, at_point, inside)


def test_swap_ground_truth_geometry_and_colour(people):
  motion = syn.sample_motion(11, N)
  ia, la = syn.render(people["a"], motion, 64)
  ib, lb = syn.render(people["b"], motion, 64)
  ca, cb = la.mean(1), lb.mean(1)
  # The pose follows the motion: centroids of A and B under one frame are much closer
  # than those of one person across frames.
  across = np.linalg.norm(ca[:, None] - ca[None], axis=-1).max()
  assert np.linalg.norm(ca - cb, axis=-1).max() < 0.25 * across
  # In-plane rotation of the eye line follows the motion for both people.
  for lm in (la, lb):
    d = lm[:, 45] - lm[:, 36]
    np.testing.assert_allclose(np.arctan2(d[:, 1], d[:, 0]), motion["rot"], atol=0.12)
  # Colours come from the identity: cheek pixels match B's skin, not A's.
  for k in range(N):
    cheek = _pixel(ib[k], 0.5 * (lb[k, 3] + lb[k, 30]))
    assert np.abs(cheek - people["b"]["skin"]).sum() < np.abs(cheek - people["a"]["skin"]).sum()
  assert np.abs(ia - ib).mean() > 0.05


def test_blink_closes_eyes(people):
  for who in ("a", "b"):
    lm, img = people[who + "_lm"], people[who + "_img"]
    opening = lambda f: (np.linalg.norm(lm[f, 37] - lm[f, 41]) + np.linalg.norm(
        lm[f, 38] - lm[f, 40]) + np.linalg.norm(lm[f, 43] - lm[f, 47]) + np.linalg.norm(
            lm[f, 44] - lm[f, 46]))
    assert opening(0) > 0.04 and opening(3) < 1e-5
    # Open eyes show white, iris and pupil; closed ones only skin and the lash line.
    px = (lm[0, EYES] + 1.0) * 32.0 - 0.5
    (c0, r0), (c1, r1) = np.floor(px.min(0)).astype(int) - 1, np.ceil(px.max(0)).astype(int) + 1
    skin = people[who]["skin"]
    unlike_skin = lambda f: (np.abs(img[f, r0:r1 + 1, c0:c1 + 1] - skin).sum(-1) > 0.4).sum()
    assert unlike_skin(0) >= unlike_skin(3) + 4, (unlike_skin(0), unlike_skin(3))


def test_mouth_open_shows_inside(people):
  for who in ("a", "b"):
    lm, img = people[who + "_lm"], people[who + "_img"]
    gap = lambda f: np.linalg.norm(lm[f, 66] - lm[f, 62])
    assert gap(0) < 1e-5 and gap(4) > 0.05
    assert lm[4, 8, 1] > lm[0, 8, 1] + 0.02  # the jaw drops
    inside = _pixel(img[4], 0.5 * (lm[4, 62] + lm[4, 66]))
    assert inside.sum() < 0.6  # dark mouth interior
    assert lm[6, 19, 1] < lm[0, 19, 1] - 0.02  # brow raise lifts the brows


def test_smile_lifts_and_widens_mouth(people):
  m = syn.neutral_motion(2)
  m["smile"][1] = 1.0
  lm = syn.landmarks(people["a"], m)
  corners_above = lambda f: 0.5 * (lm[f, 51, 1] + lm[f, 57, 1]) - 0.5 * (lm[f, 48, 1] +
                                                                        lm[f, 54, 1])
  assert corners_above(1) > corners_above(0) + 0.01
  assert lm[1, 54, 0] - lm[1, 48, 0] > lm[0, 54, 0] - lm[0, 48, 0]
  no_smile = {k: v for k, v in m.items() if k != "smile"}  # optional field, default 0
  np.testing.assert_array_equal(syn.landmarks(people["a"], no_smile)[0], lm[0])


def test_yaw_shifts_and_compresses(people):
  lm0, lm5 = people["a_lm"][0], people["a_lm"][5]  # yaw +0.4
  assert lm5[30, 0] - lm0[30, 0] > 0.05  # the nose tip moves towards the turn
  assert lm5[30, 0] - lm5[27, 0] > 0.01  # and further than the bridge (depth)
  width = lambda lm, a, b: lm[b, 0] - lm[a, 0]
  # Far (+x) side compressed, near side not: eye widths and the jaw half-widths.
  assert width(lm5, 42, 45) < width(lm5, 36, 39)
  assert lm5[16, 0] - lm5[8, 0] < lm5[8, 0] - lm5[0, 0]


@pytest.mark.slow
def test_other_resolutions(people):
  for size in (100, 256):
    img, lm = syn.render(people["a"], CRAFTED, size)
    assert img.shape == (N, size, size, 3) and np.isfinite(img).all()
    np.testing.assert_allclose(lm, people["a_lm"], atol=1e-6)
    # The picture is the same picture: box-downsampled to 64 it matches the 64 render
    # except near edges (a 256 -> 64 box filter is what the 64 render approximates).
    if size == 100:  # the feature windows hold everything drawn at this size too
      full, _ = syn._render_chunk(syn._check_identity(people["a"], N),
                                  syn._check_motion(CRAFTED)[0], size, (size,) * 4)
      np.testing.assert_allclose(img, np.asarray(full), atol=1e-6)
    if size == 256:
      box = img.reshape(N, 64, 4, 64, 4, 3).mean(axis=(2, 4))
      assert np.abs(box - people["a_img"]).mean() < 0.01


def test_antialiasing_matches_supersampling(people):
  small, _ = syn.render(people["a"], CRAFTED, 16)
  box = people["a_img"].reshape(N, 16, 4, 16, 4, 3).mean(axis=(2, 4))
  assert np.abs(small - box).mean() < 0.02
  # Edges are blended: on the jaw outline some pixels lie strictly between the colours
  # of both sides (a point-sampled renderer would give one or the other).
  img, lm = people["b_img"][0], people["b_lm"][0]
  px = (lm[:17] + 1.0) * 0.5 * 64 - 0.5
  between = 0
  for x, y in px[2:7]:
    i, j = int(round(y)), int(round(x))
    row = img[i, j - 3:j + 4].sum(-1)
    lo, hi = min(row[0], row[-1]), max(row[0], row[-1])
    between += np.sum((row > lo + 0.1 * (hi - lo)) & (row < hi - 0.1 * (hi - lo)))
  assert between >= 3


def test_windows_equal_full_frame_render():
  ident = syn.sample_identity(4)
  ident.update(glasses=np.float32(1.0), beard=np.float32(0.8), eye_w=np.float32(0.22))
  ident = syn._check_identity(ident, N)
  m = syn.sample_motion(2, N)
  m["tx"][:2], m["ty"][:2] = [0.95, -0.9], [0.9, -0.95]  # features cut by the image border
  extremes = dict(yaw=[0.5, -0.5], smile=[1.0, 0.0], mouth_open=[1.0, 1.0], blink=[0.0, 1.0],
                  rot=[0.26, -0.26], brow_raise=[1.0, 1.0], scale=[1.1, 0.9], gaze=[1.0, -1.0])
  for k, v in extremes.items():
    m[k][2:4] = v
  motion, _ = syn._check_motion(m)
  full, lm_full = syn._render_chunk(ident, motion, 16, (16, 16, 16, 16))
  img, lm = syn.render(ident, motion, 16)
  assert syn._window_sizes(ident, motion, 16) != (16, 16, 16, 16)
  np.testing.assert_allclose(img, np.asarray(full), atol=1e-6)
  np.testing.assert_allclose(lm, np.asarray(lm_full), atol=1e-6)


def test_bad_inputs():
  ident = syn.sample_identity(0)
  with pytest.raises(UserError):
    syn.render(ident, syn.neutral_motion(2), 0)
  with pytest.raises(UserError):
    syn.render(ident, {"tx": np.zeros(2)}, 32)
  with pytest.raises(UserError):
    syn.render(syn.stack_identities([ident] * 3), syn.neutral_motion(2), 32)
  with pytest.raises(UserError):
    syn.stack_identities([])
  with pytest.raises(UserError):
    syn.sample_identity(1.5)
  with pytest.raises(UserError):
    syn.render({k: v for k, v in ident.items() if k != "beard"}, syn.neutral_motion(2), 32)
  assert syn.sample_identity(-3)["skin"].shape == (3,)
  img, lm = syn.render(ident, syn.neutral_motion(0), 32)
  assert img.shape == (0, 32, 32, 3) and lm.shape == (0, 68, 2)
