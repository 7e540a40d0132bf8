"""The watermark's error-control code: a 32-bit payload and its CRC-32 as a 64-bit message,
and Chase decoding of soft bits (deepjax.provenance.watermark).

Bits are uint8 0/1 arrays, most significant bit first; soft bits are float (64,) whose sign
is the hard decision and whose magnitude is its reliability.
"""
import functools
import zlib

import numpy as np

PAYLOAD_BITS = 32
CODE_BITS = 64  # payload + CRC-32


def message_bits(payload: int) -> np.ndarray:
  """uint8 (64,): the payload's 32 bits, then the 32 bits of its CRC-32."""
  if not 0 <= int(payload) < 2 ** PAYLOAD_BITS:
    raise ValueError(f"payload must fit in {PAYLOAD_BITS} bits, got {payload}")
  crc = zlib.crc32(int(payload).to_bytes(4, "big"))
  return np.concatenate([_bits_of(int(payload)), _bits_of(crc)])


def _bits_of(value: int) -> np.ndarray:
  return np.array([(value >> (31 - i)) & 1 for i in range(32)], np.uint8)


@functools.lru_cache(maxsize=1)
def _syndrome_of_flip() -> np.ndarray:
  """uint32 (64,): how flipping each codeword bit changes the CRC syndrome.

  The syndrome crc32(payload) ^ check is affine in the 64 bits (CRC is linear over
  GF(2) for messages of one length), so a set of flips changes it by the XOR of these.
  """
  out = np.zeros(CODE_BITS, np.uint32)
  zero = np.zeros(CODE_BITS, np.uint8)
  for i in range(CODE_BITS):
    e = zero.copy()
    e[i] = 1
    out[i] = _syndrome(e) ^ _syndrome(zero)
  return out


def _syndrome(bits: np.ndarray) -> int:
  return zlib.crc32(np.packbits(bits[:32]).tobytes()) ^ int.from_bytes(
      np.packbits(bits[32:]).tobytes(), "big")


def chase_decode(soft: np.ndarray, whitening: np.ndarray, chase_bits: int):
  """-> (payload or None, de-whitened bits (64,)): the fewest flips of the `chase_bits`
  weakest bits that make the CRC match (Chase decoding). `whitening`: uint8 (64,) XOR-ed
  into the hard decisions first."""
  hard = (soft > 0).astype(np.uint8) ^ whitening
  weakest = np.argsort(np.abs(soft))[:chase_bits]
  subsets = (np.arange(2 ** len(weakest))[:, None] >> np.arange(len(weakest))) & 1
  flips = np.bitwise_xor.reduce(np.where(subsets, _syndrome_of_flip()[weakest], 0), axis=1)
  hits = np.flatnonzero(flips.astype(np.uint32) == np.uint32(_syndrome(hard)))
  if not len(hits):  # pylint: disable=g-explicit-length-test
    return None, hard
  best = hits[np.argmin(subsets[hits].sum(1))]
  bits = hard.copy()
  bits[weakest[subsets[best] == 1]] ^= 1
  return int.from_bytes(np.packbits(bits[:32]).tobytes(), "big"), bits
