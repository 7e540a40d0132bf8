"""Fake-face classifier: an EfficientNet-like network (MBConv blocks) trained from scratch.

Layout as EfficientNet-B0 (Tan & Le, 2019): a stride-2 3x3 stem, stages of inverted
residual blocks (1x1 expansion, depthwise k x k, squeeze-and-excitation, 1x1
projection; residual when the shape is kept), a 1x1 head, global average pooling,
dropout and one logit. Widths, depths, strides and kernels come from the config, so
the same module is B0-sized (`B0_STAGES`) or CPU-sized (configs/detect.py `:tiny`).

Depthwise convolutions: `depthwise="shifted"` (`deepjax.ops.conv.depthwise_conv`, shifted
products; on XLA:CPU its training step runs several times faster than the grouped
convolution) or `"lax"` (XLA's grouped convolution: compiles faster; the same maths). Normalisation is GroupNorm (per example, no running statistics; the state stays
`{}` and small CPU batches train the same as large ones) where EfficientNet has
BatchNorm.

Optional mask head: a 1x1 convolution on the output of stage `mask_stage` gives
manipulation-mask logits at that stage's resolution (e.g. 1/8 or 1/16 of the input).

Input filter (`input_filter`): what the stem sees of the picture: "none" (x * 2 - 1),
"highpass" (the picture minus its Gaussian blur of sigma 2 px, times 4: edges, seams and
noise without the colours and shapes of the face) or "standardize" (each image and channel
to zero mean and unit std: no clip's lighting). It is part of the model, so scoring applies
the same filter as training.

Input: float32 (B,H,W,3) RGB in [0,1]. Output: (logits float32 (B,), mask logits
float32 (B,h,w,1) or None).
"""
import math
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepjax.errors import UserError
from deepjax.ops import conv
from deepjax.ops.self_blend import gaussian_blur

INPUT_FILTERS = ("none", "highpass", "standardize")
HIGHPASS_SIGMA_PX = 2.0

# (features, depth, stride, kernel, expansion) per stage: EfficientNet-B0.
B0_STAGES = ((16, 1, 1, 3, 1), (24, 2, 2, 3, 6), (40, 2, 2, 5, 6), (80, 3, 2, 3, 6),
             (112, 3, 1, 5, 6), (192, 4, 2, 5, 6), (320, 1, 1, 3, 6))


def _norm(name: str, channels: int) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=math.gcd(channels, 8), name=name)


class MBConv(nn.Module):
  """Inverted residual block with squeeze-and-excitation: (B,H,W,C) -> (B,H/s,W/s,F)."""
  features: int
  stride: int = 1
  kernel: int = 3
  expansion: int = 6
  se_ratio: float = 0.25
  depthwise: str = "shifted"

  @nn.compact
  def __call__(self, x_BxHxWxC):
    c = x_BxHxWxC.shape[-1]
    h = x_BxHxWxC
    hidden = c * self.expansion
    if self.expansion != 1:
      h = nn.Conv(hidden, (1, 1), use_bias=False, name="expand")(h)
      h = nn.swish(_norm("expand_norm", hidden)(h))
    dw = self.param("depthwise", nn.initializers.variance_scaling(1.0, "fan_in", "normal",
                                                                    in_axis=(0, 1), out_axis=2),
                    (self.kernel, self.kernel, hidden))
    if self.depthwise == "shifted":
      h = conv.depthwise_conv(h, dw, self.stride)
    else:
      h = jax.lax.conv_general_dilated(h, dw[:, :, None, :], (self.stride, self.stride), "SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                       feature_group_count=hidden)
    h = nn.swish(_norm("depthwise_norm", hidden)(h))
    if self.se_ratio > 0:
      s_BxC = jnp.mean(h, axis=(1, 2))
      s_BxC = nn.swish(nn.Dense(max(1, int(c * self.se_ratio)), name="se_reduce")(s_BxC))
      s_BxC = nn.sigmoid(nn.Dense(hidden, name="se_expand")(s_BxC))
      h = h * s_BxC[:, None, None, :]
    h = nn.Conv(self.features, (1, 1), use_bias=False, name="project")(h)
    h = _norm("project_norm", self.features)(h)
    if self.stride == 1 and c == self.features:
      h = h + x_BxHxWxC
    return h


def filter_input(x_BxHxWx3, kind: str):
  """float32 (B,H,W,3) in [0,1] -> float32 (B,H,W,3): the stem's input (`INPUT_FILTERS`)."""
  if kind == "highpass":
    sigma_B = jnp.full((x_BxHxWx3.shape[0],), HIGHPASS_SIGMA_PX, jnp.float32)
    return (x_BxHxWx3 - gaussian_blur(x_BxHxWx3, sigma_B)) * 4.0
  if kind == "standardize":
    mean = jnp.mean(x_BxHxWx3, axis=(1, 2), keepdims=True)
    std = jnp.std(x_BxHxWx3, axis=(1, 2), keepdims=True)
    return (x_BxHxWx3 - mean) / (std + 1e-4)
  return x_BxHxWx3 * 2.0 - 1.0


class Detector(nn.Module):
  """EfficientNet-like binary classifier with an optional low-resolution mask head."""
  stem: int = 32
  stages: Sequence[Sequence[int]] = B0_STAGES
  head: int = 1280
  se_ratio: float = 0.25
  dropout: float = 0.2
  mask_head: bool = False
  mask_stage: int = -1
  depthwise: str = "shifted"
  input_filter: str = "none"

  @nn.compact
  def __call__(self, x_BxHxWx3, train: bool = False):
    """float32 (B,H,W,3) in [0,1] -> (logits (B,), mask logits (B,h,w,1) or None).

    `train=True` applies dropout (needs the 'dropout' rng)."""
    h = filter_input(x_BxHxWx3.astype(jnp.float32), self.input_filter)
    h = nn.Conv(self.stem, (3, 3), strides=2, padding="SAME", use_bias=False, name="stem")(h)
    h = nn.swish(_norm("stem_norm", self.stem)(h))
    outputs = []
    for i, (features, depth, stride, kernel, expansion) in enumerate(self.stages):
      for j in range(depth):
        h = MBConv(features, stride if j == 0 else 1, kernel, expansion, self.se_ratio,
                   self.depthwise, name=f"stage{i}_block{j}")(h)
      outputs.append(h)
    mask_logits: Optional[jax.Array] = None
    if self.mask_head:
      mask_logits = nn.Conv(1, (1, 1), name="mask_head")(outputs[self.mask_stage])
    h = nn.Conv(self.head, (1, 1), use_bias=False, name="head")(h)
    h = nn.swish(_norm("head_norm", self.head)(h))
    h_BxC = jnp.mean(h, axis=(1, 2))
    h_BxC = nn.Dropout(self.dropout, deterministic=not train)(h_BxC)
    logits_B = nn.Dense(1, name="logit")(h_BxC)[:, 0]
    return logits_B, mask_logits


def from_config(model_cfg) -> Detector:
  """A Detector from a config with stem, stages, head, se_ratio, dropout, mask_head,
  mask_stage, depthwise, input_filter (configs/detect.py)."""
  stages = tuple(tuple(int(v) for v in s) for s in model_cfg.stages)
  if not stages or any(len(s) != 5 or min(s) < 1 for s in stages):
    raise UserError("model.stages must be a non-empty list of (features, depth, stride, "
                    "kernel, expansion) with every entry >= 1")
  mask_stage = int(model_cfg.get("mask_stage", -1))
  depthwise = str(model_cfg.get("depthwise", "shifted"))
  if depthwise not in ("shifted", "lax"):
    raise UserError(f"model.depthwise must be 'shifted' or 'lax', got {depthwise!r}")
  input_filter = str(model_cfg.get("input_filter", "none"))
  if input_filter not in INPUT_FILTERS:
    raise UserError(f"model.input_filter must be one of {INPUT_FILTERS}, got {input_filter!r}")
  if not -len(stages) <= mask_stage < len(stages):
    raise UserError(f"model.mask_stage {mask_stage} is not a stage index (0..{len(stages) - 1})")
  return Detector(stem=int(model_cfg.stem), stages=stages, head=int(model_cfg.head),
                  se_ratio=float(model_cfg.get("se_ratio", 0.25)),
                  dropout=float(model_cfg.get("dropout", 0.2)),
                  mask_head=bool(model_cfg.get("mask_head", False)), mask_stage=mask_stage,
                  depthwise=depthwise, input_filter=input_filter)
