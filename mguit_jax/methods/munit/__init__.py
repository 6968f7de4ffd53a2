"""MUNIT (Huang et al., ECCV 2018): content codes shared across domains, style codes per
domain, AdaIN decoders (the NVlabs code, preset `official`; INIT builds on it).

Configuration as the released edges2shoes/edges2handbags yamls; the perceptual (VGG) loss
is not implemented (`vgg_w` 0 there). At test time a translation is the source's content
decoded with a style code: the zero code (index 0) or random N(0, 1) codes.
"""

from __future__ import annotations

import ml_collections

from mguit_jax.methods import nvlabs
from mguit_jax.methods.munit.inference import (  # noqa: F401
    INFERENCE_NETWORKS, MULTIMODAL, encode_batch, inference_subtree, style_inputs,
    style_shape, translate_batch)
from mguit_jax.methods.munit.trainer import graphdefs, init_state, make_runner  # noqa: F401
from mguit_jax.methods.nvlabs import input_multiple, validate  # noqa: F401

SUMMARY = "MUNIT (ECCV 2018): shared content, per-domain style codes, AdaIN decoders"
PRESETS = ("official",)
OWN_OUTPUT = "zero_style"   # translation 0's name in translated files
CONVERTER = "mguit_jax.methods.nvlabs.convert"


def config_fields(preset: str) -> ml_collections.ConfigDict:
  """The released settings (configs/edges2shoes_folder.yaml), full widths."""
  del preset
  c = nvlabs.config_fields()
  c.model.style_dim = 8              # style code length
  c.model.mlp_dim = 256              # hidden width of the MLP to the AdaIN parameters
  c.loss.recon_s = 1.0               # L1 between a random style and its re-encoding
  c.loss.recon_c = 1.0               # L1 between a content and its re-encoding
  c.loss.recon_x_cyc = 0.0           # L1 cycle reconstruction (0 in the released yamls)
  return c
