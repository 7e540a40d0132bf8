"""Face-swap GAN: the faceswap_ae config with mask decoders and patch discriminators.

Same arguments as configs/faceswap_ae.py (`tiny`, `seeds`, `original`, `res128`,
`batch=`, `steps=`, `res=`), plus `loss=lsgan|hinge`, `vgg=PATH` (VGG19 .npz for
the perceptual term; without it the term is off), `cycle=W`, `identity=W`.
Example: `--config=configs/faceswap_gan.py:tiny,loss=hinge`.
Fields: `--config.gan.adv_weight=0.05`, `--config.gan.vgg_weights=/path/vgg19.npz`.
"""
import ml_collections

from deepjax.configs_lib import load_config, parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = load_config("faceswap_ae", arg)
  args = parse_arg(arg)
  small = "tiny" in args or "seeds" in args
  with c.unlocked():
    c.task = "gan"
    c.model.mask = True
    c.gan = ml_collections.ConfigDict(dict(
        loss=args.get("loss", "lsgan"),      # "lsgan" | "hinge"
        adv_weight=0.1,                      # generator's adversarial term
        raw_weight=0.5,                      # reconstruction of the raw RGB (before the mask)
        mask_l1=0.01,                        # mean(mask): prefer the input where it suffices
        mask_tv=0.1,                         # total variation of the mask: smooth masks
        mask_hull=1.0,                       # cross-entropy to the landmarks' face outline
        mask_init=2.0,                       # initial mask logit bias (sigmoid(2) = 0.88)
        perceptual_weight=0.1,               # used only with vgg_weights
        perceptual_layers=3,                 # relu1_1 .. relu3_1
        vgg_weights=args.get("vgg", ""),     # user-supplied VGG19 .npz; "" = term off
        cycle_weight=float(args.get("cycle", 0.0)),        # A -> B -> A ~ A
        identity_weight=float(args.get("identity", 0.0)),  # A -> A (unwarped) ~ A
        discriminator=ml_collections.ConfigDict(dict(
            features=(32, 64, 128) if small else (64, 128, 256), dtype="float32")),
        disc_optimizer=ml_collections.ConfigDict(dict(
            learning_rate=c.optimizer.learning_rate, b1=0.5, b2=0.999, clip_norm=0.0)),
    ))
  return c
