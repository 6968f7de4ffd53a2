"""Tiny widths for tests: the reduced widths of the parity goldens (216x216 images for
MGUIT, 64x64 for UNIT and MUNIT).

  python -m mguit_jax.main --config configs/tiny.py --workdir /tmp/tiny

216 px is the smallest crop the official content discriminator accepts
(three stride-2 7x7 convs and a 4x4 conv on the 1/4-resolution content map).
"""

from configs import common
from mguit_jax import methods


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, preset="", method="mguit")
  # The released code's settings where the method has them (the parity goldens').
  official = "official" in methods.get(args.method).PRESETS
  config = common.base_config(args.preset or ("official" if official else ""), args.method)
  config.data.name = "synthetic"
  config.data.resize_short = 216
  config.data.crop_size = 216
  config.data.batch_size = 2
  config.data.synthetic.height = 216
  config.data.synthetic.width = 256
  config.data.synthetic.num_train = 8
  config.data.synthetic.num_test = 4
  if args.method in ("unit", "munit", "init"):   # their goldens' widths, at their 64 px
    config.model.update(gen_dim=8, gen_n_res=2, dis_dim=8)
    if args.method in ("munit", "init"):
      config.model.update(style_dim=4, mlp_dim=16)
    config.data.resize_short = config.data.crop_size = 64
    if args.method == "init":
      config.objects.size = 64   # the least the discriminators accept
  else:
    config.model.update(content_dim=32, style_dim=16, enc_c_width=8, enc_s_width=8,
                        gen_width=32, dis_width=8, dis_c_width=32)
  config.train.num_steps = 6
  config.train.log_every = 2
  config.train.sample_every = 3
  config.train.checkpoint_every = 3
  config.train.num_samples = 2
  return config
