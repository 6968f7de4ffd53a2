"""The memory ablation (paper Table 4) on the synthetic scenes, sized for a CPU.

  python -m mguit_jax.ablations --config configs/ablation.py --workdir runs/ablations \
      --seeds 0,1,2

The demo (configs/demo.py: 96 px crops, reduced widths, 6,000 iterations, 2,000 of them
full; the learning rate decays linearly over the last half) with the preset's objective (no
mode-seeking term: the ablation is of the paper's method), with 50 held-out scenes whose
paired and cycle error is evaluated every 750 iterations for the curves.

Arguments: method=mguit|drit|unit|munit|init (mguit_jax/methods), preset=paper|official
(default: the method's first; paper for MGUIT).
"""

from configs import demo


def get_config(arg: str | None = None):
  config = demo.get_config(arg)
  if "mode_seeking" in config.loss:
    config.loss.mode_seeking = 0.0
  config.data.synthetic.num_test = 50
  config.train.log_every = 50
  config.train.sample_every = 1500
  config.train.checkpoint_every = 1500
  config.train.max_to_keep = 1
  config.train.eval_metrics = "paired,cycle"
  config.train.eval_every = 750
  config.eval.num_inputs = 50
  return config
