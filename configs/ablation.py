"""The memory ablation (paper Table 4) on the synthetic scenes, sized for a CPU.

  python -m mguit_jax.ablations --config configs/ablation.py --workdir runs/ablations \
      --seeds 0,1,2

The demo's model and settings (configs/demo.py) on 96 px crops of scenes resized to a short
side of 96 (the content discriminator one more stride-2 layer shallower), 6,000 iterations
(2,000 full ones; the learning rate decays linearly over the last half), paired and cycle
error of the 50 held-out scenes evaluated every 750 iterations for the curves.

Arguments: preset=paper|official.
"""

from configs import demo


def get_config(arg: str | None = None):
  config = demo.get_config(arg)
  config.data.resize_short = 96
  config.data.crop_size = 96
  config.data.synthetic.num_test = 50
  config.model.dis_c_depth = 1
  config.train.num_steps = 6000
  config.train.sample_every = 1500
  config.train.checkpoint_every = 1500
  config.train.max_to_keep = 1
  config.train.eval_metrics = "paired,cycle"
  config.train.eval_every = 750
  config.eval.num_inputs = 50
  return config
