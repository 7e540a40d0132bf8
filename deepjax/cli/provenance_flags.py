"""The provenance flags every generating program shares, and the `Provenance` they make.

--provenance=all|c2pa|watermark|none   which marks outputs carry (default all; other
                                       choices are logged)
--sign_cert, --sign_key                PEM certificate chain and private key for the C2PA
                                       signature (default $DEEPJAX_SIGN_CERT /
                                       $DEEPJAX_SIGN_KEY, else a local self-signed pair)
"""
import os

from absl import flags

from deepjax.provenance import MODES

_PROVENANCE = flags.DEFINE_enum(
    "provenance", "all", list(MODES), "Marks on every output: a signed C2PA manifest and an "
    "invisible watermark (all), one of them, or none (e.g. for a detector's training data).")
_SIGN_CERT = flags.DEFINE_string("sign_cert", None, "PEM certificate chain for the C2PA "
                                 "signature (default $DEEPJAX_SIGN_CERT, else a local "
                                 "self-signed certificate).")
_SIGN_KEY = flags.DEFINE_string("sign_key", None, "PEM private key of --sign_cert (default "
                                "$DEEPJAX_SIGN_KEY).")


def provenance_for(workdir: str, source_type: str, ingredients=()):
  """The `Provenance` of outputs made with the run in `workdir` from `ingredients`.

  Raises UserError (before any work) for a bad certificate or key.
  """
  from deepjax import loading  # pylint: disable=import-outside-toplevel
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  from deepjax.provenance import Provenance, credentials  # pylint: disable=import-outside-toplevel
  config = loading.read_config(workdir)
  cert = _SIGN_CERT.value or os.environ.get("DEEPJAX_SIGN_CERT")
  key = _SIGN_KEY.value or os.environ.get("DEEPJAX_SIGN_KEY")
  if _PROVENANCE.value in ("all", "c2pa") and (cert or key):
    try:
      credentials.load_signing_pair(cert, key)
    except UserError as e:
      raise UserError(f"{e} (--sign_cert, --sign_key)") from None
  return Provenance(source_type=source_type, model_family=str(config.get("task", "unknown")),
                    fingerprint=credentials.run_fingerprint(
                        loading.checkpoint_step_dir(workdir), config.to_dict()),
                    mode=_PROVENANCE.value, ingredients=list(ingredients),
                    cert_path=_SIGN_CERT.value, key_path=_SIGN_KEY.value)
