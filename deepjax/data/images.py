"""Image input/output: uint8 RGB arrays in, uint8 RGB arrays out (videos: deepjax.data.video).

Images are read with Pillow and always come back as `uint8 (H, W, 3)` RGB:

- EXIF orientation is applied (the array is upright as a viewer shows it).
- Grayscale (`1`, `L`, `I;16`, `I`, `F`) is replicated to three channels.
- 16-bit data (`I;16*` modes, 16-bit PNG/TIFF) is scaled to 8 bits by `v / 257`
  (65535 -> 255); 32-bit integer `I` images are clipped to [0, 65535] first, float
  `F` images are taken as [0, 1] when their maximum is <= 1, else as [0, 255].
- Alpha (`RGBA`, `LA`, `PA`, palette with transparency) is composited on black:
  `rgb * alpha / 255`, so transparent pixels are black whatever colour they hide.
- Palette (`P`), `CMYK`, `YCbCr`, `LAB`, `HSV` are converted to RGB by Pillow.
- Multi-frame files (GIF, TIFF) give their first frame.

Missing, empty, unreadable and non-image files raise `UserError`.
"""
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepjax.errors import UserError
from deepjax.io_utils import atomic_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pbm", ".pnm", ".tga")


def check_file(path: str, what: str) -> None:
  if not os.path.exists(path):
    raise UserError(f"{what} not found: {path}")
  if not os.path.isfile(path):
    raise UserError(f"{what} is not a file: {path}")
  if os.path.getsize(path) == 0:
    raise UserError(f"{what} is empty (0 bytes): {path}")


def _to_rgb_uint8(img: Image.Image) -> np.ndarray:
  """Converts a loaded Pillow image of any mode to uint8 (H, W, 3) RGB."""
  mode = img.mode
  if mode == "P" or mode == "PA":
    img = img.convert("RGBA")
    mode = "RGBA"
  if mode in ("RGBA", "LA", "La", "RGBa"):
    if mode in ("La", "RGBa"):  # premultiplied alpha: already composited on black.
      return np.asarray(img.convert("RGB"), dtype=np.uint8)
    rgba = np.asarray(img.convert("RGBA"), dtype=np.uint16)
    rgb = (rgba[..., :3] * rgba[..., 3:4] + 127) // 255
    return rgb.astype(np.uint8)
  if mode.startswith("I;16") or mode == "I":
    v = np.asarray(img).astype(np.float64)
    v = np.clip(v, 0, 65535) / 257.0
    g = np.round(v).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)
  if mode == "F":
    v = np.asarray(img, dtype=np.float64)
    v = np.nan_to_num(v)
    if v.size and v.max() <= 1.0:
      v = v * 255.0
    g = np.round(np.clip(v, 0, 255)).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)
  if mode != "RGB":
    img = img.convert("RGB")
  return np.asarray(img, dtype=np.uint8)


def read_image(path: str) -> np.ndarray:
  """Reads an image file as RGB.

  Args:
    path: image file of any format Pillow reads (PNG, JPEG, BMP, TIFF, WebP, GIF...).

  Returns:
    uint8 array (H, W, 3), upright (EXIF orientation applied); see the module
    docstring for how grayscale, alpha, palette, 16-bit and CMYK images are mapped.

  Raises:
    UserError: the file is missing, empty, not an image, truncated/corrupt, or has
      zero width or height.
  """
  path = os.fspath(path)
  check_file(path, "image")
  try:
    with Image.open(path) as img:
      img.load()
      if img.width == 0 or img.height == 0:
        raise UserError(f"image has zero size ({img.width}x{img.height}): {path}")
      img = ImageOps.exif_transpose(img)
      arr = _to_rgb_uint8(img)
  except UserError:
    raise
  except UnidentifiedImageError:
    raise UserError(f"not an image file (unknown format): {path}") from None
  except Image.DecompressionBombError as e:
    raise UserError(f"image too large to read safely ({e}): {path}") from None
  except (OSError, SyntaxError, ValueError, EOFError) as e:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise UserError(f"unreadable image ({msg}): {path}") from None
  if arr.shape[0] == 0 or arr.shape[1] == 0:
    raise UserError(f"image has zero size: {path}")
  return np.ascontiguousarray(arr)


def write_image(path: str, image: np.ndarray, quality: int = 95) -> None:
  """Writes an image atomically (temporary file, then rename).

  Args:
    path: output file; the format comes from its extension (.png, .jpg, ...).
    image: uint8 (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grayscale.
    quality: JPEG/WebP quality (1-100); ignored by lossless formats.

  Raises:
    UserError: the extension names no image format Pillow can write.
    ValueError: `image` is not uint8 or has an unsupported shape.
  """
  path = os.fspath(path)
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f"write_image expects uint8, got {image.dtype}")
  if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4))):
    raise ValueError(f"write_image expects (H,W), (H,W,3) or (H,W,4), got {image.shape}")
  ext = os.path.splitext(path)[1].lower()
  fmt = Image.registered_extensions().get(ext)
  if fmt is None or fmt not in Image.SAVE:
    raise UserError(f"cannot write images with extension '{ext}': {path}")
  img = Image.fromarray(np.ascontiguousarray(image))
  kwargs = {}
  if fmt in ("JPEG", "WEBP"):
    kwargs["quality"] = int(quality)
    if img.mode == "RGBA":
      img = img.convert("RGB")
  with atomic_path(path) as tmp:
    img.save(tmp, format=fmt, **kwargs)


def list_images(folder: str) -> list[str]:
  """Image files directly inside `folder` (not recursive), sorted by name.

  Files are selected by extension (`IMAGE_EXTENSIONS`, any case); hidden files
  (leading '.', e.g. partial outputs) are skipped. An empty list is returned for a
  folder without images: the caller decides whether that is an error.

  Raises:
    UserError: `folder` does not exist or is not a folder.
  """
  folder = os.fspath(folder)
  if not os.path.exists(folder):
    raise UserError(f"folder not found: {folder}")
  if not os.path.isdir(folder):
    raise UserError(f"not a folder: {folder}")
  names = sorted(n for n in os.listdir(folder)
                 if not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
                 and os.path.isfile(os.path.join(folder, n)))
  return [os.path.join(folder, n) for n in names]
