"""Face-swap autoencoder (shared encoder, decoders A and B).

Config arguments (comma-separated, big_vision style), e.g.
`--config=configs/faceswap_ae.py:tiny` or `...:original,res=128,batch=32`:
- (none) / `original`: faceswap's "Original"-class model at 64 px, batch 64.
- `tiny`: a CPU-sized run: a narrow Original-class model, small batch, few
  steps (the demo uses it; minutes on 2 cores).
- `seeds`: the seed article's tiny Keras model (conv 16/8/8 + pooling).
- `res128`: the Original-class model at 128 px.
- `key=value`: `batch`, `steps`, `res` overrides.
Any field can also be overridden on the command line: `--config.optimizer.learning_rate=1e-4`.
"""
import ml_collections

from deepjax.configs_lib import apply_run_args, parse_arg, set_loop


def model_original(res: int = 64) -> ml_collections.ConfigDict:
  n_down = {64: 4, 128: 5}[res]
  return ml_collections.ConfigDict(dict(
      arch="original",
      encoder_features=(128, 256, 512, 1024, 1024)[:n_down],
      latent_dim=1024, upscale_features=512,
      decoder_features=(256, 128, 64, 32)[:n_down - 1],
      variational=False, mask=False, dtype="float32"))


def model_tiny() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      arch="original", encoder_features=(32, 64, 128, 256), latent_dim=256,
      upscale_features=128, decoder_features=(96, 64, 32), variational=False, mask=False,
      dtype="float32"))


def model_seeds() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      arch="seeds", encoder_features=(16, 8, 8), latent_dim=0, upscale_features=0,
      decoder_features=(8, 8, 16), variational=False, mask=False, dtype="float32"))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = parse_arg(arg)
  c = ml_collections.ConfigDict()
  c.task = "ae"
  c.seed = 0
  res = int(args.get("res", 128 if "res128" in args else 64))
  if "tiny" in args:
    c.model = model_tiny()
  elif "seeds" in args:
    c.model = model_seeds()
  else:
    c.model = model_original(res)

  c.data = ml_collections.ConfigDict(dict(
      source="synthetic",     # "synthetic" | "folders"
      size=res,
      # Synthetic identities (renderer seeds). 30 and 33 have the same kind of short hair
      # and framing but different skin, hair, eyes and background colours: deepfake guides
      # pick pairs with similar face shapes, and a pair with different silhouettes needs
      # far longer training before A->B swaps generalise (README, demo).
      identity_a=30, identity_b=33,
      num_train=2000, num_test=200,
      a="", b="",             # face folders (source="folders"), e.g. from deepjax.extract
      data_dir="",            # where prepared datasets go; "" = ~/.cache/deepjax/datasets
      worker_count=0, shuffle=True))

  c.augment = ml_collections.ConfigDict(dict(
      warp=True, warp_jitter=5 / 256, rotation_deg=10.0, zoom=0.05, shift=0.05, flip_prob=0.5))
  # Colour jitter of the encoder's input only (targets keep their colours): takes colour
  # away as an identity cue so swaps generalise sooner. Off by default (faceswap-like);
  # the `tiny` demo config turns it on.
  c.color_augment = ml_collections.ConfigDict(dict(
      hue=0.0, saturation=0.0, brightness=0.0, contrast=0.0, grayscale_prob=0.0))
  # Reconstruction loss: a weighted sum. mse / l1 are weighted by the eye/mouth map;
  # ssim is 1-SSIM; laplacian is the Laplacian-pyramid L1 (3 bands + low-pass, each alike)
  # and focal_frequency the focal frequency loss (deepjax.losses): both push for detail.
  c.loss = ml_collections.ConfigDict(dict(mse=1.0, l1=0.0, ssim=0.0, laplacian=0.0,
                                          focal_frequency=0.0, eye_weight=3.0,
                                          mouth_weight=2.0))
  # schedule: "constant", or "cosine" (linear warm-up over warmup_steps, then a cosine
  # decay to end_factor x learning_rate at the last step).
  c.optimizer = ml_collections.ConfigDict(dict(learning_rate=5e-5, b1=0.5, b2=0.999,
                                               clip_norm=0.0, schedule="constant",
                                               warmup_steps=0, end_factor=0.05))
  set_loop(c, batch_size=64, num_steps=100_000)  # the loop's keys: see configs_lib.set_loop

  if "tiny" in args or "seeds" in args:
    # the demo: ~4 minutes end to end on 2 CPU cores
    set_loop(c, batch_size=16, num_steps=450, every=150, log_every=50, eval_batches=1)
    c.optimizer.learning_rate = 5e-4 if "tiny" in args else 1e-3
    if "tiny" in args:
      # MSE + 0.5 (1 - SSIM): at the demo's 450 steps its held-out swaps are sharper
      # (face-region Laplacian energy +16-26 %), SSIM +0.08 and face PSNR not lower than
      # MSE alone (`python scripts/recipe_sweep.py --recipes=base,ssim05`, README).
      c.loss.ssim = 0.5
      c.color_augment.update(dict(hue=1.0, saturation=0.5, brightness=0.2, contrast=0.3,
                                  grayscale_prob=0.3))
    c.data.num_train = 512
    c.data.num_test = 64
  apply_run_args(c, args)
  c.lock()
  return c
