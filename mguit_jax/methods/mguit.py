"""MGUIT: styles read from the class-aware key-value memory (`mguit_jax.memory`).

Training reads each pixel's style from its class's items (the update, reads and memory
losses of `memory.train_forward`); the cycle pass reads the updated memory class-wise
without updating it; at test time every pixel reads over all N items (no masks needed).
Random styles are random memory values, distributed as the update rule stores values.
"""

from __future__ import annotations

from typing import Any

import jax

from mguit_jax import memory as memory_lib
from mguit_jax.models import layers

SUMMARY = "MGUIT (CVPR 2021): class-aware key-value memory of local styles"
CONVERTER = "mguit_jax.convert"
SELF_RECON_STYLES = ("memory", "encoder")


def config_fields(preset: str) -> dict[str, Any]:
  """The memory's and its losses' fields (DESIGN §3), defaults of `preset`."""
  official = preset == "official"
  return {
      "memory.update_rule": "official" if official else "paper",   # paper | official
      "memory.loss": "official" if official else "contrastive",    # contrastive | triplet | official
      "memory.temperature": 0.1,         # tau of the contrastive loss (eq. 8)
      # Cosines are divided by this in the read (eq. 2) and update (eq. 5) softmaxes. 1 = as
      # printed, which makes every read near-uniform and every class's keys one vector
      # (README, "Training notes"); the paper preset uses the contrastive loss's tau.
      "memory.attention_temperature": 1.0 if official else 0.1,
      # paper rule: each pixel updates only its most similar item of its class (as the memory
      # of Park et al. that eqs. 5-6 follow, and the released code); False = every item.
      "memory.update_nearest": not official,
      "memory.triplet_margin": 1.0,
      # Items the contrastive/triplet loss compares a pixel with: its class's ("class") or all
      # N ("all", eq. 8's sum over n = 1..N); the positive is always the nearest of its class.
      "memory.loss_items": "class",
      "memory.class_aware": True,        # False: one memory for all pixels (the ablation)
      # Regress per-pixel directions: the re-encoded style is L2-normalised, as the paper
      # rule's stored and random values are (eq. 6). False = raw style maps, as printed, whose
      # norm the value loss drives far from the unit random reads.
      "loss.latent_regression_unit": not official,
      # Style of the self-reconstruction G^x(c^x, s): "memory" = the style read from the
      # memory (eq. 7, as released); "encoder" = the image's own style map, rescaled as stored
      # values are (DRIT's self-reconstruction), a per-image signal for the generator.
      "loss.self_recon_style": "memory",
      # Weights of the memory losses (official: 0.1 sits inside each term).
      "loss.memory_key": 1.0,
      "loss.memory_value": 1.0 if official else 0.5,
  }


def random_values(key, shape, config) -> jax.Array:
  return memory_lib.random_values(key, shape, config.memory)


def train_forward(memory, c_a, c_b, s_a, s_b, masks_a, masks_b, rand_a, rand_b, *, config):
  return memory_lib.train_forward(memory, c_a, c_b, s_a, s_b, masks_a, masks_b, rand_a, rand_b,
                                  config=config.memory, sizes=tuple(config.memory.sizes))


def self_recon_styles(reads, s_a, s_b, *, config):
  choice = config.loss.self_recon_style
  if choice not in SELF_RECON_STYLES:
    raise ValueError(f"config.loss.self_recon_style={choice!r}: expected one of "
                     f"{SELF_RECON_STYLES}")
  if choice == "encoder":
    return (memory_lib.as_stored_value(s_a, config.memory),
            memory_lib.as_stored_value(s_b, config.memory))
  return reads["sty_aa"], reads["sty_bb"]


def cycle_styles(memory, nets, fwd, c_ab, c_ba, batch, *, config):
  """The translations' contents read class-wise from the updated memory (no update)."""
  del nets, fwd
  m = config.memory
  read = lambda values, content, masks: memory_lib.read_class_aware(
      memory.keys, values, content, masks, sizes=tuple(m.sizes), class_aware=m.class_aware,
      temperature=m.attention_temperature)
  return (read(memory.values_a, c_ab, batch["a"]["masks"]),
          read(memory.values_b, c_ba, batch["b"]["masks"]))


def regressed_style(enc_s, *, config):
  if config.loss.latent_regression_unit:
    return lambda x, d: layers.l2_normalize(enc_s(x, d))
  return enc_s


def health(memory, fwd, batch, *, config):
  return memory_lib.health(memory, fwd["c_a"], fwd["c_b"], fwd["s_a"], fwd["s_b"],
                           batch["a"]["masks"], batch["b"]["masks"], config=config.memory,
                           sizes=tuple(config.memory.sizes))


def test_style(memory, content, values, *, config):
  """The class-agnostic read over all N items of `values` (the paper's test-time read)."""
  return memory_lib.read_all(memory.keys, values, content, config.memory.attention_temperature)
