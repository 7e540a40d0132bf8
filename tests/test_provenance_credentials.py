"""deepjax.provenance.credentials: signed C2PA manifests, local keys, bad certificates."""
import os
import stat

import numpy as np
import pytest

from deepjax.data.video import write_image, write_video
from deepjax.errors import UserError
from deepjax.provenance import Provenance, credentials
from deepjax.provenance.verify import read_c2pa

FINGERPRINT = "0123456789abcdef" * 4


@pytest.fixture
def config_home(tmp_path, monkeypatch):
  home = tmp_path / "config"
  monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
  monkeypatch.delenv("DEEPJAX_SIGN_CERT", raising=False)
  monkeypatch.delenv("DEEPJAX_SIGN_KEY", raising=False)
  return home


@pytest.fixture
def video(tmp_path):
  path = str(tmp_path / "out" / "clip.mp4")
  frames = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
  write_video(path, frames, 25)
  return path


def _sign(path, **kw):
  credentials.sign_file(path, source_type=credentials.COMPOSITE, model_family="autoencoder",
                        fingerprint=FINGERPRINT, payload=0x01234567, size=(64, 64), **kw)


def test_signed_video_and_image_read_back_valid(config_home, video, tmp_path):
  image = str(tmp_path / "out" / "face.png")
  write_image(image, np.zeros((32, 32, 3), np.uint8))
  _sign(video, ingredients=[image])
  c2pa_result = read_c2pa(video)
  assert c2pa_result["present"] and c2pa_result["valid"] and c2pa_result["state"] == "Valid"
  assert c2pa_result["digital_source_type"] == credentials.COMPOSITE
  assert c2pa_result["run_fingerprint"] == FINGERPRINT
  assert c2pa_result["watermark_payload"] == "01234567"
  assert c2pa_result["signed_by"].startswith("deepjax local signer")
  credentials.sign_file(image, source_type=credentials.GENERATED, model_family="fomm",
                        fingerprint=FINGERPRINT)
  assert read_c2pa(image)["valid"]
  assert read_c2pa(image)["digital_source_type"] == credentials.GENERATED
  assert sorted(os.listdir(tmp_path / "out")) == ["clip.mp4", "face.png"]  # no temp files


def test_local_pair_is_made_once_and_private(config_home):
  cert, key = credentials.local_signing_pair()
  assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
  before = open(cert, "rb").read()
  assert credentials.local_signing_pair() == (cert, key)
  assert open(cert, "rb").read() == before
  assert str(config_home) in cert


def test_one_flipped_byte_of_video_is_invalid(config_home, video):
  _sign(video)
  data = bytearray(open(video, "rb").read())
  mdat = data.find(b"mdat")
  data[mdat + (len(data) - mdat) // 2] ^= 0xFF
  open(video, "wb").write(bytes(data))
  result = read_c2pa(video)
  assert result["present"] and not result["valid"]


def test_user_given_certificate_signs(config_home, video, tmp_path):
  chain, key = credentials._make_local_chain()  # pylint: disable=protected-access
  (tmp_path / "c.pem").write_bytes(chain)
  (tmp_path / "k.pem").write_bytes(key)
  _sign(video, cert_path=str(tmp_path / "c.pem"), key_path=str(tmp_path / "k.pem"))
  assert read_c2pa(video)["valid"]
  assert not config_home.exists()  # no local pair made


@pytest.mark.parametrize("bad", ["missing", "not_pem", "key_only"])
def test_bad_certificate_is_one_line_error_and_nothing_written(config_home, video, tmp_path, bad):
  key = tmp_path / "k.pem"
  key.write_bytes(credentials._make_local_chain()[1])  # pylint: disable=protected-access
  cert = tmp_path / "c.pem"
  if bad == "not_pem":
    cert.write_text("hello")
  before = open(video, "rb").read()
  kw = {"key_path": str(key)} if bad == "key_only" else {"cert_path": str(cert),
                                                         "key_path": str(key)}
  with pytest.raises(UserError) as err:
    _sign(video, **kw)
  assert "\n" not in str(err.value)
  assert open(video, "rb").read() == before
  assert os.listdir(os.path.dirname(video)) == ["clip.mp4"]
  with pytest.raises(UserError):  # programs fail before generating anything
    Provenance(credentials.GENERATED, "fomm", FINGERPRINT, **kw)


def test_provenance_modes(config_home, video):
  frames = np.full((1, 64, 64, 3), 128, np.uint8)
  off = Provenance(credentials.GENERATED, "fomm", FINGERPRINT, mode="none")
  assert off.mark_frames(frames) is frames
  off.sign(video)
  assert not read_c2pa(video)["present"]
  with pytest.raises(UserError):
    Provenance(credentials.GENERATED, "fomm", FINGERPRINT, mode="some")
  assert Provenance(credentials.GENERATED, "fomm", FINGERPRINT).payload == 0x01234567


def test_mark_stream_marks_in_batches(config_home):
  prov = Provenance(credentials.GENERATED, "fomm", FINGERPRINT, mode="watermark")
  frames = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
  out = list(prov.mark_stream(iter(frames), batch=2))
  assert len(out) == 3
  np.testing.assert_array_equal(np.stack(out[:2]), prov.mark_frames(frames[:2]))
  np.testing.assert_array_equal(out[2], prov.mark_frames(frames[2:])[0])
  assert not np.array_equal(out[0], frames[0])
  whole = list(prov.mark_stream(iter(frames[:2]), batch=2))  # no short last batch
  np.testing.assert_array_equal(np.stack(whole), np.stack(out[:2]))
  assert not list(prov.mark_stream(iter([]), batch=2))
  assert not config_home.exists()  # watermark only: no signing pair made


def test_local_chain_follows_the_c2pa_certificate_profile(config_home):
  """Key usage critical, EKU emailProtection on the signer, key identifiers on both."""
  from cryptography import x509  # pylint: disable=import-outside-toplevel
  cert_path, _ = credentials.local_signing_pair()
  signer, ca = x509.load_pem_x509_certificates(open(cert_path, "rb").read())
  for cert in (signer, ca):
    assert cert.version == x509.Version.v3
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).critical
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
  assert signer.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
  eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
  assert list(eku) == [x509.oid.ExtendedKeyUsageOID.EMAIL_PROTECTION]
  assert signer.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value \
      .key_identifier == ca.extensions.get_extension_for_class(
          x509.SubjectKeyIdentifier).value.digest
  assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_local_pair_without_key_identifiers_is_remade(config_home):
  import datetime  # pylint: disable=import-outside-toplevel
  from cryptography import x509  # pylint: disable=import-outside-toplevel
  from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
  from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
  cert_path, key_path = credentials.local_signing_pair()
  key = ec.generate_private_key(ec.SECP256R1())
  name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "old")])
  now = datetime.datetime.now(datetime.timezone.utc)
  cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
          .public_key(key.public_key()).serial_number(1).not_valid_before(now)
          .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
  old = cert.public_bytes(serialization.Encoding.PEM)
  open(cert_path, "wb").write(old)
  assert not credentials._has_key_identifiers(cert_path)  # pylint: disable=protected-access
  assert credentials.local_signing_pair() == (cert_path, key_path)
  assert open(cert_path, "rb").read() != old
  assert credentials._has_key_identifiers(cert_path)  # pylint: disable=protected-access
