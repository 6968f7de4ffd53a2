"""Shared config pieces: argument parsing and the full-size MGUIT defaults.

Every config file's `get_config(arg)` starts from `base_config(preset)` and
overrides what differs. Presets (DESIGN §4):

* `paper`: the paper's settings where it is explicit, DRIT's where it defers.
* `official`: the released PyTorch code (what the parity goldens test).
"""

from __future__ import annotations

import ml_collections

PRESETS = ("paper", "official")


def parse_arg(arg: str | None, **defaults):
  """Parses "k1=v1,k2=v2" into a ConfigDict, typed after `defaults`.

  Unknown keys raise, so a typo in `--config configs/x.py:prest=paper` is caught.
  """
  parsed = ml_collections.ConfigDict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, sep, value = item.partition("=")
    if not sep:
      raise ValueError(f"config argument {item!r}: expected key=value")
    if key not in defaults:
      raise ValueError(
          f"config argument {key!r} is unknown; expected one of {sorted(defaults)}")
    default = defaults[key]
    if isinstance(default, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"config argument {key}={value!r}: expected true/false")
      parsed[key] = value.lower() in ("true", "1")
    else:
      parsed[key] = type(default)(value)
  return parsed


def base_config(preset: str = "paper") -> ml_collections.ConfigDict:
  """Full-size MGUIT on INIT-like data at 360x360, batch 1."""
  if preset not in PRESETS:
    raise ValueError(f"preset={preset!r}: expected one of {PRESETS}")
  official = preset == "official"
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0

  # Data: two unpaired domains with boxes; see mguit_jax/data.
  c.data = ml_collections.ConfigDict()
  c.data.name = "synthetic"          # synthetic | init
  c.data.data_dir = "data/tfds"      # where TFDS datasets are prepared
  c.data.manual_dir = "data/manual"  # where manually downloaded archives live
  c.data.domains = "sunny_night"     # <domain A>_<domain B>
  c.data.resize_short = 360
  c.data.crop_size = 360
  c.data.batch_size = 1              # global batch, split over devices
  c.data.num_workers = 0             # grain worker processes (0 = in-process)
  c.data.flip = True
  # Synthetic street scenes (only read when name == "synthetic").
  c.data.synthetic = ml_collections.ConfigDict()
  c.data.synthetic.height = 360
  c.data.synthetic.width = 480
  c.data.synthetic.num_train = 400   # scenes per domain (different scenes per domain)
  c.data.synthetic.num_test = 50     # paired held-out scenes

  # Networks (DESIGN §2). Widths are the official ones.
  c.model = ml_collections.ConfigDict()
  c.model.content_dim = 256          # content channels = memory key dim (kdim)
  c.model.style_dim = 128 if official else 256  # style channels = value dim (vdim)
  c.model.enc_c_width = 64           # content encoder base width
  c.model.enc_s_width = 64           # style encoder base width
  c.model.gen_width = 256            # generator trunk width
  c.model.dis_width = 64             # domain discriminator base width
  c.model.dis_scales = 3
  c.model.dis_norm = "none"          # none (as the released code runs) | instance
  c.model.dis_c_width = 256          # content discriminator width
  c.model.noise_std = 0.1            # generator input noise (training only)
  c.model.init_std = 0.02 if official else 0.001

  # Class-aware key-value memory (DESIGN §3).
  c.memory = ml_collections.ConfigDict()
  c.memory.sizes = (10, 5, 2, 3)     # items per class: background, car, sign, person
  c.memory.update_rule = "official" if official else "paper"   # paper | official
  c.memory.loss = "official" if official else "contrastive"    # contrastive | triplet | official
  c.memory.temperature = 0.1         # tau of the contrastive loss (eq. 8)
  c.memory.triplet_margin = 1.0
  c.memory.class_aware = True        # False: one memory for all pixels (the ablation)

  # Loss weights.
  c.loss = ml_collections.ConfigDict()
  c.loss.self_recon = 10.0
  c.loss.cross_cycle = 50.0 if official else 10.0
  c.loss.domain_adv = 1.0
  c.loss.content_adv = 1.0
  c.loss.style_l2 = 0.01
  c.loss.content_l2 = 0.01
  c.loss.content_consistency = 1.0
  c.loss.latent_regression = 0.0 if official else 10.0
  c.loss.memory_key = 1.0            # weights of the memory losses (official: 0.1 sits inside each term)
  c.loss.memory_value = 1.0 if official else 0.5

  # Optimisers (Adam with coupled L2 weight decay, as torch.optim.Adam).
  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-4
  c.optim.b1 = 0.5 if official else 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.weight_decay = 1e-4
  c.optim.dis_c_lr_scale = 1 / 2.5
  c.optim.dis_c_clip_norm = 5.0
  # Learning rate: constant for `decay_start` steps, then linear to zero at train.num_steps.
  c.optim.decay_start = 0.5          # fraction of train.num_steps

  # Training loop.
  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 1_000_000      # iterations (each is full or content-D-only)
  c.train.d_iter = 3                 # every d_iter-th iteration is a full one
  c.train.num_devices = 0            # data-parallel devices: 0 = all, n = the first n
  c.train.log_every = 100
  c.train.sample_every = 2000
  c.train.checkpoint_every = 5000
  c.train.max_to_keep = 3
  c.train.num_samples = 4            # images in each sample grid
  return c
