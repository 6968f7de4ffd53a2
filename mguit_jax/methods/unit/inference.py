"""UNIT at test time: x_ab = gen_b.decode(gen_a.encode(x_a)), the latent mean, no noise."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from mguit_jax import train_state as ts
from mguit_jax.data import pipeline

MULTIMODAL = False
INFERENCE_NETWORKS = ("gen_a", "gen_b")


def inference_subtree(tree) -> dict:
  return {"params": {k: tree["params"][k] for k in INFERENCE_NETWORKS}}


def style_shape(inference) -> tuple[int, ...]:
  del inference
  return (0,)   # no style input: each image translates one way


def style_inputs(inference, target: str, num_styles: int, seed: int, *, config) -> np.ndarray:
  del inference, target, seed, config
  assert num_styles == 0, "UNIT has no random styles"
  return np.zeros((1, 0), np.float32)


def translate_batch(inference, images, values, *, defs, direction, config):
  """uint8 [B, H, W, 3] -> [B, S, H, W, 3] in [-1, 1], the one translation repeated S times
  (S = len(values), 1)."""
  del config
  nets = ts.merge(defs, inference["params"])
  out = nets[f"gen_{direction[2]}"].decode(
      nets[f"gen_{direction[0]}"].encode(pipeline.normalize(images)))
  return jnp.broadcast_to(out[:, None], (out.shape[0], values.shape[0]) + out.shape[1:])


def encode_batch(inference, images, *, defs, domain):
  """uint8 [B, H, W, 3] -> the shared latent's mean [B, H/m, W/m, C]."""
  return ts.merge(defs, inference["params"])[f"gen_{domain}"].encode(pipeline.normalize(images))
