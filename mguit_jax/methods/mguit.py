"""MGUIT: styles read from the class-aware key-value memory (`mguit_jax.memory`).

Training reads each pixel's style from its class's items (the update, reads and memory
losses of `memory.train_forward`); the cycle pass reads the updated memory class-wise
without updating it; at test time every pixel reads over all N items (no masks needed).
Random styles are random memory values, distributed as the update rule stores values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mguit_jax import memory as memory_lib
from mguit_jax import methods, steps
from mguit_jax import train_state as ts
from mguit_jax.data import pipeline
from mguit_jax.models import discriminators, layers

SUMMARY = "MGUIT (CVPR 2021): class-aware key-value memory of local styles"
PRESETS = ("paper", "official")
OWN_OUTPUT = "memory"   # translation 0's name in translated files
CONVERTER = "mguit_jax.convert"
SELF_RECON_STYLES = ("memory", "encoder")
MULTIMODAL = True
INFERENCE_NETWORKS = ("enc_c", "gen")


def network_fields(preset: str) -> ml_collections.ConfigDict:
  """What MGUIT shares with the no-memory baseline: networks, losses, optimisers, schedule."""
  official = preset == "official"
  c = ml_collections.ConfigDict()
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

  # Object classes: memory items per class (background, car, sign, person); the data's
  # class masks have one channel per class.
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
  # Mode seeking (DRIT++'s, Mao et al. 2019; in neither the paper nor the released code): a
  # second random style renders each translation again with the same noise, and the weight
  # times 1 / (mean |image difference| / mean |style difference| + 1e-5) is added. 0 = off.
  c.loss.mode_seeking = 0.0

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

  c.train = ml_collections.ConfigDict()
  c.train.d_iter = 3                 # every d_iter-th iteration is a full one
  # Run each d_iter cycle (content-D-only iterations and the full one) as one jitted program
  # instead of d_iter host dispatches; same results (cycles that a log, sample, checkpoint or
  # evaluation step would split run unfused).
  c.train.fused_schedule = False
  return c


def config_fields(preset: str) -> ml_collections.ConfigDict:
  """`network_fields` and the memory's and its losses' fields (DESIGN §3)."""
  official = preset == "official"
  c = network_fields(preset)
  c.memory.update_rule = "official" if official else "paper"   # paper | official
  c.memory.loss = "official" if official else "contrastive"    # contrastive | triplet | official
  c.memory.temperature = 0.1         # tau of the contrastive loss (eq. 8)
  # Cosines are divided by this in the read (eq. 2) and update (eq. 5) softmaxes. 1 = as
  # printed, which makes every read near-uniform and every class's keys one vector (README,
  # "Training notes"); the paper preset uses the contrastive loss's tau.
  c.memory.attention_temperature = 1.0 if official else 0.1
  # paper rule: each pixel updates only its most similar item of its class (as the memory of
  # Park et al. that eqs. 5-6 follow, and the released code); False = every item, as printed.
  c.memory.update_nearest = not official
  c.memory.triplet_margin = 1.0
  # Items the contrastive/triplet loss compares a pixel with: its class's ("class") or all N
  # ("all", eq. 8's sum over n = 1..N); the positive is always the nearest item of its class.
  c.memory.loss_items = "class"
  c.memory.class_aware = True        # False: one memory for all pixels (the ablation)
  # Regress per-pixel directions: the re-encoded style is L2-normalised, as the paper rule's
  # stored and random values are (eq. 6). False = raw style maps, as printed, whose norm the
  # value loss drives far from the unit random reads.
  c.loss.latent_regression_unit = not official
  # Style of the self-reconstruction G^x(c^x, s): "memory" = the style read from the memory
  # (eq. 7, as released); "encoder" = the image's own style map, rescaled as stored values are
  # (DRIT's self-reconstruction), a per-image signal for the generator's style input.
  c.loss.self_recon_style = "memory"
  # Weights of the memory losses (official: 0.1 sits inside each term).
  c.loss.memory_key = 1.0
  c.loss.memory_value = 1.0 if official else 0.5
  return c


def random_values(key, shape, config) -> jax.Array:
  return memory_lib.random_values(key, shape, config.memory)


def train_forward(memory, c_a, c_b, s_a, s_b, masks_a, masks_b, rand_a, rand_b, *, config):
  return memory_lib.train_forward(memory, c_a, c_b, s_a, s_b, masks_a, masks_b, rand_a, rand_b,
                                  config=config.memory, sizes=tuple(config.memory.sizes))


def _class_read(memory, content, masks, values, config):
  """`values` [N, Cv] read with `content`'s class-wise attention over `memory`'s keys."""
  m = config.memory
  return memory_lib.read_class_aware(memory.keys, values, content, masks, sizes=tuple(m.sizes),
                                     class_aware=m.class_aware,
                                     temperature=m.attention_temperature)


def random_read(memory, content, masks, values, *, config):
  """Random `values` read with the (updated) memory's class-wise attention, as the training
  read applies it to its random values (a second random style)."""
  return _class_read(memory, content, masks, values, config)


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
  return (_class_read(memory, c_ab, batch["a"]["masks"], memory.values_a, config),
          _class_read(memory, c_ba, batch["b"]["masks"], memory.values_b, config))


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


# ----------------------------------------------------------------------------
# Training and inference of the MGUIT family (mguit, drit: the same networks and iteration).

init_state = ts.init_state
graphdefs = ts.graphdefs
make_runner = steps.Runner


def validate(config) -> None:
  """The crop must fit the content discriminator (`model.dis_c_depth`)."""
  discriminators.check_crop(config.data.crop_size, config.model.dis_c_depth)


def input_multiple(config) -> int:
  del config
  return 4   # the content map is at 1/4 resolution


def inference_subtree(tree) -> dict:
  """What translation needs of a state (or its checkpoint's tree): E_c, G and the memory."""
  return {"params": {k: tree["params"][k] for k in INFERENCE_NETWORKS},
          "memory": tree["memory"]}


def style_shape(inference) -> tuple[int, ...]:
  return tuple(memory_lib.as_memory(inference["memory"]).values_a.shape)


def style_inputs(inference, target: str, num_styles: int, seed: int, *,
                 config) -> np.ndarray:
  """[1 + num_styles, N, Cv]: the stored values of domain `target`, then random values
  (style k is fold_in(seed, k)), distributed as the method stores values."""
  memory = memory_lib.as_memory(inference["memory"])
  stored = np.asarray(getattr(memory, f"values_{target}"))
  draw, key = methods.get(config.method).random_values, jax.random.key(seed)
  draws = [np.asarray(draw(jax.random.fold_in(key, k), stored.shape, config))
           for k in range(1, num_styles + 1)]
  return np.stack([stored, *draws])


def translate_batch(inference, images, values, *, defs, direction, config):
  """uint8 [B, H, W, 3] (H, W multiples of 4), values [S, N, Cv] -> [B, S, H, W, 3] in
  [-1, 1]. Style s is the method's `test_style` of `values[s]`; the content is encoded once,
  the generator runs once per style (lax.map bounds the memory)."""
  src, tgt = direction[0], direction[2]
  nets = ts.merge(defs, inference["params"])
  memory = memory_lib.as_memory(inference["memory"])
  content = nets["enc_c"](pipeline.normalize(images), src)
  test_style = methods.get(config.method).test_style

  def generate(vals):
    return nets["gen"](content, test_style(memory, content, vals, config=config), tgt,
                       noise=None)

  return jnp.moveaxis(jax.lax.map(generate, values), 0, 1)


def encode_batch(inference, images, *, defs, domain):
  """uint8 [B, H, W, 3] (H, W multiples of 4) -> content maps [B, H/4, W/4, Ck]."""
  return ts.merge(defs, inference["params"])["enc_c"](pipeline.normalize(images), domain)

