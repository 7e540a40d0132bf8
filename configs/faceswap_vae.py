"""Face-swap VAE: the faceswap_ae config with a variational latent and a KL term.

Same arguments as configs/faceswap_ae.py (`tiny`, `seeds`, `original`, `res128`,
`batch=`, `steps=`, `res=`), plus `beta=` (KL weight) and `warmup=` (KL warm-up
steps). Example: `--config=configs/faceswap_vae.py:tiny,beta=0.5`.
"""
import ml_collections

from deepjax.configs_lib import load_config, parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  base = load_config("faceswap_ae", arg)
  args = parse_arg(arg)
  with base.unlocked():
    base.task = "vae"
    base.model.variational = True
    base.vae = ml_collections.ConfigDict(dict(
        # loss += beta(step) * mean KL / (S*S*3); beta rises linearly over warmup_steps.
        beta=float(args.get("beta", 1.0)),
        warmup_steps=int(args.get("warmup", max(1, base.num_steps // 5)))))
  return base
