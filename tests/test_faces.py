"""Tests for deepjax.faces: detection on real photos/clips, tracking, smoothing, masks, paste."""
import numpy as np
import pytest

from deepjax.errors import UserError
from deepjax.faces import detect, mask, paste, track
from deepjax.ops import align

# deepjax.data.video runs ffmpeg (fork + exec at once); JAX's fork warning is moot here.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork")

# Which shared photos hold a human face. Found by running the detector and looking:
# lp_s22 is a capuchin monkey (dlib's HOG fires on it with a weak score, the CNN
# re-check rejects it), lp_s23 a cartoon alpaca (nothing fires). lp_s7 is a cartoon
# *human* face and lp_s6 a terracotta statue: both count as faces.
NO_HUMAN_FACE = ("lp_s22.jpg", "lp_s23.jpg")
HUMAN = ("lp_s0.jpg", "lp_s1.jpg", "lp_s10.jpg", "lp_s11.jpg", "lp_s12.jpg", "lp_s3.jpg",
         "lp_s4.jpg", "lp_s5.jpg", "lp_s6.jpg", "lp_s7.jpg", "lp_s9.jpg", "tpsmm_source.png")


def _read(path):
  from deepjax.data import video
  return video.read_image(path)


def _residual(landmarks):
  """Mean distance (mean-face units) of the inner landmarks from the registered template."""
  t = align.umeyama(landmarks[align.INNER], align.MEAN_FACE_68[align.INNER])
  r = align.transform_points(t, landmarks[align.INNER]) - align.MEAN_FACE_68[align.INNER]
  return np.linalg.norm(r, axis=1).mean()


def test_as_rgb_uint8_conversions():
  grey = np.array([[0, 255], [10, 20]], np.uint8)
  np.testing.assert_array_equal(detect.as_rgb_uint8(grey)[..., 2], grey)
  rgba = np.zeros((2, 2, 4), np.uint8)
  rgba[..., 0] = 7
  assert detect.as_rgb_uint8(rgba).shape == (2, 2, 3) and detect.as_rgb_uint8(rgba)[0, 0, 0] == 7
  deep = np.full((2, 2, 3), 65535, np.uint16)
  assert detect.as_rgb_uint8(deep).max() == 255
  assert detect.as_rgb_uint8(np.full((2, 2, 3), 0.5, np.float32))[0, 0, 0] == 128
  with pytest.raises(UserError, match="too small"):
    detect.as_rgb_uint8(np.zeros((1, 1, 3), np.uint8))
  with pytest.raises(UserError, match="not an image"):
    detect.as_rgb_uint8(np.zeros((4, 4, 7), np.uint8))


@pytest.mark.real_data
def test_photos_human_faces_found_and_animals_rejected(shared_data):
  for name in HUMAN + NO_HUMAN_FACE:
    image = _read(f"{shared_data}/photos/{name}")
    faces = detect.detect_faces(image, "dlib", max_side=detect.IMAGE_MAX_SIDE, verify=True)
    if name in NO_HUMAN_FACE:
      assert faces == [], name
      continue
    assert len(faces) >= 1, name
    f = faces[0]
    assert f.landmarks.shape == (68, 2) and f.landmarks.dtype == np.float32
    # landmarks sit inside (or just around) the box and have a face's shape
    l, t, r, b = f.box
    w = r - l
    assert (f.landmarks[:, 0] > l - 0.3 * w).all() and (f.landmarks[:, 0] < r + 0.3 * w).all()
    assert _residual(f.landmarks) < 0.1, name


def _sampled_frames(path, every=10, limit=300):
  from deepjax.data import video
  for i, frame in enumerate(video.iter_video(path)):
    if i >= limit:
      return
    if i % every == 0:
      yield frame


def _detection_rate(path):
  det = detect.FrameDetector("dlib")
  found = [bool(det(f)) for f in _sampled_frames(path)]
  return sum(found) / len(found)


@pytest.mark.real_data
@pytest.mark.parametrize("clip", ["lp_d0", "lp_d12", "lp_d18"])
def test_detection_rate_talking_heads(shared_data, clip):
  assert _detection_rate(f"{shared_data}/videos/{clip}.mp4") >= 0.95


@pytest.mark.real_data
@pytest.mark.slow
def test_detection_rate_all_talking_heads(shared_data):
  import glob
  clips = sorted(glob.glob(f"{shared_data}/videos/lp_d*.mp4"))
  assert len(clips) >= 5
  for clip in clips:
    assert _detection_rate(clip) >= 0.95, clip


@pytest.mark.real_data
def test_huge_image_is_downscaled_for_detection(shared_data):
  # 8K noise with a real face pasted in: found at the right place (detected on a
  # downscaled copy, landmarks on the full-resolution image).
  face_img = _read(f"{shared_data}/photos/tpsmm_source.png")
  big = np.random.default_rng(0).integers(0, 256, (4320, 7680, 3), dtype=np.uint8)
  y0, x0 = 1800, 5000
  big[y0:y0 + face_img.shape[0], x0:x0 + face_img.shape[1]] = face_img
  ref = detect.detect_faces(face_img, max_side=detect.IMAGE_MAX_SIDE)[0]
  faces = detect.detect_faces(big, max_side=detect.IMAGE_MAX_SIDE, verify=True)
  assert len(faces) == 1
  np.testing.assert_allclose(faces[0].landmarks, ref.landmarks + [x0, y0], atol=12)


@pytest.mark.real_data
def test_embedding_same_person_close_different_far(shared_data):
  from deepjax.data import video
  frames, _, _ = video.read_video(f"{shared_data}/videos/lp_d0.mp4", max_frames=60)
  a, b = frames[0], frames[59]
  ea = detect.face_embedding(a, detect.detect_faces(a)[0])
  eb = detect.face_embedding(b, detect.detect_faces(b)[0])
  other = _read(f"{shared_data}/photos/lp_s3.jpg")  # a different man
  eo = detect.face_embedding(other, detect.detect_faces(other)[0])
  assert ea.shape == (128,) and ea.dtype == np.float32
  assert np.linalg.norm(ea - eb) < 0.6 < np.linalg.norm(ea - eo)


def test_backend_selection_never_downloads(monkeypatch, tmp_path):
  monkeypatch.setenv("TORCH_HOME", str(tmp_path))
  ok, why = detect.face_alignment_status()
  assert not ok and ("not installed" in why or "not found" in why)
  backend, why = detect.resolve_backend("auto")
  assert backend == "dlib" and "dlib" in why
  with pytest.raises(UserError, match="face_alignment"):
    detect.resolve_backend("face_alignment")
  with pytest.raises(UserError, match="unknown detector"):
    detect.resolve_backend("opencv")


def test_iou_and_main_face():
  assert track.iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
  assert track.iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
  lm = np.zeros((68, 2), np.float32)
  faces = [detect.Face(np.array(b, np.float32), lm) for b in
           ([0, 0, 100, 100], [450, 450, 540, 540], [10, 10, 20, 20])]
  # the big corner face loses to the slightly smaller central one
  assert track.main_face_index(faces, (1000, 1000)) == 1
  assert track.main_face_index([], (10, 10)) is None


def test_identity_tracker_follows_boxes_and_identities():
  lm = np.zeros((68, 2), np.float32)
  emb = {"A": np.zeros(128, np.float32), "B": np.full(128, 0.2, np.float32)}
  tr = track.IdentityTracker()

  def faces_at(xa, xb):
    fa = detect.Face(np.array([xa, 0, xa + 50, 50], np.float32), lm, 1.0)
    fb = detect.Face(np.array([xb, 0, xb + 50, 50], np.float32), lm, 1.0)
    fa.who, fb.who = "A", "B"
    return fa, fb
  embed = lambda f: emb[f.who]
  fa, fb = faces_at(0, 200)
  ids0 = tr.update(0, [fa, fb], embed)
  fa, fb = faces_at(5, 205)
  assert tr.update(1, [fb, fa], embed) == [ids0[1], ids0[0]]  # order swapped, ids follow boxes
  # after a cut both faces jump: no box overlap, the embeddings recover the identities
  fa, fb = faces_at(400, 600)
  assert tr.update(2, [fb, fa], embed) == [ids0[1], ids0[0]]
  # the two people trade places exactly: boxes overlap the wrong tracks, identity wins
  fa, fb = faces_at(600, 400)
  assert tr.update(3, [fa, fb], embed) == [ids0[0], ids0[1]]
  assert len(tr.tracks) == 2
  # without embeddings, boxes alone decide
  plain = track.IdentityTracker()
  fa, fb = faces_at(0, 200)
  first = plain.update(0, [fa, fb])
  fa, fb = faces_at(200, 0)
  assert plain.update(1, [fa, fb]) == [first[1], first[0]]


def test_smoothing():
  t = np.arange(20, dtype=np.float64)
  ramp = np.stack([t, 2 * t], -1)[:, None, :]  # (T, 1, 2)
  out = track.smooth_average(ramp, 5)
  np.testing.assert_allclose(out[2:-2], ramp[2:-2], atol=1e-5)  # linear motion kept
  noise = np.random.default_rng(0).normal(size=(4000, 1))
  assert track.smooth_average(noise, 9).std() < 0.45  # ~1/3 for 9 samples
  const = np.ones((30, 68, 2))
  np.testing.assert_allclose(track.smooth_euro(const, rate=25.0), const, atol=1e-6)
  step = np.concatenate([np.zeros(50), np.ones(50)])[:, None]
  out = track.smooth_euro(step, rate=25.0, min_cutoff=1.0)
  assert 0 < out[51, 0] < 1 and abs(out[-1, 0] - 1) < 1e-2  # smooth but converges


def test_fill_polygon_area_and_mask_ops():
  square = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], np.float64)
  m = mask.fill_polygon(square, (40, 40))
  assert abs(m.sum() - 400) < 15  # Pillow fills edge pixels too: ~1/4 px bias at 4x
  grown = mask.grow_mask(m, 3)
  shrunk = mask.grow_mask(m, -3)
  # a 20x20 square dilated by a disk of 3: 400 + 4*20*3 + pi*9 ; eroded: 14x14
  assert abs(grown.sum() - (400 + 240 + np.pi * 9)) < 25
  assert abs(shrunk.sum() - 196) < 20
  soft = mask.blur_mask(m, 2.0)
  assert 0 < soft[20, 10] < 1 and soft[20, 20] > 0.99


def test_landmark_mask_covers_face():
  lm = align.MEAN_FACE_68 * 60 + 30
  m = mask.landmark_mask(lm, (120, 120), forehead=0.3)
  nose = np.rint(lm[30]).astype(int)
  assert m[nose[1], nose[0]] == 1.0 and m[0, 0] == 0.0 and m[119, 119] == 0.0
  # the forehead push extends the mask above the brows
  brow_top = int(lm[17:27, 1].min())
  assert m[brow_top - 5, int(lm[27, 0])] > 0.5
  assert mask.landmark_mask(lm, (120, 120), forehead=0.0)[brow_top - 5, int(lm[27, 0])] == 0
  unit = align.pixels_to_unit(lm * 0.5, 60)
  assert mask.crop_mask(unit, 60).shape == (60, 60)


def test_paste_face_unchanged_crop_and_modes():
  y, x = np.mgrid[0:160, 0:200]
  frame = np.stack([x % 256, y, (x + y) % 256], -1).astype(np.uint8)
  lm = align.MEAN_FACE_68 * 60 + [70, 40]
  m = align.alignment_matrix(lm, 96, coverage=0.75)
  c = align.crop(frame, m, 96)
  unit = align.pixels_to_unit(align.transform_points(m, lm), 96)
  out = paste.paste_face(frame, c, m, unit, color_mode="none")
  inner = (slice(int(lm[:, 1].min()) + 5, int(lm[:, 1].max()) - 5),
           slice(int(lm[:, 0].min()) + 5, int(lm[:, 0].max()) - 5))
  assert np.abs(out[inner].astype(int) - frame[inner]).mean() < 1.5
  red = np.zeros_like(c)
  red[..., 0] = 255
  for color_mode in ("none", "mean_std", "histogram"):
    for blend in ("alpha", "seamless"):
      o = paste.paste_face(frame, red, m, unit, color_mode=color_mode, blend=blend)
      assert o.shape == frame.shape and o.dtype == np.uint8
      assert (o[0, -1] == frame[0, -1]).all()  # far corner untouched
  with pytest.raises(UserError):
    paste.paste_face(frame, c, m, unit, blend="nope")


def test_face_alignment_backend_plumbing(monkeypatch, tmp_path):
  """With a stand-in face_alignment module and weight files present, auto picks it."""
  import sys
  import types
  ckpt = tmp_path / "hub" / "checkpoints"
  ckpt.mkdir(parents=True)
  monkeypatch.setenv("TORCH_HOME", str(tmp_path))
  lm = (align.MEAN_FACE_68 * 50 + 20).astype(np.float32)

  class FakeFA:
    def __init__(self, kind, device, face_detector):
      assert device == "cpu" and face_detector == "sfd" and kind == "2d"

    def get_landmarks_from_image(self, image, return_bboxes=False):
      assert return_bboxes and image.dtype == np.uint8
      return [lm], None, [np.array([10, 10, 90, 90, 0.99])]
  fake = types.SimpleNamespace(FaceAlignment=FakeFA,
                               LandmarksType=types.SimpleNamespace(TWO_D="2d"))
  monkeypatch.setitem(sys.modules, "face_alignment", fake)
  assert not detect.face_alignment_status()[0]  # package there, weights not: never download
  assert detect.resolve_backend("auto")[0] == "dlib"
  (ckpt / "2DFAN4-cd938726ad.zip").write_bytes(b"x")
  (ckpt / "s3fd-619a316812.pth").write_bytes(b"x")
  assert detect.resolve_backend("auto")[0] == "face_alignment"
  detect._fa_model.cache_clear()  # pylint: disable=protected-access
  faces = detect.detect_faces(np.zeros((100, 100, 3), np.uint8), "face_alignment")
  detect._fa_model.cache_clear()  # pylint: disable=protected-access
  assert len(faces) == 1 and faces[0].score == pytest.approx(0.99)
  np.testing.assert_allclose(faces[0].landmarks, lm)
  np.testing.assert_allclose(faces[0].box, [10, 10, 90, 90])
