"""Shared config pieces: argument parsing and the full-size MGUIT defaults.

Every config file's `get_config(arg)` starts from `base_config(preset, method)` and
overrides what differs. The method (`mguit_jax/methods`) adds the fields only it reads.
Presets (DESIGN §4):

* `paper`: the paper's settings where it is explicit, DRIT's where it defers.
* `official`: the released PyTorch code (what the parity goldens test).
"""

from __future__ import annotations

import ml_collections

from mguit_jax import methods

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


def base_config(preset: str = "paper", method: str = "mguit") -> ml_collections.ConfigDict:
  """Full-size `method` (default MGUIT) on INIT-like data at 360x360, batch 1."""
  if preset not in PRESETS:
    raise ValueError(f"preset={preset!r}: expected one of {PRESETS}")
  official = preset == "official"
  c = ml_collections.ConfigDict()
  c.method = method                  # a name in mguit_jax.methods.METHODS
  c.preset = preset
  c.seed = 0

  # Data: two unpaired domains with boxes; see mguit_jax/data.
  c.data = ml_collections.ConfigDict()
  c.data.name = "synthetic"          # synthetic | init | folders | kitti_cityscapes
  c.data.data_dir = "data/tfds"      # where TFDS datasets are prepared
  c.data.manual_dir = "data/manual"  # raw downloads: <manual_dir>/init, /kitti, /cityscapes
  c.data.domains = "sunny_night"     # <domain A>_<domain B>
  c.data.resize_short = 360
  c.data.crop_size = 360
  c.data.batch_size = 1              # global batch, split over devices
  c.data.num_workers = 0             # grain worker processes (0 = in-process)
  c.data.flip = True
  c.data.test_split = "test"         # split test_images reads (TFDS syntax: train[:100], ...)
  # Real datasets are prepared once from the raw files into data_dir: images resized to
  # this short side (boxes scaled) and stored as png | jpeg (quality 95: lossy, ~5x smaller).
  c.data.storage_short = 360
  c.data.image_format = "png"
  c.data.prepare_workers = -1        # processes preparing images: -1 one per core, 0 in-process
  c.data.strict = False              # True: a skipped image or repaired box is an error
  # Unpaired image folders (only read when name == "folders"): trainA/ trainB/ [testA/ testB/].
  c.data.folders = ml_collections.ConfigDict()
  c.data.folders.path = ""
  # Synthetic street scenes (only read when name == "synthetic").
  c.data.synthetic = ml_collections.ConfigDict()
  c.data.synthetic.height = 360
  c.data.synthetic.width = 480
  c.data.synthetic.num_train = 400   # scenes per domain (different scenes per domain)
  c.data.synthetic.num_test = 50     # paired held-out scenes
  # > 0: each training image gets its own look (warmth and exposure of the light, drawn
  # from [-looks, looks]), a style the scene does not decide; test scenes keep the central one.
  c.data.synthetic.looks = 0.0

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
  c.model.dis_c_depth = 3            # its 7x7 stride-2 convs: 3 needs crops >= 212 px, 2 >= 100
  c.model.noise_std = 0.1            # generator input noise (training only)
  c.model.init_std = 0.02 if official else 0.001
  # Mixed precision: with "bfloat16" every conv multiplies in bf16 (accumulating in float32);
  # parameters, optimiser states, memory, norms and losses stay float32.
  c.model.compute_dtype = "float32"
  # Rematerialisation: networks (comma-separated, or "all") whose activations are recomputed
  # in the backward pass instead of kept: all of them ("nothing_saveable") or all but each
  # conv's output ("conv_outputs").
  c.model.remat = ""
  c.model.remat_policy = "conv_outputs"

  # Object classes: memory items per class (background, car, sign, person). Every method
  # reads the number of classes (the data's masks); the memory's own fields come from the
  # method (mguit_jax/methods/<method>.py, `config_fields`).
  c.memory = ml_collections.ConfigDict()
  c.memory.sizes = (10, 5, 2, 3)

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
  # True: the latent regression also trains the style encoder (MUNIT's style reconstruction);
  # False: only the generator, as DRIT.
  c.loss.latent_regression_trains_style_encoder = False

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
  # Run each d_iter cycle (content-D-only iterations and the full one) as one jitted program
  # instead of d_iter host dispatches; same results (cycles that a log, sample, checkpoint or
  # evaluation step would split run unfused).
  c.train.fused_schedule = False
  c.train.num_devices = 0            # data-parallel devices: 0 = all, n = the first n
  c.train.log_every = 100
  c.train.sample_every = 2000
  c.train.checkpoint_every = 5000
  c.train.max_to_keep = 3
  c.train.num_samples = 4            # images in each sample grid
  # Metrics of mguit_jax.evaluate run on the live state (comma-separated, e.g. "paired,cycle";
  # empty: none) every eval_every steps (0: only at the end).
  c.train.eval_metrics = ""
  c.train.eval_every = 0

  # Evaluation (mguit_jax/evaluate.py, protocol of the paper's section 4; MUNIT's counts).
  c.eval = ml_collections.ConfigDict()
  c.eval.num_inputs = 100            # test inputs per direction (fewer if the test split is smaller)
  c.eval.num_pairs = 19              # LPIPS diversity: random-style output pairs per input
  c.eval.num_styles = 100            # IS/CIS: random-style outputs per input
  c.eval.batch_size = 8              # test inputs per translation call
  c.eval.metric_batch_size = 32      # images per Inception / LPIPS call
  c.eval.seed = 0                    # random styles
  c.eval.inception_size = 299        # Inception-v3 input resolution (299 = standard FID)
  c.eval.weights_dir = "data/weights"  # FID Inception weights: the .pth to provide, .npz caches
  c.eval.classifier = ""             # domain classifier .npz of mguit_jax.train_classifier
  # Domain classifier fine-tuning (python -m mguit_jax.train_classifier).
  c.eval.classifier_steps = 2000
  c.eval.classifier_batch_size = 16  # images per step, half from each domain
  c.eval.classifier_lr = 1e-3
  c.eval.classifier_finetune = "head"  # head (new layer only) | all (whole network)
  c.eval.classifier_log_every = 50
  return methods.configure(c, method)
