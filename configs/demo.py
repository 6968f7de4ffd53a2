"""The embedded default: synthetic sunny/night street scenes, small widths and crops.

Sized to translate visibly on a 2-core CPU in about ten minutes, set-up included:

  python -m mguit_jax.main --config configs/demo.py --workdir runs/demo

Arguments: preset=paper|official (the preset's method; the choices below are the demo's),
method=mguit|drit (mguit_jax/methods).

The demo departs from the preset only where ten minutes of CPU demand it: 96 px crops of
scenes resized to a short side of 96 (the content discriminator two stride-2 layers
shallower, as 24 px content maps need), reduced widths, 6,000 iterations (2,000 full ones)
with the learning rate decayed linearly over the last half, and weights initialised N(0, 0.02)
(the released code's and DRIT's init) instead of the paper's N(0, 0.001), with which the
first thousand iterations mostly grow the weights (README, "Training notes"). At the end it
evaluates the held-out paired scenes (paired and cycle PSNR; `eval_<step>.md`).
"""

from configs import common


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, preset="paper", method="mguit")
  config = common.base_config(args.preset, args.method)
  config.data.name = "synthetic"
  config.data.resize_short = 96
  config.data.crop_size = 96
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
  config.model.dis_c_depth = 1
  config.model.init_std = 0.02
  config.train.num_steps = 6000   # ~0.25 s per full iteration (1 in 3), ~0.02 s otherwise
  config.train.log_every = 100
  config.train.sample_every = 1000
  config.train.checkpoint_every = 1000
  config.train.eval_metrics = "paired,cycle"
  # Evaluation sized for a CPU: 20 test scenes, 20 random styles each (IS/CIS), 10 LPIPS pairs.
  config.eval.num_styles = 20
  config.eval.num_pairs = 10
  config.eval.classifier_steps = 200   # sunny vs night separates within a few dozen steps
  return config
