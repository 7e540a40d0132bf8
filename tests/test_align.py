"""Tests for deepjax.ops.align: Umeyama, mean face, crop, paste back."""
import numpy as np
import pytest

from deepjax.ops import align


def _similarity(scale, angle, tx, ty):
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty], [0, 0, 1.0]])


def test_umeyama_recovers_known_similarity():
  rng = np.random.default_rng(0)
  src = rng.normal(size=(30, 2)) * 50
  t = _similarity(1.7, 0.4, 12.0, -7.5)
  dst = src @ t[:2, :2].T + t[:2, 2]
  np.testing.assert_allclose(align.umeyama(src, dst), t, atol=1e-9)
  # Rigid only: scale stays 1 even though the data were scaled.
  r = align.umeyama(src, dst, estimate_scale=False)
  np.testing.assert_allclose(np.linalg.det(r[:2, :2]), 1.0, atol=1e-9)


def test_umeyama_never_reflects():
  rng = np.random.default_rng(1)
  src = rng.normal(size=(20, 2))
  dst = src * np.array([-1.0, 1.0])  # a mirror image: best proper rotation, no flip
  t = align.umeyama(src, dst)
  assert np.linalg.det(t[:2, :2]) > 0


def test_umeyama_jnp_matches_numpy():
  rng = np.random.default_rng(2)
  src = rng.normal(size=(3, 68, 2)).astype(np.float32) * 20
  dst = src + rng.normal(size=(3, 68, 2)).astype(np.float32)
  got = np.asarray(align.umeyama_jnp(src, dst))
  for i in range(3):
    np.testing.assert_allclose(got[i], align.umeyama(src[i], dst[i]), rtol=1e-4, atol=1e-3)


def test_mean_face_properties():
  m = align.MEAN_FACE_68
  assert m.shape == (68, 2)
  np.testing.assert_allclose(m[align.INNER].min(0), [0, 0], atol=1e-4)
  np.testing.assert_allclose(m[align.INNER].max(0), [1, 1], atol=1e-4)
  # Symmetric about x = 0.5 under the iBUG left/right pairing.
  np.testing.assert_allclose(m[align.MIRROR_68] * [-1, 1] + [1, 0], m, atol=2e-4)
  # Anatomy: eyes above the nose tip above the mouth above the chin.
  assert m[36:48, 1].max() < m[30, 1] < m[48:68, 1].min() < m[8, 1]


def test_derive_mean_face_is_gauge_fixed_point():
  rng = np.random.default_rng(3)
  faces = []
  for _ in range(12):
    t = _similarity(rng.uniform(50, 300), rng.uniform(-0.5, 0.5), *rng.uniform(0, 500, 2))
    faces.append(align.transform_points(t, align.MEAN_FACE_68)
                 + rng.normal(scale=0.01, size=(68, 2)))
  np.testing.assert_allclose(align.derive_mean_face(np.stack(faces)), align.MEAN_FACE_68,
                             atol=5e-3)


def test_alignment_matrix_places_template():
  t = _similarity(180.0, 0.3, 200.0, 150.0)
  lm = align.transform_points(t, align.MEAN_FACE_68)
  size = 128
  m = align.alignment_matrix(lm, size, coverage=1.0, centering="legacy")
  got = align.transform_points(m, lm)
  side = align.CENTERINGS["legacy"][2]
  expected = (align.MEAN_FACE_68 - 0.5) * size / side + size / 2 - 0.5
  np.testing.assert_allclose(got, expected, atol=1e-4)
  # coverage shrinks the window: the face gets bigger in the crop.
  m2 = align.alignment_matrix(lm, size, coverage=0.5, centering="legacy")
  np.testing.assert_allclose(np.linalg.det(m2[:, :2]), 4 * np.linalg.det(m[:, :2]))


def test_unit_pixel_conventions():
  np.testing.assert_allclose(align.pixels_to_unit([[-0.5, 63.5], [31.5, 31.5]], 64),
                             [[-1, 1], [0, 0]], atol=1e-7)
  p = np.random.default_rng(4).uniform(0, 63, (10, 2))
  np.testing.assert_allclose(align.unit_to_pixels(align.pixels_to_unit(p, 64), 64), p, atol=1e-5)


def test_crop_translation_and_rotation_match_slicing():
  img = np.random.default_rng(5).integers(0, 256, (40, 50, 3), dtype=np.uint8)
  m = np.array([[1.0, 0, -7], [0, 1.0, -5]])  # crop starts at frame pixel (7, 5)
  np.testing.assert_array_equal(align.crop(img, m, 16), img[5:21, 7:23])
  # 90-degree rotation about the crop: x' = y - 5, y' = 15 - (x - 7) -> np.rot90 of the window.
  r = np.array([[0.0, 1, -5], [-1, 0, 22]])
  np.testing.assert_array_equal(align.crop(img, r, 16), np.rot90(img[5:21, 7:23], 1))


def _smooth_frame(h=120, w=160):
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  return np.stack([0.5 + 0.4 * np.sin(x / 9), 0.5 + 0.4 * np.cos(y / 11),
                   0.5 + 0.3 * np.sin((x + y) / 13)], -1)


def test_paste_back_of_unchanged_crop_reproduces_frame():
  frame = _smooth_frame()
  t = _similarity(60.0, 0.2, 60.0, 30.0)
  lm = align.transform_points(t, align.MEAN_FACE_68)
  m = align.alignment_matrix(lm, 96, coverage=0.75)
  c = align.crop(frame, m, 96)
  out = align.paste_back(frame, c, m)
  # inside the face (inner landmarks' box) the frame comes back within bilinear error
  x0, y0 = lm[align.INNER].min(0).astype(int)
  x1, y1 = lm[align.INNER].max(0).astype(int)
  assert np.abs(out[y0:y1, x0:x1] - frame[y0:y1, x0:x1]).max() < 2e-3
  # outside the crop's footprint nothing changes
  fx0, fy0, fx1, fy1 = align.crop_footprint(m, 96, frame.shape[:2])
  untouched = np.ones(frame.shape[:2], bool)
  untouched[fy0:fy1, fx0:fx1] = False
  np.testing.assert_array_equal(out[untouched], frame[untouched])
  # a zero mask changes nothing at all
  np.testing.assert_array_equal(align.paste_back(frame, c, m, np.zeros((96, 96))), frame)


@pytest.mark.real_data
def test_paste_back_real_frame(shared_data):
  from deepjax.data import video
  from deepjax.faces import detect
  frame = video.read_image(f"{shared_data}/photos/tpsmm_source.png")
  face = detect.detect_faces(frame)[0]
  # a crop at least as fine as the frame (scale >= 1), so no detail is lost on the way
  m = align.alignment_matrix(face.landmarks, 100, coverage=0.75)
  size = int(np.ceil(100 / np.sqrt(np.linalg.det(m[:, :2]))))
  m = align.alignment_matrix(face.landmarks, size, coverage=0.75)
  out = align.paste_back(frame, align.crop(frame, m, size), m)
  x0, y0 = face.landmarks[align.INNER].min(0).astype(int)
  x1, y1 = face.landmarks[align.INNER].max(0).astype(int)
  err = np.abs(out[y0:y1, x0:x1].astype(float) - frame[y0:y1, x0:x1])
  assert err.mean() < 2.5 and np.percentile(err, 99) < 16  # two bilinear resamplings


def test_bad_arguments():
  lm = align.MEAN_FACE_68 * 100
  with pytest.raises(Exception, match="centering"):
    align.alignment_matrix(lm, 64, centering="nope")
  with pytest.raises(Exception, match="coverage"):
    align.alignment_matrix(lm, 64, coverage=1.5)
  with pytest.raises(ValueError):
    align.alignment_matrix(np.full((68, 2), np.nan), 64)


def test_crop_downscale_is_antialiased():
  yy, xx = np.mgrid[0:256, 0:256]
  board = (((yy + xx) % 2) * 255).astype(np.uint8)[..., None].repeat(3, -1)
  m = np.array([[0.25, 0, 0], [0, 0.25, 0]])  # 256 -> 64: a 1-px checkerboard averages to grey
  c = align.crop(board, m, 64).astype(float)
  assert abs(c[4:-4, 4:-4].mean() - 127.5) < 3 and c[4:-4, 4:-4].std() < 8
  aliased = align.crop(board, m, 64, antialias=False).astype(float)
  assert abs(aliased[4:-4, 4:-4].mean() - 127.5) > 60  # plain bilinear point-samples it


def test_crop_antialias_keeps_geometry():
  # a smooth frame shrunk 3x: antialiased and plain crops agree (same mapping, little detail)
  frame = (_smooth_frame(300, 300) * 255).astype(np.uint8)
  m = np.array([[1 / 3, 0.05, 4.0], [-0.05, 1 / 3, 2.0]])
  a = align.crop(frame, m, 80).astype(float)
  b = align.crop(frame, m, 80, antialias=False).astype(float)
  assert np.abs(a - b)[2:-2, 2:-2].mean() < 2.0
