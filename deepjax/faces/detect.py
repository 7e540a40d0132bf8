"""Face detection, 68-point landmarks and identity embeddings on real images.

One interface, several backends:

* ``dlib`` (default, offline): dlib's HOG frontal-face detector, then dlib's
  68-point shape predictor (iBUG 300-W order) from the `face_recognition_models`
  package. Large images are downscaled before detection (HOG cost grows with the
  pixel count; faces in big images are big) and boxes are scaled back; small
  images are upsampled once so faces down to ~40 px are found.
* ``dlib_cnn``: dlib's MMOD CNN detector (same package; slower on CPU, finds
  profile-ish and small faces HOG misses). Landmarks as for ``dlib``.
* ``face_alignment``: the `face_alignment` package (S3FD + FAN), used only when
  the package *and* its weights are already on disk (torch hub cache). Nothing is
  ever downloaded: if the weights are absent, ``auto`` falls back to dlib with a
  log line saying why, and an explicit request raises `UserError`.

`detect_faces(image) -> list[Face]` with boxes and landmarks in frame pixels
(pixel-centre coordinates: pixel (0, 0) covers [-0.5, 0.5]^2).
`face_embedding(image, face) -> (128,) float32` is dlib's ResNet identity
embedding (Euclidean distance < 0.6 ~ same person).
"""
from __future__ import annotations

import dataclasses
import functools
import glob
import os

import numpy as np
from absl import logging

from deepjax.errors import UserError


BACKENDS = ("auto", "dlib", "dlib_cnn", "face_alignment")
# Detection runs on an image whose longer side is at most this (HOG's cost is per pixel).
DETECT_MAX_SIDE = 640
# Still images: detection sizes tried in turn until one finds a face (HOG misses some big
# faces that it finds after downscaling, and small faces in huge images need more pixels).
IMAGE_MAX_SIDE = (640, 1600)
# Below this longer side, HOG runs with one 2x upsampling (its window is 80 px).
UPSAMPLE_BELOW = 400
# HOG detections scoring below this are re-checked by the MMOD CNN when verifying.
VERIFY_BELOW = 0.8


@dataclasses.dataclass
class Face:
  """One detected face.

  Attributes:
    box: (4,) float32 [left, top, right, bottom] in frame pixels.
    landmarks: (68, 2) float32 (x, y) frame pixels, iBUG 300-W order.
    score: detector confidence (backend-specific scale; higher is better).
  """
  box: np.ndarray
  landmarks: np.ndarray
  score: float = 0.0

  @property
  def area(self) -> float:
    return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
  """Returns an (H, W, 3) uint8 C-contiguous view/copy of a grey/RGB/RGBA/16-bit image.

  Raises UserError for shapes that are not an image or images smaller than 2x2.
  """
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4):
    raise UserError(f"not an image: array of shape {image.shape}")
  if image.shape[0] < 2 or image.shape[1] < 2:
    raise UserError(f"image too small for face detection: {image.shape[1]}x{image.shape[0]}")
  if image.dtype == np.uint16:
    image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
  elif image.dtype in (np.float32, np.float64):
    image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
  elif image.dtype != np.uint8:
    image = np.clip(image, 0, 255).astype(np.uint8)
  c = image.shape[-1]
  if c in (1, 2):
    image = np.repeat(image[..., :1], 3, axis=-1)
  elif c == 4:
    image = image[..., :3]
  return np.ascontiguousarray(image)


def model_path(name: str) -> str:
  """Path of a model file shipped in the `face_recognition_models` package.

  The package is located without importing it: its `__init__` imports
  `pkg_resources`, which recent setuptools no longer ships.
  """
  import importlib.util  # pylint: disable=import-outside-toplevel
  spec = importlib.util.find_spec("face_recognition_models")
  if spec is None or not spec.submodule_search_locations:
    raise UserError("the dlib backend needs the face_recognition_models package (pip install "
                    "face_recognition_models)")
  path = os.path.join(list(spec.submodule_search_locations)[0], "models", name)
  if not os.path.isfile(path):
    raise UserError(f"face_recognition_models is missing {name} (expected at {path})")
  return path


@functools.lru_cache(maxsize=None)
def _dlib_models():
  """Loads (hog_detector, shape_predictor) once per process."""
  try:
    import dlib  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise UserError(f"the dlib backend needs dlib-bin: {e}") from e
  return (dlib.get_frontal_face_detector(),
          dlib.shape_predictor(model_path("shape_predictor_68_face_landmarks.dat")))


@functools.lru_cache(maxsize=None)
def _dlib_cnn():
  import dlib  # pylint: disable=import-outside-toplevel
  return dlib.cnn_face_detection_model_v1(model_path("mmod_human_face_detector.dat"))


@functools.lru_cache(maxsize=None)
def _dlib_encoder():
  import dlib  # pylint: disable=import-outside-toplevel
  return dlib.face_recognition_model_v1(model_path("dlib_face_recognition_resnet_model_v1.dat"))


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
  from PIL import Image  # pylint: disable=import-outside-toplevel
  h, w = image.shape[:2]
  size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
  return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def _landmarks(image: np.ndarray, box: np.ndarray) -> np.ndarray:
  import dlib  # pylint: disable=import-outside-toplevel
  _, predictor = _dlib_models()
  rect = dlib.rectangle(int(round(box[0])), int(round(box[1])),
                        int(round(box[2])), int(round(box[3])))
  shape = predictor(image, rect)
  return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


def _detect_dlib(image: np.ndarray, cnn: bool, max_side: int,
                 upsample: int | None = None) -> list[Face]:
  h, w = image.shape[:2]
  scale = min(1.0, max_side / max(h, w))
  small = _resize(image, scale) if scale < 1.0 else image
  retry = upsample is None
  if upsample is None:
    upsample = 1 if max(small.shape[:2]) < UPSAMPLE_BELOW else 0
  boxes, scores = [], []
  if cnn:
    for d in _dlib_cnn()(small, upsample):
      r = d.rect
      boxes.append([r.left(), r.top(), r.right(), r.bottom()])
      scores.append(d.confidence)
  else:
    hog, _ = _dlib_models()
    rects, confs, _ = hog.run(small, upsample, 0.0)
    if retry and not rects and upsample == 0 and max(small.shape[:2]) <= 2 * UPSAMPLE_BELOW:
      rects, confs, _ = hog.run(small, 1, 0.0)  # small faces: one more try, upsampled
    for r, s in zip(rects, confs):
      boxes.append([r.left(), r.top(), r.right(), r.bottom()])
      scores.append(s)
  faces = []
  for b, s in zip(boxes, scores):
    box = np.asarray(b, np.float32) / scale
    box = np.clip(box, [0, 0, 0, 0], [w - 1, h - 1, w - 1, h - 1]).astype(np.float32)
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
      continue
    faces.append(Face(box=box, landmarks=_landmarks(image, box), score=float(s)))
  return faces


def verify_face(image: np.ndarray, face: Face, crop_side: int = 200,
                min_confidence: float = 0.8) -> bool:
  """Second opinion from dlib's MMOD CNN on a window twice the box, shrunk to `crop_side`.

  HOG fires on some animal and cartoon faces (e.g. a monkey); the CNN is stricter.
  On the shared photos, human faces score 0.9-1.1 here and the monkey <= 0.7.
  Costs ~0.3 s on one CPU core, so it is meant for low-score HOG detections only.
  """
  image = as_rgb_uint8(image)
  h, w = image.shape[:2]
  l, t, r, b = face.box
  half = max(r - l, b - t)
  cx, cy = (l + r) / 2, (t + b) / 2
  x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
  x1, y1 = int(min(w, cx + half + 1)), int(min(h, cy + half + 1))
  window = np.ascontiguousarray(image[y0:y1, x0:x1])
  if min(window.shape[:2]) < 8:
    return False
  window = _resize(window, crop_side / max(window.shape[:2]))
  return any(d.confidence >= min_confidence for d in _dlib_cnn()(window, 0))


def torch_hub_checkpoints_dir() -> str:
  """Where torch hub (and so face_alignment) keeps downloaded weights."""
  home = os.environ.get("TORCH_HOME") or os.path.join(
      os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
  return os.path.join(home, "hub", "checkpoints")


def face_alignment_status() -> tuple[bool, str]:
  """(available, reason): is face_alignment importable with its weights already on disk?"""
  try:
    import face_alignment  # pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    return False, "the face_alignment package is not installed"
  ckpt = torch_hub_checkpoints_dir()
  fan = glob.glob(os.path.join(ckpt, "2DFAN4*"))
  sfd = glob.glob(os.path.join(ckpt, "s3fd*"))
  if not fan or not sfd:
    return False, (f"face_alignment weights (2DFAN4*, s3fd*) not found in {ckpt}; "
                   "they are never downloaded at run time")
  return True, f"face_alignment weights found in {ckpt}"


@functools.lru_cache(maxsize=None)
def _fa_model():
  import face_alignment  # pylint: disable=import-outside-toplevel
  kind = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D  # pylint: disable=protected-access
  return face_alignment.FaceAlignment(kind, device="cpu", face_detector="sfd")


def _detect_face_alignment(image: np.ndarray) -> list[Face]:
  out = _fa_model().get_landmarks_from_image(image, return_bboxes=True)
  landmarks, _, boxes = out if isinstance(out, tuple) else (out, None, None)
  faces = []
  for i, lm in enumerate(landmarks or []):
    lm = np.asarray(lm, np.float32)[:, :2]
    if boxes is not None and boxes[i] is not None:
      b = np.asarray(boxes[i], np.float32)
      box, score = b[:4], float(b[4]) if b.shape[0] > 4 else 1.0
    else:
      box, score = np.concatenate([lm.min(0), lm.max(0)]).astype(np.float32), 1.0
    faces.append(Face(box=box, landmarks=lm, score=score))
  return faces


def resolve_backend(name: str = "auto") -> tuple[str, str]:
  """Picks the backend to run: (backend, reason). Raises UserError for impossible requests."""
  if name not in BACKENDS:
    raise UserError(f"unknown detector {name!r}; choose one of {', '.join(BACKENDS)}")
  if name in ("dlib", "dlib_cnn"):
    return name, "requested"
  ok, why = face_alignment_status()
  if name == "face_alignment":
    if not ok:
      raise UserError(f"face detector 'face_alignment' unavailable: {why}")
    return name, why
  if ok:
    return "face_alignment", why
  return "dlib", f"auto: {why}; using dlib HOG + 68-point shape predictor"


def detect_faces(image: np.ndarray, backend: str = "dlib",
                 max_side: int | tuple[int, ...] = DETECT_MAX_SIDE,
                 verify: bool = False, upsample: int | None = None) -> list[Face]:
  """Finds faces and their 68 landmarks.

  Args:
    image: (H, W, 3) uint8 RGB (grey, RGBA and 16-bit are converted).
    backend: "dlib", "dlib_cnn", "face_alignment" or "auto" (see `resolve_backend`).
    max_side: detection runs on a copy downscaled to at most this longer side; a
      tuple gives sizes to try in turn until faces are found (dlib backends).
    verify: drop HOG detections scoring below VERIFY_BELOW that the CNN rejects.
    upsample: dlib's 2x upsampling count; None = 1 for images under UPSAMPLE_BELOW px
      (with a retry at 1 when 0 finds nothing in images up to twice that).
  Returns:
    Faces sorted by decreasing box area; boxes/landmarks in frame pixels.
  """
  image = as_rgb_uint8(image)
  if backend == "auto":
    backend, _ = resolve_backend("auto")
  if backend == "face_alignment":
    faces = _detect_face_alignment(image)
  elif backend in ("dlib", "dlib_cnn"):
    sides = (max_side,) if isinstance(max_side, int) else tuple(max_side)
    faces = []
    for k, side in enumerate(sides):
      if k > 0 and max(image.shape[:2]) <= sides[k - 1]:
        break  # the image was already detected at full size
      faces = _detect_dlib(image, backend == "dlib_cnn", side, upsample)
      if faces:
        break
    if verify and backend == "dlib":
      faces = [f for f in faces if f.score >= VERIFY_BELOW or verify_face(image, f)]
  else:
    raise UserError(f"unknown detector {backend!r}")
  return sorted(faces, key=lambda f: -f.area)


def landmarks_from_box(image: np.ndarray, box: np.ndarray) -> np.ndarray:
  """68 dlib landmarks (68, 2) float32 inside a given [l, t, r, b] box (no detection)."""
  return _landmarks(as_rgb_uint8(image), np.asarray(box, np.float32))


def face_embedding(image: np.ndarray, face: Face, jitter: int = 0) -> np.ndarray:
  """dlib ResNet identity embedding of one face.

  Args:
    image: (H, W, 3) uint8 RGB frame the face was found in.
    face: a `Face` (its 68 landmarks place dlib's 150x150 aligned chip).
    jitter: extra randomly jittered re-samplings averaged by dlib (slower, steadier).
  Returns:
    (128,) float32, unit-ish norm; distance < 0.6 usually means the same person.
  """
  import dlib  # pylint: disable=import-outside-toplevel
  image = as_rgb_uint8(image)
  b = face.box
  rect = dlib.rectangle(int(round(b[0])), int(round(b[1])), int(round(b[2])), int(round(b[3])))
  points = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks])
  shape = dlib.full_object_detection(rect, points)
  return np.asarray(_dlib_encoder().compute_face_descriptor(image, shape, jitter), np.float32)


class FrameDetector:
  """`detect_faces` for consecutive video frames, with two memories of the last frame.

  * Adaptive detection size: when the last frame's smallest face was S px, the next
    frame is detected on a copy downscaled so that face would be ~`target_face` px
    (HOG's window is 80 px; cost falls with the square of the scale); if nothing is
    found there, the frame is detected again at the normal size.
  * Verification (`verify=True`, dlib HOG only): a weak detection (score below
    VERIFY_BELOW) is re-checked by the CNN only when it does not overlap (IoU > 0.3)
    a face accepted in the previous frame.
  """

  def __init__(self, backend: str = "dlib", max_side: int | tuple[int, ...] = DETECT_MAX_SIDE,
               verify: bool = True, adaptive: bool = True, target_face: int = 110):
    self.backend, self.max_side, self.verify = backend, max_side, verify
    self.adaptive, self.target_face = adaptive, target_face
    self.previous: list[Face] = []

  def _iou(self, a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union if union > 0 else 0.0

  def __call__(self, image: np.ndarray) -> list[Face]:
    image = as_rgb_uint8(image)
    faces = None
    if self.adaptive and self.previous and self.backend in ("dlib", "dlib_cnn"):
      smallest = min(min(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in self.previous)
      side = int(max(image.shape[:2]) * self.target_face / max(smallest, 1.0))
      first = self.max_side if isinstance(self.max_side, int) else self.max_side[0]
      if 160 <= side < first:
        faces = detect_faces(image, self.backend, max_side=side, upsample=0) or None
    if faces is None:
      faces = detect_faces(image, self.backend, max_side=self.max_side)
    if self.verify and self.backend == "dlib":
      faces = [f for f in faces if f.score >= VERIFY_BELOW
               or any(self._iou(f.box, p.box) > 0.3 for p in self.previous)
               or verify_face(image, f)]
    self.previous = faces
    return faces
