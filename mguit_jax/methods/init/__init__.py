"""INIT (Shen et al., CVPR 2019): MUNIT plus an object branch trained on box crops.

No code of INIT is public. At test time INIT is MUNIT ("we simply use the global branch"),
so translation, inference and the official-checkpoint files are MUNIT's (the generators
export as NVlabs `gen_*.pt`). In training, crops of the annotated objects go through the
same generators (the paper shares the encoders' parameters), with their own random style
codes, losses and (by default shared) discriminators; `trainer.py` lists the terms.

The paper leaves several choices unstated; each is a config field below, with the value
chosen here and why. With every object weight at 0 the iteration is MUNIT's, exactly
(tested).
"""

from __future__ import annotations

import ml_collections

from mguit_jax.methods import munit
from mguit_jax.methods import nvlabs
from mguit_jax.methods.init.trainer import graphdefs, init_state, make_runner  # noqa: F401
from mguit_jax.methods.munit.inference import (  # noqa: F401
    INFERENCE_NETWORKS, MULTIMODAL, encode_batch, inference_subtree, style_inputs,
    style_shape, translate_batch)
from mguit_jax.methods.nvlabs import input_multiple

SUMMARY = "INIT (CVPR 2019): MUNIT with an object branch on box crops (MUNIT at test time)"
PRESETS = ("paper",)
OWN_OUTPUT = munit.OWN_OUTPUT
CONVERTER = munit.CONVERTER
OBJECT_DIS = ("shared", "separate")


def config_fields(preset: str) -> ml_collections.ConfigDict:
  """MUNIT's released settings (INIT is built on that code) plus the object branch."""
  del preset
  c = munit.config_fields("official")
  # The paper compares discriminators shared between images and objects ("INIT w/ D_s")
  # with separate ones per domain (dis_obj_a, dis_obj_b) and finds shared better.
  c.model.object_dis = "shared"      # shared | separate
  c.objects = ml_collections.ConfigDict()
  # Unstated: objects per image per iteration. One keeps the branch's cost near a ninth of
  # the global pass at the paper's sizes; boxes are drawn at random each time.
  c.objects.num = 1
  c.objects.size = 120               # crops resized to size x size (the paper: 120 at 360)
  # Unstated: which boxes are used. Those whose shorter side (after the image's resize and
  # crop) is at least this fraction of objects.size, i.e. upscaled at most 4x.
  c.objects.min_fraction = 0.25
  # Unstated: the weights of eq. 4's instance terms. Equal to the global ones (MUNIT's),
  # as eq. 4 gives both levels the same form.
  c.loss.obj_gan = 1.0               # LSGAN on objects translated with random styles
  c.loss.obj_recon_x = 10.0          # L1 object self-reconstruction (eq. 1)
  c.loss.obj_recon_c = 1.0           # L1 content of a translated object vs the object's
  c.loss.obj_recon_s = 1.0           # L1 random style vs its re-encoding from the object
  # Eq. 2, cross-granularity: an object decoded with its image's (global) style; its
  # re-encoded content and style against the object's content and the image's style.
  c.loss.granularity = 1.0
  return c


def validate(config) -> None:
  """MUNIT's checks, and object crops the networks and discriminators accept."""
  nvlabs.validate(config)
  o, multiple = config.objects, input_multiple(config)
  least = 2 ** (config.model.dis_n_layer + config.model.dis_num_scales - 1)
  if o.size % multiple or o.size < least:
    raise ValueError(f"config.objects.size={o.size}: method 'init' needs a multiple of "
                     f"{multiple} (2^model.gen_n_downsample) of at least {least} (the "
                     "discriminator's coarsest scale)")
  if o.num < 1:
    raise ValueError(f"config.objects.num={o.num}: expected at least 1 object per image")
  if not 0 < o.min_fraction <= 1:
    raise ValueError(f"config.objects.min_fraction={o.min_fraction}: expected a value in "
                     "(0, 1]")
  if config.model.object_dis not in OBJECT_DIS:
    raise ValueError(f"config.model.object_dis={config.model.object_dis!r}: expected one of "
                     f"{OBJECT_DIS}")
