"""Signed C2PA manifests (Content Credentials) on deepjax's output files.

`sign_file(path, ...)` embeds a manifest signed with ES256 into an mp4, png or jpg,
atomically (the signed copy is written to a temporary name, then renamed over `path`).
The manifest asserts:
- `c2pa.actions.v2`: `c2pa.created` by deepjax (name, version) with the IPTC
  digitalSourceType `trainedAlgorithmicMedia` (animation, sampling) or
  `compositeWithTrainedAlgorithmicMedia` (a swap pasted into real footage);
- `org.deepjax.run`: model family, the run fingerprint (of checkpoint and config; see
  `run_fingerprint`), the watermark payload, the SHA-256 of each ingredient (input
  video/photo) and the size the frames were generated at.

Signing keys: a certificate chain (PEM, signer first) and its private key (PEM), given
by the caller (programs map `--sign_cert`/`--sign_key` or `DEEPJAX_SIGN_CERT` /
`DEEPJAX_SIGN_KEY` onto them). Without them, `local_signing_pair()` makes once a local
CA and signer certificate under `$XDG_CONFIG_HOME/deepjax` (or `~/.config/deepjax`),
private keys mode 0600; such a signature proves integrity, not identity (logged).
A missing or unreadable certificate/key raises `UserError` before anything is written.
"""
import datetime
import hashlib
import json
import os
import shutil
from typing import Optional, Sequence

from absl import logging

import deepjax
from deepjax.errors import UserError
from deepjax.io_utils import atomic_path

__all__ = ["GENERATED", "COMPOSITE", "MIME_TYPES", "file_sha256", "run_fingerprint",
           "local_signing_pair", "load_signing_pair", "sign_file", "RUN_ASSERTION"]

_IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
GENERATED = "trainedAlgorithmicMedia"
COMPOSITE = "compositeWithTrainedAlgorithmicMedia"
RUN_ASSERTION = "org.deepjax.run"
MIME_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
              ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def file_sha256(path: str) -> str:
  """Hex SHA-256 of a file's bytes."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def run_fingerprint(checkpoint: Optional[str] = None, config: Optional[dict] = None) -> str:
  """Hex SHA-256 over a checkpoint folder's files (names, sizes, bytes) and a config.

  The first 8 hex digits (32 bits) are the watermark payload, so a marked frame leads
  back to the run folder whose fingerprint starts with them.
  """
  h = hashlib.sha256()
  if checkpoint:
    paths = [checkpoint] if os.path.isfile(checkpoint) else sorted(
        os.path.join(d, n) for d, _, names in os.walk(checkpoint) for n in names)
    for p in paths:
      h.update(os.path.relpath(p, checkpoint).encode() + b"\0")
      h.update(file_sha256(p).encode())
  if config is not None:
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
  return h.hexdigest()


# ----------------------------------------------------------------------------- keys


def _config_dir() -> str:
  base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
  return os.path.join(base, "deepjax")


def _write_private(path: str, data: bytes) -> None:
  with atomic_path(path) as tmp:
    fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.chmod(tmp, 0o600)


def local_signing_pair() -> tuple:
  """-> (cert_chain_path, key_path) of the local self-signed ES256 pair, made once."""
  folder = os.path.join(_config_dir(), "c2pa")
  cert_path, key_path = os.path.join(folder, "signer_chain.pem"), os.path.join(folder, "signer.key")
  exists = os.path.exists(cert_path) and os.path.exists(key_path)
  if not exists or not _has_key_identifiers(cert_path):
    os.makedirs(folder, mode=0o700, exist_ok=True)
    chain, key = _make_local_chain()
    _write_private(key_path, key)
    with atomic_path(cert_path) as tmp:
      with open(tmp, "wb") as f:
        f.write(chain)
    logging.warning("%s a local self-signed C2PA signing certificate in %s",
                    "remade (the previous one lacked the key identifiers C2PA validators "
                    "require)" if exists else "made", folder)
  logging.log_first_n(
      logging.WARNING, "C2PA manifests are signed with deepjax's local self-signed "
      "certificate: the signature proves the file is unchanged since signing (integrity), "
      "not who made it (identity); give a certificate to sign as yourself", 1)
  return cert_path, key_path


def _has_key_identifiers(cert_path: str) -> bool:
  """True when every certificate of a PEM chain has a Subject Key Identifier.

  RFC 5280 requires it on CA certificates, and C2PA validators that check the
  certificate profile (e.g. c2pa-ts) reject a chain without it; deepjax's local pairs
  made before it was added are remade.
  """
  from cryptography import x509  # pylint: disable=import-outside-toplevel
  try:
    with open(cert_path, "rb") as f:
      certs = x509.load_pem_x509_certificates(f.read())
    for cert in certs:
      cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
  except (OSError, ValueError, x509.ExtensionNotFound):
    return False
  return True


def _make_local_chain() -> tuple:
  """-> (PEM chain: signer cert then CA cert, PEM signer private key), ES256 (P-256)."""
  from cryptography import x509  # pylint: disable=import-outside-toplevel
  from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
  from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
  from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # pylint: disable=import-outside-toplevel

  now = datetime.datetime.now(datetime.timezone.utc)
  user = os.environ.get("USER", "user")

  def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "deepjax local")])

  ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
  ca = (x509.CertificateBuilder().subject_name(name(f"deepjax local CA ({user})"))
        .issuer_name(name(f"deepjax local CA ({user})")).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256()))
  leaf = (x509.CertificateBuilder().subject_name(name(f"deepjax local signer ({user})"))
          .issuer_name(ca.subject).public_key(key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                       False), critical=True)
          .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                         critical=False)
          .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                         critical=False)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
  pem = serialization.Encoding.PEM
  chain = leaf.public_bytes(pem) + ca.public_bytes(pem)
  key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
  return chain, key_pem


def load_signing_pair(cert_path: Optional[str] = None, key_path: Optional[str] = None) -> tuple:
  """-> (chain PEM bytes, key PEM bytes); the local pair when both paths are None.

  Raises:
    UserError: only one of the two given, or a file missing/unreadable/not PEM.
  """
  if cert_path is None and key_path is None:
    cert_path, key_path = local_signing_pair()
  elif cert_path is None or key_path is None:
    raise UserError("signing needs both a certificate chain and its private key")
  out = []
  for what, path in (("certificate", cert_path), ("private key", key_path)):
    try:
      with open(path, "rb") as f:
        data = f.read()
    except OSError as e:
      raise UserError(f"cannot read the signing {what} {path}: {e.strerror}") from None
    if b"-----BEGIN" not in data:
      raise UserError(f"the signing {what} {path} is not a PEM file")
    out.append(data)
  return tuple(out)


# ----------------------------------------------------------------------------- signing


def _manifest(path: str, source_type: str, model_family: str, fingerprint: str,
              payload: Optional[int], ingredients: Sequence[str], size) -> dict:
  agent = {"name": "deepjax", "version": deepjax.__version__}
  run = {"model_family": model_family, "run_fingerprint": fingerprint,
         "ingredients": [{"name": os.path.basename(p), "sha256": file_sha256(p)}
                         for p in ingredients]}
  if payload is not None:
    run["watermark_payload"] = f"{payload:08x}"
  if size is not None:
    run["generation_size"] = {"width": int(size[0]), "height": int(size[1])}
  return {
      "claim_generator_info": [agent],
      "title": os.path.basename(path),
      "assertions": [
          {"label": "c2pa.actions.v2",
           "data": {"actions": [{"action": "c2pa.created", "softwareAgent": agent,
                                 "digitalSourceType": _IPTC + source_type}]}},
          {"label": RUN_ASSERTION, "data": run},
      ],
  }


def sign_file(path: str, *, source_type: str, model_family: str, fingerprint: str,
              payload: Optional[int] = None, ingredients: Sequence[str] = (),
              size: Optional[tuple] = None, cert_path: Optional[str] = None,
              key_path: Optional[str] = None) -> None:
  """Embeds a signed C2PA manifest in `path` (mp4/mov/png/jpg) in place, atomically.

  Args:
    path: the generated file.
    source_type: `GENERATED` or `COMPOSITE`.
    model_family: e.g. "fomm", "autoencoder".
    fingerprint: `run_fingerprint(...)` of the checkpoint and config.
    payload: the 32-bit watermark payload the pixels carry, if marked.
    ingredients: input files (their SHA-256 is asserted).
    size: (width, height) the frames were generated at.
    cert_path, key_path: PEM certificate chain and private key; both None = local pair.

  Raises:
    UserError: bad certificate/key, an unsupported file type, or a signing failure.
  """
  import c2pa  # pylint: disable=import-outside-toplevel
  if source_type not in (GENERATED, COMPOSITE):
    raise ValueError(f"source_type must be {GENERATED} or {COMPOSITE}, got {source_type}")
  mime = MIME_TYPES.get(os.path.splitext(path)[1].lower())
  if mime is None:
    raise UserError(f"cannot sign {path}: only {', '.join(sorted(MIME_TYPES))} files")
  chain, key = load_signing_pair(cert_path, key_path)
  manifest = _manifest(path, source_type, model_family, fingerprint, payload, ingredients, size)
  try:
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain, key, None))
    with signer, c2pa.Builder(manifest) as builder, atomic_path(path) as tmp:
      with open(path, "rb") as src, open(tmp, "w+b") as dst:
        builder.sign(signer, mime, src, dst)
      shutil.copymode(path, tmp)
  except c2pa.C2paError as e:
    raise UserError(f"C2PA signing of {path} failed: {str(e).splitlines()[0]}") from None
