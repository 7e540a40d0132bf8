"""Multi-scale patch discriminator of the first-order motion model (modules/discriminator.py).

NHWC. Names match the reference (`discs_{scale}`, `down_blocks_i/conv`, `down_blocks_i/norm`,
`conv`; scale keys as the reference's ModuleDict: 1 -> "1", 0.5 -> "0-5"). Spectral
normalisation follows `torch.nn.utils.spectral_norm` (one power iteration per training
call on the (O, I*kh*kw) matrix in torch's OIHW order; the vectors `u`, `v` live in the
`batch_stats` collection and carry no gradient; `weight_orig` is the `kernel` param).
"""
import dataclasses
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepjax.models.hourglass import torch_kernel_init
from deepjax.ops import keypoints as kpo


def scale_key(scale: float) -> str:
  """1 -> '1', 0.5 -> '0-5' (the reference's ModuleDict keys from yaml numbers)."""
  text = str(int(scale)) if float(scale).is_integer() else str(scale)
  return text.replace(".", "-")


def _normalize(x, eps=1e-12):
  return x / jnp.maximum(jnp.linalg.norm(x), eps)


class SNConv(nn.Module):
  """VALID convolution with optional spectral normalisation (torch semantics)."""
  features: int
  kernel_size: int
  sn: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    k = self.kernel_size
    cin = x.shape[-1]
    kernel = self.param("kernel", torch_kernel_init, (k, k, cin, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    if self.sn:
      mat = kernel.transpose(3, 2, 0, 1).reshape(self.features, -1)  # torch (O, I*kh*kw)
      u = self.variable("batch_stats", "u",
                        lambda: _normalize(jax.random.normal(self.make_rng("params"),
                                                             (self.features,))))
      v = self.variable("batch_stats", "v",
                        lambda: _normalize(jax.random.normal(self.make_rng("params"),
                                                             (mat.shape[1],))))
      u_vec, v_vec = u.value, v.value
      if train:
        w = jax.lax.stop_gradient(mat)
        v_vec = _normalize(w.T @ u_vec)
        u_vec = _normalize(w @ v_vec)
        if not self.is_initializing():
          u.value, v.value = u_vec, v_vec
      sigma = jnp.dot(u_vec, mat @ v_vec)
      kernel = kernel / sigma
    y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias.reshape(1, 1, 1, -1)


class DiscDownBlock2d(nn.Module):
  """4x4 VALID conv (+SN) -> InstanceNorm (optional) -> LeakyReLU 0.2 -> 2x2 avg pool (optional)."""
  features: int
  norm: bool = False
  pool: bool = False
  sn: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = SNConv(self.features, 4, self.sn, name="conv")(x, train)
    if self.norm:
      x = nn.InstanceNorm(epsilon=1e-5, name="norm")(x)
    x = nn.leaky_relu(x, 0.2)
    if self.pool:
      x = nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")
    return x


class DiscriminatorOptions(nn.Module):
  """The fields of one scale's patch discriminator (shared by the multi-scale one)."""
  num_channels: int = 3
  block_expansion: int = 64
  num_blocks: int = 4
  max_features: int = 512
  sn: bool = False
  use_kp: bool = False
  num_kp: int = 10
  kp_variance: float = 0.01


class Discriminator(DiscriminatorOptions):
  """Pix2Pix-like patch discriminator: (image, kp) -> (feature maps, prediction map)."""

  @nn.compact
  def __call__(self, x_BxHxWxC, kp_value_BxKx2=None, train: bool = False
               ) -> Tuple[List[jax.Array], jax.Array]:
    out = x_BxHxWxC
    if self.use_kp:
      heat = kpo.kp2gaussian(kp_value_BxKx2, x_BxHxWxC.shape[1:3], self.kp_variance)
      out = jnp.concatenate([out, heat], axis=-1)
    feature_maps = []
    for i in range(self.num_blocks):
      feats = min(self.max_features, self.block_expansion * (2 ** (i + 1)))
      out = DiscDownBlock2d(feats, norm=i != 0, pool=i != self.num_blocks - 1, sn=self.sn,
                            name=f"down_blocks_{i}")(out, train)
      feature_maps.append(out)
    prediction = SNConv(1, 1, self.sn, name="conv")(out, train)
    return feature_maps, prediction


_OPTIONS = tuple(f.name for f in dataclasses.fields(DiscriminatorOptions)
                 if f.name not in ("parent", "name"))


class MultiScaleDiscriminator(DiscriminatorOptions):
  """One Discriminator per pyramid scale (the other fields: each scale's Discriminator).

  Call: (pyramid {scale: (B, H*scale, W*scale, C)}, kp_value (B, K, 2) or None, train) ->
  {scale: (feature maps list, prediction map (B, h, w, 1))}.
  """
  scales: Sequence[float] = (1.0,)

  @nn.compact
  def __call__(self, pyramid: Dict[float, jax.Array], kp_value=None, train: bool = False):
    options = {k: getattr(self, k) for k in _OPTIONS}
    return {s: Discriminator(**options, name=f"discs_{scale_key(s)}")(pyramid[s], kp_value, train)
            for s in self.scales}


def build_discriminator(model_cfg: Mapping[str, Any]) -> MultiScaleDiscriminator:
  """MultiScaleDiscriminator from `config.model`: its `discriminator` section (fields of
  MultiScaleDiscriminator; absent ones keep their defaults), `num_kp` and `num_channels`."""
  m = dict(model_cfg)
  d = dict(m["discriminator"])
  if "scales" in d:
    d["scales"] = tuple(float(s) for s in d["scales"])
  return MultiScaleDiscriminator(num_kp=m["num_kp"], num_channels=m["num_channels"], **d)
