"""The embedded default: synthetic sunny/night street scenes, small widths.

Sized to train visibly on a 2-core CPU in about ten minutes:

  python -m mguit_jax.main --config configs/demo.py --workdir runs/demo

Arguments: preset=paper|official.
"""

from configs import common


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, preset="paper")
  config = common.base_config(args.preset)
  config.data.name = "synthetic"
  config.data.resize_short = 216
  config.data.crop_size = 216
  config.data.batch_size = 1
  config.data.synthetic.height = 216
  config.data.synthetic.width = 288
  config.data.synthetic.num_train = 200
  config.data.synthetic.num_test = 20
  config.model.content_dim = 48
  config.model.style_dim = 24
  config.model.enc_c_width = 16
  config.model.enc_s_width = 8
  config.model.gen_width = 48
  config.model.dis_width = 8
  config.model.dis_c_width = 32
  config.train.num_steps = 1000   # ~1.6 s per full iteration (1 in 3), ~0.04 s otherwise
  config.train.log_every = 25
  config.train.sample_every = 200
  config.train.checkpoint_every = 200
  # Evaluation sized for a CPU: 20 test scenes, 20 random styles each (IS/CIS), 10 LPIPS pairs.
  config.eval.num_styles = 20
  config.eval.num_pairs = 10
  config.eval.classifier_steps = 200   # sunny vs night separates within a few dozen steps
  return config
