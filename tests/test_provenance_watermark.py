"""deepjax.provenance.watermark: round trip, robustness, no false detections, decoding."""
import dataclasses
import os
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from deepjax.data.video import read_image, read_video, write_image, write_video
from deepjax.provenance import watermark as wm
from deepjax.provenance import watermark_carrier
from deepjax.provenance import watermark_detect as wdet
from provenance_scene import scene

PAYLOAD = 0xABCDEF01


@pytest.fixture(scope="module")
def marked():
  frames = scene(0, 2, 256)
  return frames, wm.embed(frames, PAYLOAD)


def _psnr(a, b):
  return 10 * np.log10(255 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))


def test_round_trip_is_invisible_and_found(marked):
  frames, out = marked
  assert out.shape == frames.shape and out.dtype == np.uint8
  assert _psnr(out, frames) >= 40
  dets = wm.detect_frames(out)
  assert [(d.found, d.payload, d.scale, d.shift) for d in dets] == [(True, PAYLOAD, 1.0, (0, 0))] * 2


def _resize(frames, w, h, resample=Image.BILINEAR):
  return np.stack([np.asarray(Image.fromarray(f).resize((w, h), resample)) for f in frames])


def _bright(frames, gain):
  return np.clip(np.round(frames * np.float32(gain)), 0, 255).astype(np.uint8)


TRANSFORMS = {
    "half size": lambda f, _: _resize(f, 128, 128),
    "crop 10% each side": lambda f, _: f[:, 26:-26, 26:-26],
    "brightness +10%": lambda f, _: _bright(f, 1.1),
    "brightness -10%": lambda f, _: _bright(f, 0.9),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_every_frame_survives(marked, name):
  out = TRANSFORMS[name](marked[1], None)
  assert [d.payload for d in wm.detect_frames(out)] == [PAYLOAD] * len(out)


def test_png_of_one_frame_survives(marked, tmp_path):
  path = str(tmp_path / "frame.png")
  write_image(path, marked[1][1])
  assert wm.detect_frames(read_image(path))[0].payload == PAYLOAD


@pytest.mark.parametrize("crf", [23, 28])
def test_h264_reencode_survives(marked, tmp_path, crf):
  src, dst = str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")
  write_video(src, marked[1], 25)
  subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", src, "-c:v", "libx264",
                  "-crf", str(crf), "-pix_fmt", "yuv420p", dst], check=True)
  frames = read_video(dst)[0]
  assert wm.detect_clip(frames).payload == PAYLOAD
  assert np.mean([d.payload == PAYLOAD for d in wm.detect_frames(frames)]) >= 1 / 2


def test_unmarked_pictures_are_not_found():
  noise = np.random.default_rng(1).integers(0, 256, (1, 200, 300, 3), dtype=np.uint8)
  for frames in (scene(1, 1, 256), noise):
    assert not any(d.found for d in wm.detect_frames(frames))
    assert not wm.detect_clip(frames).found


def test_viterbi_decoding_corrects_scattered_errors_and_rejects_noise():
  """The channel code: 20 of 192 channel bits wrong (spread out) still decode to the
  payload; a burst of 40 confident errors does not give a payload (wrong or right), and
  neither does noise (the CRC rejects it)."""
  from deepjax.provenance import watermark_code as wcode
  whitening = watermark_carrier.carrier(wm.WatermarkConfig())[2]
  rng = np.random.default_rng(0)
  soft = wm.codeword(PAYLOAD) * rng.uniform(0.5, 1.5, wcode.CODE_BITS)
  scattered = soft.copy()
  scattered[np.arange(20) * 9 + 4] *= -1
  burst = soft.copy()
  burst[60:100] *= -3
  noise = rng.normal(size=(200, wcode.CODE_BITS))
  got = [p for p, _ in wcode.decode(np.stack([soft, scattered, burst]), whitening)]
  assert got == [PAYLOAD, PAYLOAD, None]
  assert all(p is None for p, _ in wcode.decode(noise, whitening))
  assert np.array_equal(wcode.decode(soft, whitening)[0][1], wcode.message_bits(PAYLOAD))


def test_false_positive_bound():
  assert wm.false_positive_rate() == pytest.approx(3 * 9 / 2 ** 32)
  with pytest.raises(ValueError):
    wm.codeword(2 ** 32)


def test_uncropped_shift_is_always_a_candidate():
  """The shift search decodes the `shift_candidates` strongest shifts per scale and, with
  `origin_candidate`, (0, 0), an uncropped frame's, however weak its peak; the
  false-positive bound counts that trial."""
  config = watermark_carrier.WatermarkConfig()
  folded = np.random.default_rng(0).normal(size=(config.period, config.period))
  folded = folded.astype(np.float32)
  soft, shifts = wdet.soft_bits(folded, config)
  plain = dataclasses.replace(config, origin_candidate=False)
  _, plain_shifts = wdet.soft_bits(folded, plain)
  assert len(plain_shifts) == config.shift_candidates and (0, 0) not in plain_shifts
  assert shifts == plain_shifts + [(0, 0)] and len(soft) == len(shifts)
  assert wm.false_positive_rate(config) == pytest.approx(3 * 9 / 2 ** 32)
  assert wm.false_positive_rate(plain) == pytest.approx(3 * 8 / 2 ** 32)


def test_animation_sized_real_frames_survive_half_size(shared_data, tmp_path):
  """256 px frames of a real face (the size of an animation), halved and re-encoded:
  the picture's residual at this size gives spurious shift peaks unless the shift search
  whitens the fold (before it, no frame here decoded; at this size decoding still
  depends on the picture and the payload: this one is a regression check)."""
  frames = read_video(os.path.join(shared_data, "videos", "lp_d9.mp4"), max_frames=8)[0][::2]
  frames = _resize(frames, 256, 256, Image.BICUBIC)
  path = str(tmp_path / "half.mp4")
  payload = 0x5EED1234
  write_video(path, _resize(wm.embed(frames, payload), 128, 128, Image.BOX), 25, crf=18)
  assert [d.payload for d in wm.detect_frames(read_video(path)[0])] == [payload] * 4


def test_animation_sized_real_frames_survive_cropping(shared_data):
  """256 px frames of a real face with 10 % cut off each side: the crop removes part of
  the picture that marking cancelled against, so decoding relies on the detector's
  weighting (textured areas count little; unweighted, no frame here decodes)."""
  frames = read_video(os.path.join(shared_data, "videos", "lp_d9.mp4"), max_frames=8)[0][::2]
  marked = wm.embed(_resize(frames, 256, 256, Image.BICUBIC), 0x5EED1234)
  cropped = marked[:, 25:231, 25:231]
  assert [d.payload for d in wm.detect_frames(cropped)] == [0x5EED1234] * 4


def test_upsample_is_linear_interpolation_of_block_centres():
  """watermark_ops.upsample against np.interp along each axis (edges held), cropped."""
  from deepjax.provenance import watermark_ops
  f, h, w = 4, 30, 21
  blocks = np.random.default_rng(2).normal(size=(2, 8, 6)).astype(np.float32)
  interp = lambda a, n, axis: np.apply_along_axis(  # noqa: E731
      lambda v: np.interp(np.arange(n), np.arange(v.size) * f + (f - 1) / 2, v), axis, a)
  want = interp(interp(blocks, 8 * f, 1), 6 * f, 2)[:, :h, :w]
  got = np.asarray(watermark_ops.upsample(blocks, f, h, w))
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_carriers_are_each_bits_signed_chips_blurred():
  """`carrier` builds the tiles from one blurred chip by shifting: the same tiles as blurring
  each bit's signed chip squares (about unit RMS for a codeword: the blur makes neighbouring
  chips overlap a little), and `highpass_carrier` the same minus their blur."""
  config = wm.WatermarkConfig()
  assign, signs, _, tiles = watermark_carrier.carrier(config)
  px = np.ones((config.chip_px, config.chip_px), np.float32)
  dense = np.stack([np.kron((assign == k) * signs, px) for k in range(tiles.shape[0])])
  dense = watermark_carrier.periodic_blur(dense, config.smooth)
  dense /= np.sqrt(np.mean(dense.sum(0) ** 2))
  np.testing.assert_allclose(tiles, dense, atol=1e-5)
  highpass = dense - watermark_carrier.periodic_blur(dense, config.blur_sigma)
  np.testing.assert_allclose(watermark_carrier.highpass_carrier(config), highpass, atol=1e-5)
  codeword = np.where(np.arange(tiles.shape[0]) % 3, 1.0, -1.0)
  assert abs(np.sqrt(np.mean(np.einsum("k,kpq->pq", codeword, tiles) ** 2)) - 1.0) < 0.05


def test_chip_domain_products_equal_the_carriers():
  """`_mark` correlates with and synthesises the carriers per chip (by FFT on the tile):
  the same numbers as the dense products with every bit's carrier tile."""
  from deepjax.provenance import watermark_ops
  config = wm.WatermarkConfig()
  carrier_hat, highpass_hat, chip_to_bit, _ = wm._chip_constants(config)  # pylint: disable=protected-access
  carriers = watermark_carrier.carrier(config)[3]
  highpass = watermark_carrier.highpass_carrier(config)
  rng = np.random.default_rng(3)
  x = rng.normal(size=(2, config.period, config.period)).astype(np.float32)
  c = config.chips
  host = np.asarray(watermark_ops.chip_correlate(x, highpass_hat, config.chip_px)).reshape(2, c * c)
  np.testing.assert_allclose(host @ chip_to_bit, np.einsum("npq,kpq->nk", x, highpass),
                             rtol=1e-4, atol=1e-3)
  coeff = rng.normal(size=(2, chip_to_bit.shape[1])).astype(np.float32)
  synth = watermark_ops.chip_synthesise((coeff @ chip_to_bit.T).reshape(2, c, c), carrier_hat,
                                        config.chip_px)
  np.testing.assert_allclose(np.asarray(synth), np.einsum("nk,kpq->npq", coeff, carriers),
                             rtol=1e-4, atol=1e-4)
