"""What the generating programs call: mark frames, then sign the written file.

    prov = Provenance(mode="all", source_type=credentials.COMPOSITE, model_family="fomm",
                      fingerprint=credentials.run_fingerprint(ckpt, config),
                      ingredients=[input_video])
    frames = prov.mark_frames(frames)        # uint8 (N, H, W, 3), batched, jit-ed
    write_video(out, frames, fps)
    prov.sign(out, size=(w, h))              # embeds the signed C2PA manifest, atomically

`mode`: "all" (both marks), "c2pa" (manifest only), "watermark" (pixels only) or
"none"; anything but "all" is logged. The watermark payload is the first 32 bits of the
run fingerprint. Certificate and key paths default to `DEEPJAX_SIGN_CERT` /
`DEEPJAX_SIGN_KEY`, then to the local self-signed pair (see `credentials`), which is made
(and its "integrity, not identity" note logged) at the first signature, so a run that
fails on its inputs writes and logs nothing about it.
"""
import dataclasses
import os
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np
from absl import logging

from deepjax.errors import UserError
from deepjax.provenance import credentials, watermark

__all__ = ["MODES", "Provenance", "mark_frames", "payload_of"]

MODES = ("all", "none", "c2pa", "watermark")


def payload_of(fingerprint: str) -> int:
  """The 32-bit watermark payload of a run fingerprint (its first 8 hex digits)."""
  try:
    return int(fingerprint[:8], 16)
  except ValueError:
    raise ValueError(f"fingerprint must be hex, got {fingerprint!r}") from None


def mark_frames(frames: np.ndarray, payload: int,
                config: watermark.WatermarkConfig = watermark.WatermarkConfig()) -> np.ndarray:
  """Watermarks uint8 frames (N, H, W, 3) or one image (H, W, 3); same shape out."""
  return watermark.embed(frames, payload, config)


@dataclasses.dataclass
class Provenance:
  """A program's provenance settings for one run (see the module docstring)."""
  source_type: str
  model_family: str
  fingerprint: str
  mode: str = "all"
  ingredients: Sequence[str] = ()
  cert_path: Optional[str] = None
  key_path: Optional[str] = None

  def __post_init__(self):
    if self.mode not in MODES:
      raise UserError(f"provenance must be one of {', '.join(MODES)}, got {self.mode!r}")
    if self.mode != "all":
      logging.warning("provenance=%s: %s", self.mode, {
          "none": "outputs carry neither a C2PA manifest nor a watermark",
          "c2pa": "outputs carry a C2PA manifest but no watermark",
          "watermark": "outputs carry a watermark but no C2PA manifest"}[self.mode])
    self.cert_path = self.cert_path or os.environ.get("DEEPJAX_SIGN_CERT") or None
    self.key_path = self.key_path or os.environ.get("DEEPJAX_SIGN_KEY") or None
    if self.signs and (self.cert_path or self.key_path):  # fail before any work is done
      credentials.load_signing_pair(self.cert_path, self.key_path)

  @property
  def signs(self) -> bool:
    return self.mode in ("all", "c2pa")

  @property
  def marks(self) -> bool:
    return self.mode in ("all", "watermark")

  @property
  def payload(self) -> int:
    return payload_of(self.fingerprint)

  def mark_frames(self, frames: np.ndarray) -> np.ndarray:
    """Watermarked frames (unchanged when the mode has no watermark)."""
    return mark_frames(frames, self.payload) if self.marks else frames

  def mark_stream(self, frames: Iterable[np.ndarray], batch: int = 16) -> Iterator[np.ndarray]:
    """Watermarks a stream of uint8 (H, W, 3) frames in batches; yields them one by one.

    Each batch's marking is dispatched before the previous batch is yielded, so it runs
    while the caller makes (and encodes) frames; a short last batch is padded with copies
    of its last frame to `batch` frames, so one compiled shape serves the whole stream.
    """
    if not self.marks:
      yield from frames
      return
    pending = None  # (device array of a marked batch, frames in it)

    def dispatch(chunk):
      n = len(chunk)
      chunk = chunk + [chunk[-1]] * (batch - n)
      return watermark.embed_async(np.stack(chunk), self.payload), n

    chunk = []
    for f in frames:
      chunk.append(f)
      if len(chunk) == batch:
        nxt = dispatch(chunk)
        chunk = []
        if pending is not None:
          yield from np.asarray(pending[0])[:pending[1]]
        pending = nxt
    if chunk:
      nxt = dispatch(chunk)
      if pending is not None:
        yield from np.asarray(pending[0])[:pending[1]]
      pending = nxt
    if pending is not None:
      yield from np.asarray(pending[0])[:pending[1]]

  def sign(self, path: str, size: Optional[tuple] = None,
           ingredients: Optional[Sequence[str]] = None) -> None:
    """Embeds the signed manifest in the written file `path` (nothing when not signing).

    `ingredients` (default: the object's) are the input files this output was made from.
    """
    if not self.signs:
      return
    credentials.sign_file(path, source_type=self.source_type,
                          model_family=self.model_family, fingerprint=self.fingerprint,
                          payload=self.payload if self.marks else None,
                          ingredients=self.ingredients if ingredients is None else ingredients,
                          size=size,
                          cert_path=self.cert_path, key_path=self.key_path)
