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

from mguit_jax.methods.unit.inference import (  # noqa: F401
    INFERENCE_NETWORKS, MULTIMODAL, encode_batch, inference_subtree, input_multiple,
    style_inputs, style_shape, translate_batch, validate)
from mguit_jax.methods.unit.trainer import Runner as make_runner  # noqa: F401
from mguit_jax.methods.unit.trainer import graphdefs, init_state  # noqa: F401

SUMMARY = "UNIT (NIPS 2017): shared latent space, two VAE-GANs"
CONVERTER = None
PRESETS = ("official",)


def config_fields(preset: str) -> ml_collections.ConfigDict:
  """The released settings (configs/unit_edges2shoes_folder.yaml), full widths."""
  del preset
  c = ml_collections.ConfigDict()
  c.model = ml_collections.ConfigDict()
  c.model.gen_dim = 64               # encoder stem width, doubled by each downsampling
  c.model.gen_n_downsample = 2
  c.model.gen_n_res = 4              # residual blocks in the encoder and in the decoder
  c.model.gen_activation = "relu"
  c.model.gen_pad_type = "reflect"   # reflect | zero
  c.model.gen_init = "kaiming"       # kaiming | gaussian (N(0, 0.02))
  c.model.dis_dim = 64
  c.model.dis_n_layer = 4            # 4x4 stride-2 convs per scale
  c.model.dis_num_scales = 3
  c.model.dis_norm = "none"          # none | in | ln
  c.model.dis_activation = "lrelu"
  c.model.dis_pad_type = "reflect"
  c.model.dis_init = "gaussian"
  c.loss = ml_collections.ConfigDict()
  c.loss.gan = 1.0                   # LSGAN, both domains
  c.loss.recon_x = 10.0              # L1 self-reconstruction
  c.loss.recon_kl = 0.01             # mean square of the latent mean (the KL with unit std)
  c.loss.recon_x_cyc = 10.0          # L1 cycle reconstruction
  c.loss.recon_kl_cyc = 0.01         # the same KL term of the re-encoded translation
  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-4
  c.optim.b1 = 0.5
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.weight_decay = 1e-4        # coupled L2, as torch.optim.Adam
  c.optim.step_size = 100_000        # lr x gamma every step_size iterations
  c.optim.gamma = 0.5
  return c
