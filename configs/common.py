"""Shared config pieces: argument parsing and the full-size defaults.

Every config file's `get_config(arg)` starts from `base_config(preset, method)` and
overrides what differs. Data, training loop and evaluation are shared; the method
(`mguit_jax/methods/`, its `config_fields`) adds its networks, losses and optimiser.
Presets (DESIGN §4):

* `paper`: the method's paper where it is explicit (for MGUIT, DRIT's where it defers).
* `official`: the method's released PyTorch code (what the parity goldens test).
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


def base_config(preset: str = "", method: str = "mguit") -> ml_collections.ConfigDict:
  """Full-size `method` on INIT-like data at 360x360, batch 1. An empty `preset` is the
  method's first (`paper` where it has one)."""
  preset = preset or methods.get(method).PRESETS[0]
  if preset not in PRESETS:
    raise ValueError(f"preset={preset!r}: expected one of {PRESETS}")
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

  # Training loop.
  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 1_000_000      # iterations (what one is, is the method's)
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
