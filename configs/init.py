"""MGUIT on INIT at the paper's setting: 360x360 crops, batch 1, memory (10,5,2,3).

  python -m mguit_jax.main --config configs/init.py:domains=sunny_night,preset=paper \
      --workdir runs/init_sunny_night

Arguments: method=mguit|drit|unit|munit|init (mguit_jax/methods), preset=paper|official
(default: the method's first; paper for MGUIT), domains=<a>_<b> (sunny_night, sunny_rainy,
sunny_cloudy; the reverse direction comes from the same model).

The raw INIT files are expected in config.data.manual_dir/init (data/manual/init); the
first run prepares the two domains into config.data.data_dir/init (short side
config.data.storage_short = 360, 85%/15% train/test), one process per CPU core.
"""

from configs import common


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, preset="", domains="sunny_night", method="mguit")
  config = common.base_config(args.preset, args.method)
  config.data.name = "init"
  config.data.domains = args.domains
  config.train.num_steps = 60 * 14_000  # ~60 epochs of the sunny split at batch 1
  return config
