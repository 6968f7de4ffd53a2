"""UNIT (Liu et al., NIPS 2017): a shared latent space through two VAE-GANs.

Preset `official` is the NVlabs code (UNIT's `master` branch, the UNIT trainer of
NVlabs/MUNIT): no weights shared between the domains, MUNIT's blocks, LSGAN, the
edges2shoes yaml's settings. Preset `paper` (the `version_02` branch: shared encoder and
generator layers, BCE discriminators) is not implemented yet. The perceptual (VGG) loss of
some released yamls is not implemented (`vgg_w` 0, as the edges2shoes/summer2winter yamls).
Translation is deterministic: the latent mean of one domain's encoder decoded by the other
domain's decoder.
"""

from __future__ import annotations

import ml_collections

from mguit_jax.methods import nvlabs
from mguit_jax.methods.nvlabs import input_multiple, validate  # noqa: F401
from mguit_jax.methods.unit.inference import (  # noqa: F401
    INFERENCE_NETWORKS, MULTIMODAL, encode_batch, inference_subtree, style_inputs,
    style_shape, translate_batch)
from mguit_jax.methods.unit.trainer import graphdefs, init_state, make_runner  # noqa: F401

SUMMARY = "UNIT (NIPS 2017): shared latent space, two VAE-GANs"
PRESETS = ("official",)
OWN_OUTPUT = "translation"   # translation 0's name in translated files
CONVERTER = "mguit_jax.methods.nvlabs.convert"


def config_fields(preset: str) -> ml_collections.ConfigDict:
  """The released settings (configs/unit_edges2shoes_folder.yaml), full widths."""
  del preset
  c = nvlabs.config_fields()
  c.loss.recon_kl = 0.01             # mean square of the latent mean (the KL with unit std)
  c.loss.recon_x_cyc = 10.0          # L1 cycle reconstruction
  c.loss.recon_kl_cyc = 0.01         # the same KL term of the re-encoded translation
  return c
