"""MUNIT at test time: the source's content decoded with a style code of the target domain.

Style inputs are style codes [S, style_dim]: index 0 is the prior's mean (the zero code, one
typical rendering), 1.. random codes drawn from the N(0, 1) prior, as MUNIT samples.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mguit_jax import train_state as ts
from mguit_jax.data import pipeline

MULTIMODAL = True
INFERENCE_NETWORKS = ("gen_a", "gen_b")


def inference_subtree(tree) -> dict:
  return {"params": {k: tree["params"][k] for k in INFERENCE_NETWORKS}}


def style_shape(inference) -> tuple[int, ...]:
  kernel = inference["params"]["gen_a"]["enc_style"]["out"]["conv"]["kernel"]
  return (kernel.shape[-1],)


def style_inputs(inference, target: str, num_styles: int, seed: int, *, config) -> np.ndarray:
  """[1 + num_styles, style_dim]: the zero code, then N(0, 1) codes (k: fold_in(seed, k))."""
  del target, config
  shape, key = style_shape(inference), jax.random.key(seed)
  draws = [np.asarray(jax.random.normal(jax.random.fold_in(key, k), shape, jnp.float32))
           for k in range(1, num_styles + 1)]
  return np.stack([np.zeros(shape, np.float32), *draws])


def translate_batch(inference, images, values, *, defs, direction, config):
  """uint8 [B, H, W, 3], style codes [S, style_dim] -> [B, S, H, W, 3] in [-1, 1]; the
  content is encoded once, the decoder runs once per style."""
  del config
  nets = ts.merge(defs, inference["params"])
  content = nets[f"gen_{direction[0]}"].enc_content(pipeline.normalize(images))
  decode = nets[f"gen_{direction[2]}"].decode
  b = content.shape[0]

  def generate(code):
    return decode(content, jnp.broadcast_to(code, (b, 1, 1, code.shape[-1])))

  return jnp.moveaxis(jax.lax.map(generate, values), 0, 1)


def encode_batch(inference, images, *, defs, domain):
  """uint8 [B, H, W, 3] -> content codes [B, H/m, W/m, C]."""
  return ts.merge(defs, inference["params"])[f"gen_{domain}"].enc_content(
      pipeline.normalize(images))
