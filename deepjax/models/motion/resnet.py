"""ResNet-18 trunk (torchvision's `resnet18`, no pretrained weights), NHWC.

Thin-plate-spline motion uses it for its keypoint detector and its background motion
predictor. Names match torchvision's state dict (`conv1`, `bn1`, `layer{1-4}.{0,1}.conv1`,
`...downsample.0/1`, `fc`; flax names list members `layer1_0`, `downsample_0`, ...) so a
PyTorch checkpoint maps onto it by name (deepjax.convert). BatchNorm is
`deepjax.models.hourglass.BatchNorm` (torch's defaults; `norm_groups` as there).

Convolutions on small maps take `deepjax.ops.conv.small_map_conv` (im2col for stride-1
outputs of at most 16 pixels, the explicit input gradient for strided ones on inputs of at
most 16 px a side): at 64 px XLA:CPU ran the plain trunk's forward + backward 9x slower
(docs/performance.md).

Initialisation as torchvision: convolutions Kaiming-normal (fan_out, ReLU gain), BatchNorm
scale 1 and bias 0, the final Linear torch's default (uniform +-1 / sqrt(fan_in)) unless
`fc_kernel_init` / `fc_bias_init` are given.
"""
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepjax.models.hourglass import batch_norm, torch_kernel_init
from deepjax.ops import conv

kaiming_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def torch_linear_bias_init(fan_in: int) -> Callable:
  """torch.nn.Linear's default bias: uniform in +-1 / sqrt(fan_in)."""
  bound = 1.0 / fan_in ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def conv_nobias(features: int, kernel: int, stride: int, padding: int, name: str) -> nn.Conv:
  """torch Conv2d(bias=False) with symmetric zero padding; params `kernel` (HWIO)."""
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((padding, padding), (padding, padding)), use_bias=False,
                 kernel_init=kaiming_fan_out, name=name,
                 conv_general_dilated=conv.small_map_conv)


class BasicBlock(nn.Module):
  """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); 1x1 conv + BatchNorm shortcut
  (`downsample_0`, `downsample_1`) when the stride or the width changes."""
  planes: int
  stride: int = 1
  norm_groups: int = 1

  @nn.compact
  def __call__(self, x_BxHxWxC, train: bool = False):
    g = self.norm_groups
    out = conv_nobias(self.planes, 3, self.stride, 1, "conv1")(x_BxHxWxC)
    out = nn.relu(batch_norm(train, "bn1", g)(out))
    out = conv_nobias(self.planes, 3, 1, 1, "conv2")(out)
    out = batch_norm(train, "bn2", g)(out)
    shortcut = x_BxHxWxC
    if self.stride != 1 or x_BxHxWxC.shape[-1] != self.planes:
      shortcut = conv_nobias(self.planes, 1, self.stride, 0, "downsample_0")(x_BxHxWxC)
      shortcut = batch_norm(train, "downsample_1", g)(shortcut)
    return nn.relu(out + shortcut)


class ResNet18(nn.Module):
  """(B, H, W, C) float32 -> (B, num_outputs): the trunk, global average pool, `fc`.

  Any input channel count C (the background predictor feeds 6). `groups` G > 1 in
  training: G interleaved sub-batches with separate BatchNorm statistics (see
  hourglass.BatchNorm). H, W >= 32.
  """
  num_outputs: int
  fc_kernel_init: Optional[Callable] = None
  fc_bias_init: Optional[Callable] = None

  @nn.compact
  def __call__(self, x_BxHxWxC, train: bool = False, groups: int = 1):
    g = groups if train else 1
    x = conv_nobias(64, 7, 2, 3, "conv1")(x_BxHxWxC)
    x = nn.relu(batch_norm(train, "bn1", g)(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for layer, planes in enumerate((64, 128, 256, 512)):
      for block in range(2):
        stride = 2 if layer > 0 and block == 0 else 1
        x = BasicBlock(planes, stride, g, name=f"layer{layer + 1}_{block}")(x, train)
    features_BxF = jnp.mean(x, axis=(1, 2))
    fan_in = features_BxF.shape[-1]
    return nn.Dense(self.num_outputs, name="fc",
                    kernel_init=self.fc_kernel_init or torch_kernel_init,
                    bias_init=self.fc_bias_init or torch_linear_bias_init(fan_in))(features_BxF)
