"""The demo at the parity goldens' reduced widths, for tests: 216x216 crops for MGUIT and
drit (with the released content discriminator's depth), 64x64 for UNIT, MUNIT and INIT,
eight scenes per domain, six iterations.

  python -m mguit_jax.main --config configs/tiny.py --workdir /tmp/tiny

216 px is the smallest crop the official content discriminator accepts (three stride-2 7x7
convs and a 4x4 conv on the 1/4-resolution content map). The preset defaults to `official`
where the method has one (the goldens'), else to the method's own.
"""

from configs import common
from configs import demo
from mguit_jax import methods


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, preset="", method="mguit")
  method = methods.get(args.method)
  preset = args.preset or ("official" if "official" in method.PRESETS else method.PRESETS[0])
  config = demo.get_config(f"method={args.method},preset={preset}")
  config.data.batch_size = 2
  config.data.synthetic.update(height=216, width=256, num_train=8, num_test=4)
  if args.method in ("unit", "munit", "init"):
    config.model.update(gen_dim=8, dis_dim=8, dis_n_layer=4)
    if args.method in ("munit", "init"):
      config.model.update(style_dim=4, mlp_dim=16)
    if args.method == "init":
      config.objects.size = 64   # the least the discriminators accept
    size = 64
  else:
    config.model.update(content_dim=32, style_dim=16, enc_c_width=8, gen_width=32,
                        dis_c_depth=3, init_std=method.config_fields(preset).model.init_std)
    config.loss.mode_seeking = 0.0   # the preset's objective, as the goldens'
    size = 216
  config.data.resize_short = config.data.crop_size = size
  config.train.update(num_steps=6, log_every=2, sample_every=3, checkpoint_every=3,
                      num_samples=2, eval_metrics="")
  return config
