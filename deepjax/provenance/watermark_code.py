"""The watermark's channel code (deepjax.provenance.watermark).

A 32-bit payload and its CRC-32 form a 64-bit message. The message, followed by six zero
tail bits, goes through a rate-1/3 convolutional code of constraint length 7 (generators
133, 171, 165 octal); 18 of the 210 output bits are punctured, leaving 192 channel bits.
Decoding is soft-decision Viterbi (the most likely message given the soft bits), batched
over candidates; the CRC-32 then tells a mark from noise: for input that carries no mark
the decoded message matches its CRC with probability about 2**-32.

Bits are uint8 0/1 arrays, most significant bit first; soft bits are float arrays whose
sign is the hard decision (positive: 1) and whose magnitude is its reliability.
"""
import functools
import zlib

import numpy as np

PAYLOAD_BITS = 32
MESSAGE_BITS = 64  # payload + CRC-32
CONSTRAINT = 7
GENERATORS = (0o133, 0o171, 0o165)
_STATES = 2 ** (CONSTRAINT - 1)
_STEPS = MESSAGE_BITS + CONSTRAINT - 1  # message and tail
_RATE = len(GENERATORS)


@functools.lru_cache(maxsize=1)
def _kept() -> np.ndarray:
  """bool (_STEPS, 3): the output bits that are sent (the third output of steps 1, 5, ...,
  69 is punctured)."""
  keep = np.ones((_STEPS, _RATE), bool)
  keep[1::4, 2] = False
  return keep


CODE_BITS = int(_STEPS * _RATE - (_STEPS + 2) // 4)  # 192 channel bits


def message_bits(payload: int) -> np.ndarray:
  """uint8 (64,): the payload's 32 bits, then the 32 bits of its CRC-32."""
  if not 0 <= int(payload) < 2 ** PAYLOAD_BITS:
    raise ValueError(f"payload must fit in {PAYLOAD_BITS} bits, got {payload}")
  crc = zlib.crc32(int(payload).to_bytes(4, "big"))
  return np.concatenate([_bits_of(int(payload)), _bits_of(crc)])


def _bits_of(value: int) -> np.ndarray:
  return np.array([(value >> (31 - i)) & 1 for i in range(32)], np.uint8)


def _value_of(bits: np.ndarray) -> int:
  return int.from_bytes(np.packbits(bits).tobytes(), "big")


@functools.lru_cache(maxsize=1)
def _outputs() -> np.ndarray:
  """uint8 (64 states, 2 inputs, 3): the encoder's output bits. The state holds the last
  six input bits, the newest highest; input b in state s gives state ((b << 6) | s) >> 1."""
  out = np.zeros((_STATES, 2, _RATE), np.uint8)
  for s in range(_STATES):
    for b in range(2):
      register = (b << (CONSTRAINT - 1)) | s
      for j, g in enumerate(GENERATORS):
        out[s, b, j] = bin(register & g).count("1") & 1
  return out


def encode(message: np.ndarray) -> np.ndarray:
  """uint8 (192,): the channel bits of a uint8 (64,) message."""
  out, state = [], 0
  for b in list(np.asarray(message, np.uint8)) + [0] * (CONSTRAINT - 1):
    out.append(_outputs()[state, b])
    state = ((int(b) << (CONSTRAINT - 1)) | state) >> 1
  return np.stack(out)[_kept()]


def viterbi(soft_MxC: np.ndarray) -> np.ndarray:
  """uint8 (M, 64): the most likely message for each row of soft channel bits (M, 192)
  (maximum correlation with the encoded sequence; the encoder starts and ends in state 0)."""
  soft = np.atleast_2d(np.asarray(soft_MxC, np.float32))
  m = soft.shape[0]
  full = np.zeros((m, _STEPS, _RATE), np.float32)
  full[:, _kept()] = soft  # punctured bits: no evidence
  signs = 2.0 * _outputs().astype(np.float32) - 1.0  # (S, 2, 3)
  nxt = np.arange(_STATES)
  inputs = nxt >> (CONSTRAINT - 2)  # the input bit that leads into each state
  preds = ((nxt & (_STATES // 2 - 1)) << 1)[:, None] | np.arange(2)[None]  # (S, 2)
  branch_signs = signs[preds, inputs[:, None]]  # (S, 2, 3): outputs on each edge
  metric = np.full((m, _STATES), -np.inf, np.float32)
  metric[:, 0] = 0.0
  back = np.zeros((_STEPS, m, _STATES), np.uint8)
  for t in range(_STEPS):
    cand = metric[:, preds] + np.einsum("mj,sij->msi", full[:, t], branch_signs)
    back[t] = np.argmax(cand, axis=-1)
    metric = np.max(cand, axis=-1)
  bits = np.zeros((m, _STEPS), np.uint8)
  state = np.zeros(m, np.int64)
  rows = np.arange(m)
  for t in range(_STEPS - 1, -1, -1):
    bits[:, t] = state >> (CONSTRAINT - 2)
    state = ((state & (_STATES // 2 - 1)) << 1) | back[t, rows, state]
  return bits[:, :MESSAGE_BITS]


def decode(soft_MxC: np.ndarray, whitening: np.ndarray):
  """-> [(payload or None, message bits uint8 (64,))] per row of soft bits (M, 192).

  `whitening`: uint8 (192,) XOR-ed into the channel bits at marking (undone here). The
  payload is given only where the decoded message matches its CRC-32.
  """
  soft = np.atleast_2d(soft_MxC) * (1.0 - 2.0 * whitening.astype(np.float32))
  out = []
  for bits in viterbi(soft):
    payload = _value_of(bits[:PAYLOAD_BITS])
    ok = np.array_equal(bits, message_bits(payload))
    out.append((payload if ok else None, bits))
  return out
