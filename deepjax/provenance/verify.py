"""Checks a file's provenance: its C2PA manifest and its pixel watermark.

`verify_file(path) -> dict` for images (png, jpg, ...) and videos (mp4, ...):
    {"path", "verdict": "marked" | "unmarked" | "tampered",
     "c2pa": {"present", "valid", "trusted", "state", "signed_by", "issuer", "digital_source_type",
              "run_fingerprint", "model_family", "watermark_payload", "failures"},
     "watermark": {"found", "payload", "z", "false_positive_rate", "frames_checked",
                   "frames_found", "scale", "frame_size", "too_small"}}
Verdict: "tampered" when a manifest is present but fails validation (the file changed
after signing), else "marked" when the manifest is valid or the watermark is found,
else "unmarked". A video's watermark is decided on the first `max_frames` frames
together (`watermark.detect_clip`); `frames_found` counts single frames that decode.
`false_positive_rate` bounds the chance that an unmarked input reads as found. `too_small`:
the frames ([height, width] `frame_size`) have a side under `watermark.min_readable_side`,
so no pixel mark can be read from them (only a manifest can mark such a file).
Unreadable input raises `UserError`.
"""
import os
from typing import Optional

import numpy as np

from deepjax.data import video as video_io
from deepjax.errors import UserError
from deepjax.provenance import credentials, watermark

__all__ = ["verify_file", "read_c2pa"]


def read_c2pa(path: str) -> dict:
  """The C2PA part of `verify_file`'s result."""
  import c2pa  # pylint: disable=import-outside-toplevel
  out = {"present": False, "valid": False, "state": None}
  mime = credentials.MIME_TYPES.get(os.path.splitext(path)[1].lower())
  if mime is None:
    return out
  try:
    with open(path, "rb") as f:
      reader = c2pa.Reader.try_create(mime, f)
      if reader is None:
        return out
      with reader:
        state = reader.get_validation_state()
        manifest = reader.get_active_manifest() or {}
        results = reader.get_validation_results() or {}
  except c2pa.C2paError as e:  # a manifest that cannot be parsed counts as present, invalid
    return {**out, "present": True, "state": "Unreadable", "failures": [str(e).splitlines()[0]]}
  failures = [r.get("code") for r in
              (results.get("activeManifest") or {}).get("failure", [])]
  # A certificate outside c2pa's trust list is reported as a failure, but the state
  # stays "Valid": the file is intact and signed, by a signer nobody vouched for.
  untrusted = "signingCredential.untrusted" in failures
  failures = [f for f in failures if f != "signingCredential.untrusted"]
  out.update(present=True, state=state, valid=state in ("Valid", "Trusted") and not failures,
             trusted=state == "Trusted" or (state == "Valid" and not untrusted),
             failures=failures)
  sig = manifest.get("signature_info") or {}
  out.update(signed_by=sig.get("common_name"), issuer=sig.get("issuer"))
  for a in manifest.get("assertions", []):
    if a.get("label", "").startswith("c2pa.actions"):
      for action in a.get("data", {}).get("actions", []):
        if "digitalSourceType" in action:
          out["digital_source_type"] = action["digitalSourceType"].rsplit("/", 1)[-1]
    elif a.get("label") == credentials.RUN_ASSERTION:
      data = a.get("data", {})
      out.update(run_fingerprint=data.get("run_fingerprint"),
                 model_family=data.get("model_family"),
                 watermark_payload=data.get("watermark_payload"),
                 generation_size=data.get("generation_size"))
  return out


def _frames(path: str, max_frames: int) -> np.ndarray:
  if path.lower().endswith(video_io.VIDEO_EXTENSIONS) and not path.lower().endswith(".gif"):
    return video_io.read_video(path, max_frames=max_frames)[0]
  if path.lower().endswith(video_io.IMAGE_EXTENSIONS):
    return video_io.read_image(path)[None]
  raise UserError(f"not an image or video file: {path}")


def _watermark(frames: np.ndarray, frame_checks: int,
               config: watermark.WatermarkConfig) -> dict:
  clip = watermark.detect_clip(frames, config)
  step = max(1, len(frames) // frame_checks)
  singles = watermark.detect_frames(frames[::step][:frame_checks], config)
  return {"found": bool(clip.found),
          "payload": None if clip.payload is None else f"{clip.payload:08x}",
          "z": round(clip.z, 2), "false_positive_rate": clip.false_positive_rate,
          "scale": clip.scale if clip.found else None,
          "frames_checked": len(singles), "frames_found": sum(d.found for d in singles),
          "frame_size": list(frames.shape[1:3]),
          "too_small": min(frames.shape[1:3]) < watermark.min_readable_side(config)}


def verify_file(path: str, max_frames: int = 32, frame_checks: int = 4,
                config: watermark.WatermarkConfig = watermark.WatermarkConfig()) -> dict:
  """-> the provenance report of one file (see the module docstring).

  Raises:
    UserError: missing, empty or undecodable file, or not an image/video.
  """
  path = os.fspath(path)
  video_io.check_file(path, "file")
  frames = _frames(path, max_frames)
  c2pa_result = read_c2pa(path)
  mark = _watermark(frames, frame_checks, config)
  if c2pa_result["present"] and not c2pa_result["valid"]:
    verdict = "tampered"
  elif c2pa_result["valid"] or mark["found"]:
    verdict = "marked"
  else:
    verdict = "unmarked"
  expected: Optional[str] = c2pa_result.get("watermark_payload")
  if expected and mark["found"]:
    mark["matches_manifest"] = mark["payload"] == expected
  return {"path": path, "verdict": verdict, "c2pa": c2pa_result, "watermark": mark}
