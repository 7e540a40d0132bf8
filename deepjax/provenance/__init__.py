"""Provenance marks on generated files: a signed C2PA manifest and a pixel watermark.

- `watermark`: the invisible 32-bit mark (embed, detect_frames, detect_clip); its key-derived
  pieces are in `watermark_carrier`, reading it in `watermark_detect`, its channel code in
  `watermark_code`, array helpers in `watermark_ops`.
- `credentials`: signed C2PA manifests (sign_file, run_fingerprint, signing keys).
- `marking`: `Provenance`, what the generating programs call (mark frames, sign file).
- `verify`: `verify_file(path) -> dict`, what `deepjax verify` prints.
"""
from deepjax.provenance.marking import MODES, Provenance, mark_frames, payload_of

__all__ = ["MODES", "Provenance", "mark_frames", "payload_of"]
