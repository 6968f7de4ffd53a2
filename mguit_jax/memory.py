"""The class-aware key-value memory of MGUIT (paper §3.2-3.3) as pure functions.

The memory is a pytree of `N` items, each a unit key and one style value per
domain. Items are grouped by class: `sizes = (10, 5, 2, 3)` gives the first 10
items to class 0 (background), the next 5 to class 1, and so on. It is not a
trainable parameter: it changes only through the update rule, and every
function here stops gradients at the memory (inputs and outputs).

Everything is written for one jit with static shapes. The pixels of a batch
are flattened to `P` rows and class structure enters only through boolean
`[P, N]` "allowed" masks, so softmaxes over items (reads) or over pixels
(updates, losses) are masked softmaxes and per-item sums are matmuls. No shape
depends on the data. Under data parallelism (batch sharded over a mesh, jit)
every reduction over pixels is therefore a reduction over the global batch.

Class masks are multi-hot `[B, h, w, K]` floats: channel 0 is background,
channels 1..K-1 the object classes, and overlapping boxes set several channels.
Where an exclusive label is needed (reads, the `paper` update, the
`contrastive` and `triplet` losses, the official global target) the highest
class whose channel is set wins, as in the released code's write order. The
`official` update and its per-class losses let an overlapped pixel take part
in each of its classes, as the released code does. A pixel with no channel set
is treated as background.

Similarities are plain dot products: with unit-norm contents (the encoder's
output) and unit keys they are the paper's cosine similarity (eq. 3). The read
(eq. 2) and update (eq. 5) softmaxes take them divided by
`config.attention_temperature` (1 = the equations as printed). Cosines lie in
[-1, 1], so at 1 both softmaxes are close to uniform: every pixel reads the mean
of its class's values and every key moves to its class's mean content, which
makes all keys of a class one vector within tens of updates (README, "Training
notes").

Update rules (`config.update`):
  * `paper` (eqs. 5-6): per domain, beta = softmax over the pixels of the item's
    class of c.k; key <- normalise(key + sum beta^a c^a + sum beta^b c^b), and
    value^x <- normalise(value^x + sum beta^x s^x) for the domains x where the
    class has pixels. Items of a class absent from both domains are unchanged.
    With `config.update_nearest` a pixel writes only into its most similar item
    of its class (beta is zeroed elsewhere), the rule of the memory of Park et
    al. [33] that eqs. 5-6 follow, and of the released code.
  * `official`: the released code's rule (parity README §7.3). Each pixel adds
    only to its most similar item (per class it belongs to); key <-
    normalise(0.25 u^a + 0.25 u^b + 0.5 key) with u the normalised sums; value^x
    <- 0.5 InstanceNorm(w^x) + 0.5 value^x. Only classes with pixels in both
    domains are updated.
Reads during training use the updated memory, as the released code does.

Losses (`config.loss`), computed with the pre-update memory and returned
unweighted as {"key", "value"}:
  * `contrastive` (eq. 8): per pixel, -log softmax of q.m / tau at the nearest
    item of its class (max q.m); mean over pixels, domains summed. The softmax
    runs over the pixel's class's items (`config.loss_items="class"`) or over all
    N items (`"all"`, eq. 8's sum over n = 1..N): then contents and styles are also
    pushed away from the other classes' items, which the test-time read over all
    items relies on.
  * `triplet` (the ablation): max(|q - m1|^2 - |q - m2|^2 + margin, 0) with m1
    the nearest (Euclidean) item of the pixel's class and m2 the nearest other
    item of its class (`"class"`) or of all items (`"all"`); 0 where there is no
    m2; mean over pixels, domains summed.
  * `official`: the released code's 0.1 * exp(-mean target weight) terms with
    pixel-wise softmaxes, plus its global key term (parity README §7.6).

Random values for the multimodal path (`random_values`) follow the distribution
the update rule stores: unit-norm rows for `paper` (eq. 6 normalises every value),
N(0, 1) entries for `official` (its values are instance-normalised, and the
released code draws N(0, 1)).

The no-memory baseline keeps this state's shapes but none of its rules
(`mguit_jax.methods.drit`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mguit_jax.models.layers import l2_normalize

UPDATES = ("paper", "official")
LOSSES = ("contrastive", "triplet", "official")
LOSS_ITEMS = ("class", "all")

_INSTANCE_NORM_EPS = 1e-5  # torch.nn.InstanceNorm1d
_OFFICIAL_SCALE = 0.1    # the weight the released code puts inside each memory-loss term


class Memory(NamedTuple):
  """Memory state: `keys [N, Ck]` (unit rows) and per-domain `values_* [N, Cv]`."""
  keys: jax.Array
  values_a: jax.Array
  values_b: jax.Array


class _Pixels(NamedTuple):
  """One domain's batch, flattened to P pixel rows."""
  cont: jax.Array    # [P, Ck]
  sty: jax.Array     # [P, Cv]
  member: jax.Array  # [P, K] bool, multi-hot class membership
  label: jax.Array   # [P] int32, exclusive class (highest wins)


# ----------------------------------------------------------------------------
# Construction.


def as_memory(tree) -> Memory:
  """A `Memory` from itself or from its restored checkpoint form (a dict of its fields)."""
  return tree if isinstance(tree, Memory) else Memory(**tree)


def item_classes(sizes) -> np.ndarray:
  """Class index of each item, `[N]` int32: (10, 5) -> ten 0s then five 1s."""
  sizes = tuple(sizes)
  if not sizes or any(int(s) != s or s < 1 for s in sizes):
    raise ValueError(f"memory sizes {sizes!r}: expected a non-empty tuple of positive ints")
  return np.repeat(np.arange(len(sizes), dtype=np.int32), [int(s) for s in sizes])


def init_memory(key, sizes, key_dim, value_dim) -> Memory:
  """Random memory as the official training script: unit keys, N(0, 1) values."""
  n = item_classes(sizes).size
  k_keys, k_a, k_b = jax.random.split(key, 3)
  keys = l2_normalize(jax.random.normal(k_keys, (n, key_dim)))
  return Memory(keys, jax.random.normal(k_a, (n, value_dim)),
                jax.random.normal(k_b, (n, value_dim)))


def random_values(key, shape, config) -> jax.Array:
  """Random memory values `[..., N, Cv]` distributed as `config` (config.memory) stores values."""
  draw = jax.random.normal(key, shape, jnp.float32)
  if config.update_rule == "paper":
    return l2_normalize(draw)
  return draw


def as_stored_value(style, config) -> jax.Array:
  """A style map `[..., Cv]` rescaled per pixel as `config` (config.memory) stores values:
  unit-norm for the `paper` rule (eq. 6), instance-normalised for `official`."""
  if config.update_rule == "paper":
    return l2_normalize(style)
  return _instance_norm(style)


def class_labels(masks) -> jax.Array:
  """Exclusive class per pixel `[...]` int32: the highest channel set, 0 if none."""
  masks = jnp.asarray(masks)
  classes = jnp.arange(masks.shape[-1], dtype=jnp.int32)
  return jnp.max(jnp.where(masks > 0, classes, 0), axis=-1)


# ----------------------------------------------------------------------------
# Public reads.


def read_weights_all(keys, content, temperature=1.0) -> jax.Array:
  """Class-agnostic attention `[B, h, w, N]` of each pixel over all items (inference)."""
  return jax.nn.softmax(jnp.einsum("...c,nc->...n", content, keys) / temperature, axis=-1)


def read_all(keys, values, content, temperature=1.0) -> jax.Array:
  """Class-agnostic read `[B, h, w, Cv]` over all N items (the paper's test-time read)."""
  return jax.lax.stop_gradient(read_weights_all(keys, content, temperature) @ values)


def read_class_aware(keys, values, content, masks, sizes, class_aware=True,
                     temperature=1.0) -> jax.Array:
  """Read-only class-wise read `[B, h, w, Cv]` (the cycle read); detached, no update."""
  item_cls = _item_classes(sizes, class_aware)
  _check_maps("content", content, "masks", masks, len(tuple(sizes)), class_aware)
  _check_rows("keys", keys, item_cls.size, content.shape[-1])
  _check_rows("values", values, item_cls.size, None)
  cont = content.reshape(-1, content.shape[-1])
  _, label = _membership(masks, cont.shape[0], class_aware)
  alpha = _masked_softmax(cont @ keys.T / temperature, _exclusive(label, item_cls), axis=-1)
  return _apply(alpha, values, content.shape)


# ----------------------------------------------------------------------------
# Training forward.


def train_forward(memory, cont_a, cont_b, sty_a, sty_b, masks_a, masks_b, rand_a, rand_b,
                  *, config, sizes):
  """Memory losses, update and class-aware reads of one training iteration.

  Args:
    memory: the current `Memory`.
    cont_a, cont_b: content maps `[B, h, w, Ck]` (unit-norm per pixel).
    sty_a, sty_b: style maps `[B, h, w, Cv]`.
    masks_a, masks_b: multi-hot class masks `[B, h, w, K]`.
    rand_a, rand_b: `[N, Cv]` random values (`random_values`) for domain-A and
      domain-B queries (the multimodal path).
    config: the `config.memory` ConfigDict (update_rule, update_nearest,
      attention_temperature, loss, loss_items, temperature, triplet_margin,
      class_aware).
    sizes: items per class, `tuple(config.memory.sizes)`.

  Returns:
    `(new_memory, reads, losses)`. `reads["sty_xy"]` is domain y's values read
    with domain x's contents; `rand_xa = rand_xb` is x's attention applied to
    `rand_x`. All reads and the new memory are detached; `losses` ("key",
    "value", unweighted) carry gradients to the content and style maps.
  """
  update, loss = config.update_rule, config.loss
  if update not in UPDATES:
    raise ValueError(f"config.memory.update_rule={update!r}: expected one of {UPDATES}")
  if loss not in LOSSES:
    raise ValueError(f"config.memory.loss={loss!r}: expected one of {LOSSES}")
  class_aware = bool(config.class_aware)
  item_cls = _item_classes(sizes, class_aware)
  num_classes = int(item_cls.max()) + 1
  memory = jax.tree.map(jax.lax.stop_gradient, Memory(*memory))
  pa = _pixels("a", cont_a, sty_a, masks_a, memory, sizes, class_aware)
  pb = _pixels("b", cont_b, sty_b, masks_b, memory, sizes, class_aware)
  _check_rows("rand_a", rand_a, item_cls.size, memory.values_a.shape[-1])
  _check_rows("rand_b", rand_b, item_cls.size, memory.values_b.shape[-1])

  all_items = _loss_items(config) == "all"
  if loss == "contrastive":
    losses = _query_losses(functools.partial(_contrastive, temperature=config.temperature),
                           memory, pa, pb, item_cls, all_items)
  elif loss == "triplet":
    losses = _query_losses(functools.partial(_triplet, margin=config.triplet_margin),
                           memory, pa, pb, item_cls, all_items)
  else:
    losses = _official_losses(memory, pa, pb, item_cls, num_classes)

  temperature = config.attention_temperature
  if update == "paper":
    new = _paper_update(memory, pa, pb, item_cls, num_classes, temperature,
                        config.update_nearest)
  else:
    new = _official_update(memory, pa, pb, item_cls, num_classes, temperature)
  new = jax.tree.map(jax.lax.stop_gradient, new)

  reads = {}
  for x, px, cont, rand in (("a", pa, cont_a, rand_a), ("b", pb, cont_b, rand_b)):
    alpha = _masked_softmax(px.cont @ new.keys.T / temperature,
                            _exclusive(px.label, item_cls), axis=-1)
    reads[f"sty_{x}a"] = _apply(alpha, new.values_a, cont.shape)
    reads[f"sty_{x}b"] = _apply(alpha, new.values_b, cont.shape)
    reads[f"rand_{x}a"] = reads[f"rand_{x}b"] = _apply(alpha, rand, cont.shape)
  return new, reads, losses


# ----------------------------------------------------------------------------
# Health.


def health(memory, cont_a, cont_b, sty_a, sty_b, masks_a, masks_b, *, config, sizes
           ) -> dict[str, jax.Array]:
  """Per-class measures of whether the memory addresses anything, `health/<measure>/c<k>`.

  Pixels are grouped by their class k in the masks (both domains pooled); the
  items they may read are their class's (or all, with `class_aware=False`):

  * `read_entropy`: the training read's attention entropy over those items,
    relative to uniform (1 = every item weighted alike, 0 = one item).
  * `usage`: the share of those items that are the most similar item of at
    least one of the class's pixels.
  * `test_hit` (class-aware only): the share of the class's pixels whose most
    similar item over all N, as the test-time read sees them, is one of the
    class's own items.
  * `key_cosine`: mean pairwise cosine of the keys of the class's items
    (`memory.sizes` groups; 1 = all one vector; NaN for one item), and
    `key_cosine/all` over all N.
  * `value_norm_a`, `value_norm_b`: mean norm of the class's stored values.
  * `style_norm`: mean norm of the style map over the class's pixels.

  A class with no pixels in the batch gets NaN for the pixel-based measures.
  """
  memory = jax.tree.map(jax.lax.stop_gradient, Memory(*memory))
  num_classes = len(tuple(sizes))
  item_cls = item_classes(sizes)
  read_cls = _item_classes(sizes, config.class_aware)
  flat = lambda x: jax.lax.stop_gradient(x).reshape(-1, x.shape[-1])
  cont = jnp.concatenate([flat(cont_a), flat(cont_b)])
  sty = jnp.concatenate([flat(sty_a), flat(sty_b)])
  label = class_labels(jnp.concatenate([flat(masks_a), flat(masks_b)]))
  read_label = label if config.class_aware else jnp.zeros_like(label)
  allowed = _exclusive(read_label, read_cls)
  scores = cont @ memory.keys.T
  alpha = _masked_softmax(scores / config.attention_temperature, allowed, axis=-1)
  entropy = -jnp.sum(jnp.where(alpha > 0, alpha * jnp.log(alpha), 0.0), axis=-1)
  count = jnp.sum(allowed, axis=-1)
  rel_entropy = jnp.where(count > 1, entropy / jnp.log(jnp.maximum(count, 2)), 0.0)
  best = jnp.argmax(jnp.where(allowed, scores, -jnp.inf), axis=-1)
  in_class = jax.nn.one_hot(label, num_classes, dtype=jnp.float32)        # [P, K]
  pixels = jnp.sum(in_class, axis=0)
  per_class_mean = lambda x: (in_class.T @ x) / pixels                     # NaN if absent
  addressed = (in_class.T @ jax.nn.one_hot(best, item_cls.size)) > 0      # [K, N]
  may_read = jnp.asarray(read_cls)[None, :] == (
      jnp.arange(num_classes)[:, None] if config.class_aware else 0)     # [K, N]
  usage = jnp.sum(addressed & may_read, axis=-1) / jnp.sum(may_read, axis=-1)
  out = {"read_entropy": per_class_mean(rel_entropy),
         "usage": jnp.where(pixels > 0, usage, jnp.nan),
         "style_norm": per_class_mean(jnp.linalg.norm(sty, axis=-1))}
  if config.class_aware:
    hit = jnp.asarray(item_cls)[jnp.argmax(scores, axis=-1)] == label
    out["test_hit"] = per_class_mean(hit.astype(jnp.float32))
  cosines = memory.keys @ memory.keys.T
  off_diagonal = ~jnp.eye(item_cls.size, dtype=bool)
  group = jnp.asarray(item_cls)[None, :] == jnp.arange(num_classes)[:, None]   # [K, N]
  pairs = (group[:, :, None] & group[:, None, :] & off_diagonal).astype(jnp.float32)
  num_pairs = jnp.sum(pairs, axis=(1, 2))
  out["key_cosine"] = jnp.where(   # NaN for a class of one item
      num_pairs > 0, jnp.einsum("knm,nm->k", pairs, cosines) / jnp.maximum(num_pairs, 1), jnp.nan)
  group_mean = lambda x: (group.astype(jnp.float32) @ x) / jnp.sum(group, axis=-1)
  out["value_norm_a"] = group_mean(jnp.linalg.norm(memory.values_a, axis=-1))
  out["value_norm_b"] = group_mean(jnp.linalg.norm(memory.values_b, axis=-1))
  metrics = {f"health/{name}/c{k}": v[k] for name, v in out.items() for k in range(num_classes)}
  metrics["health/key_cosine/all"] = jnp.sum(jnp.where(off_diagonal, cosines, 0.0)) / max(
      item_cls.size * (item_cls.size - 1), 1)
  return metrics


# ----------------------------------------------------------------------------
# Update rules.


def _paper_update(memory: Memory, pa: _Pixels, pb: _Pixels, item_cls, num_classes,
                  temperature, nearest) -> Memory:
  """Eqs. 5-6: softmax over the class's pixels, sums added to the items, normalised.

  `nearest`: each pixel adds only to its most similar item of its class.
  """

  def sums(px):
    allowed = _exclusive(px.label, item_cls)
    scores = px.cont @ memory.keys.T
    beta = _masked_softmax(scores / temperature, allowed, axis=0)
    if nearest:
      best = jnp.take_along_axis(_class_argmax(scores, item_cls, num_classes),
                                 px.label[:, None], axis=-1)[:, 0]
      beta = beta * jax.nn.one_hot(best, item_cls.size, dtype=beta.dtype)
    return beta.T @ px.cont, beta.T @ px.sty, jnp.any(allowed, axis=0)[:, None]

  key_a, value_a, present_a = sums(pa)
  key_b, value_b, present_b = sums(pb)
  keys = jnp.where(present_a | present_b,
                   l2_normalize(memory.keys + key_a + key_b), memory.keys)
  values_a = jnp.where(present_a, l2_normalize(memory.values_a + value_a), memory.values_a)
  values_b = jnp.where(present_b, l2_normalize(memory.values_b + value_b), memory.values_b)
  return Memory(keys, values_a, values_b)


def _official_update(memory: Memory, pa: _Pixels, pb: _Pixels, item_cls,
                     num_classes, temperature) -> Memory:
  """The released rule: top-1 gathered sums mixed with the old items (README §7.3)."""

  def sums(px):
    allowed = px.member[:, item_cls]
    scores = px.cont @ memory.keys.T
    beta = _masked_softmax(scores / temperature, allowed, axis=0)
    weight = beta * _top1_assignment(scores, px.member, item_cls, num_classes)
    return (l2_normalize(weight.T @ px.cont), _instance_norm(weight.T @ px.sty),
            jnp.any(allowed, axis=0)[:, None])

  key_a, value_a, present_a = sums(pa)
  key_b, value_b, present_b = sums(pb)
  updated = present_a & present_b
  keys = jnp.where(updated, l2_normalize(0.25 * key_a + 0.25 * key_b + 0.5 * memory.keys),
                   memory.keys)
  values_a = jnp.where(updated, 0.5 * value_a + 0.5 * memory.values_a, memory.values_a)
  values_b = jnp.where(updated, 0.5 * value_b + 0.5 * memory.values_b, memory.values_b)
  return Memory(keys, values_a, values_b)


def _top1_assignment(scores, member, item_cls, num_classes) -> jax.Array:
  """`[P, N]` 0/1: item n is pixel p's most similar item within one of p's classes."""
  best = _class_argmax(scores, item_cls, num_classes)
  one_hot = jax.nn.one_hot(best, item_cls.size, dtype=scores.dtype)
  return jnp.einsum("pk,pkn->pn", member.astype(scores.dtype), one_hot)


# ----------------------------------------------------------------------------
# Losses.


def _query_losses(term, memory: Memory, pa: _Pixels, pb: _Pixels, item_cls, all_items):
  """`term(queries, items, positive, candidates)` on keys (contents) and values (styles),
  domains summed. Positives are the pixel's class's items; candidates (the other side of
  the comparison) the same, or every item with `all_items`."""

  def masks(px):
    positive = _exclusive(px.label, item_cls)
    return positive, jnp.ones_like(positive) if all_items else positive

  ma, mb = masks(pa), masks(pb)
  key = term(pa.cont, memory.keys, *ma) + term(pb.cont, memory.keys, *mb)
  value = term(pa.sty, memory.values_a, *ma) + term(pb.sty, memory.values_b, *mb)
  return {"key": key, "value": value}


def _contrastive(queries, items, positive, candidates, temperature) -> jax.Array:
  """Mean over pixels of -log softmax over the candidates of q.m / tau, at the nearest positive."""
  logits = queries @ items.T / temperature
  nearest = jnp.max(jnp.where(positive, logits, -jnp.inf), axis=-1)
  return jnp.mean(jax.nn.logsumexp(jnp.where(candidates, logits, -jnp.inf), axis=-1) - nearest)


def _triplet(queries, items, positive, candidates, margin) -> jax.Array:
  """Mean over pixels of relu(|q - m1|^2 - |q - m2|^2 + margin); 0 without an m2.

  m1 is the nearest positive item, m2 the nearest other candidate.
  """
  dist = (jnp.sum(queries**2, axis=-1, keepdims=True) - 2 * queries @ items.T
          + jnp.sum(items**2, axis=-1))
  nearest = jnp.argmin(jnp.where(positive, dist, jnp.inf), axis=-1)
  d1 = jnp.take_along_axis(dist, nearest[:, None], axis=-1)[:, 0]
  others = candidates & (jnp.arange(items.shape[0])[None, :] != nearest[:, None])
  d2 = jnp.min(jnp.where(others, dist, jnp.inf), axis=-1)
  has_second = jnp.any(others, axis=-1)
  return jnp.mean(jnp.where(has_second, jax.nn.relu(d1 - jnp.where(has_second, d2, 0.0)
                                                    + margin), 0.0))


def _official_losses(memory: Memory, pa: _Pixels, pb: _Pixels, item_cls, num_classes):
  """The released loss: 0.1 exp(-mean target weight) per class and domain + global key term."""
  ka, va, ga, present_a = _official_terms(memory.keys, memory.values_a, pa, item_cls,
                                          num_classes)
  kb, vb, gb, present_b = _official_terms(memory.keys, memory.values_b, pb, item_cls,
                                          num_classes)
  updated = present_a & present_b
  class_key = jnp.where(updated, jnp.exp(-ka) + jnp.exp(-kb), 0.0)
  class_value = jnp.where(updated, jnp.exp(-va) + jnp.exp(-vb), 0.0)
  key = _OFFICIAL_SCALE * (jnp.sum(class_key) + jnp.exp(-ga) + jnp.exp(-gb))
  return {"key": key, "value": _OFFICIAL_SCALE * jnp.sum(class_value)}


def _official_terms(keys, values, px: _Pixels, item_cls, num_classes):
  """One domain's per-class mean target weights (keys, values), global mean, presence.

  beta is the softmax over a class's pixels; a pixel's target within a class is
  its argmax over that class's items of beta (not of the raw similarity). The
  value weights use the same targets. The global term is the softmax over all
  pixels against all keys, at the target of the pixel's exclusive class.
  """
  allowed = px.member[:, item_cls]
  beta = _masked_softmax(px.cont @ keys.T, allowed, axis=0)
  beta_sty = _masked_softmax(px.sty @ values.T, allowed, axis=0)
  target = jax.lax.stop_gradient(_class_argmax(beta, item_cls, num_classes))  # [P, K]
  member = px.member.astype(beta.dtype)
  count = jnp.sum(member, axis=0)

  def class_mean(weights):
    picked = jnp.take_along_axis(weights, target, axis=-1)
    return jnp.sum(member * picked, axis=0) / jnp.maximum(count, 1.0)

  global_target = jnp.take_along_axis(target, px.label[:, None], axis=-1)
  everything = jax.nn.softmax(px.cont @ keys.T, axis=0)
  global_mean = jnp.mean(jnp.take_along_axis(everything, global_target, axis=-1))
  return class_mean(beta), class_mean(beta_sty), global_mean, count > 0


# ----------------------------------------------------------------------------
# Helpers.


def _loss_items(config) -> str:
  items = config.loss_items
  if items not in LOSS_ITEMS:
    raise ValueError(f"config.memory.loss_items={items!r}: expected one of {LOSS_ITEMS}")
  return items


def _item_classes(sizes, class_aware) -> np.ndarray:
  """Item classes, or all zeros for the single-memory ablation."""
  item_cls = item_classes(sizes)
  return item_cls if class_aware else np.zeros_like(item_cls)


def _membership(masks, num_pixels, class_aware):
  """Multi-hot membership `[P, K]` and exclusive label `[P]`; uncovered pixels -> background."""
  if not class_aware:
    return jnp.ones((num_pixels, 1), bool), jnp.zeros((num_pixels,), jnp.int32)
  member = jnp.asarray(masks).reshape(num_pixels, -1) > 0
  member = member.at[:, 0].set(member[:, 0] | ~jnp.any(member, axis=-1))
  return member, class_labels(member)


def _exclusive(label, item_cls) -> jax.Array:
  """`[P, N]` bool: item n belongs to pixel p's exclusive class."""
  return label[:, None] == jnp.asarray(item_cls)[None, :]


def _class_argmax(x, item_cls, num_classes) -> jax.Array:
  """`[P, K]` index (into all N items) of the largest `x[p, n]` among class k's items."""
  in_class = jnp.asarray(item_cls)[None, :] == jnp.arange(num_classes)[:, None]  # [K, N]
  return jnp.argmax(jnp.where(in_class, x[:, None, :], -jnp.inf), axis=-1)


def _masked_softmax(logits, allowed, axis) -> jax.Array:
  """Softmax over the allowed entries along `axis`; zero elsewhere and on empty slices."""
  masked = jnp.where(allowed, logits, -jnp.inf)
  peak = jnp.max(masked, axis=axis, keepdims=True)
  peak = jax.lax.stop_gradient(jnp.where(jnp.isfinite(peak), peak, 0.0))
  weights = jnp.exp(masked - peak)
  total = jnp.sum(weights, axis=axis, keepdims=True)
  return weights / jnp.where(total > 0, total, 1.0)


def _apply(alpha, values, map_shape) -> jax.Array:
  """Detached read `alpha @ values` of flat pixels, back in the map's `[B, h, w, Cv]` shape."""
  out = (alpha @ values).reshape(tuple(map_shape[:-1]) + (values.shape[-1],))
  return jax.lax.stop_gradient(out)


def _instance_norm(x) -> jax.Array:
  """Each row standardised over its entries (biased variance, eps 1e-5), no affine."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
  return (x - mean) / jnp.sqrt(var + _INSTANCE_NORM_EPS)


def _pixels(domain, cont, sty, masks, memory, sizes, class_aware) -> _Pixels:
  """Checks one domain's maps against the memory and flattens them to pixel rows."""
  _check_maps(f"cont_{domain}", cont, f"masks_{domain}", masks, len(tuple(sizes)),
              class_aware)
  if cont.shape[-1] != memory.keys.shape[-1]:
    raise ValueError(f"cont_{domain}: expected {memory.keys.shape[-1]} channels (memory "
                     f"key dim), got shape {cont.shape}")
  values = memory.values_a if domain == "a" else memory.values_b
  if sty.shape != cont.shape[:-1] + (values.shape[-1],):
    raise ValueError(f"sty_{domain}: expected shape {cont.shape[:-1] + (values.shape[-1],)}"
                     f" (content map's pixels, value dim), got {sty.shape}")
  num_pixels = int(np.prod(cont.shape[:-1]))
  member, label = _membership(masks, num_pixels, class_aware)
  return _Pixels(cont.reshape(num_pixels, -1), sty.reshape(num_pixels, -1), member, label)


def _check_maps(cont_name, cont, masks_name, masks, num_classes, class_aware):
  if cont.ndim != 4:
    raise ValueError(f"{cont_name}: expected an NHWC map [B, h, w, C], got shape {cont.shape}")
  if class_aware and masks.shape != cont.shape[:-1] + (num_classes,):
    raise ValueError(f"{masks_name}: expected shape {cont.shape[:-1] + (num_classes,)} "
                     f"(the content map's pixels, one channel per memory class), "
                     f"got {masks.shape}")


def _check_rows(name, x, rows, cols):
  if x.ndim != 2 or x.shape[0] != rows or (cols is not None and x.shape[1] != cols):
    want = f"[{rows}, {cols if cols is not None else 'C'}]"
    raise ValueError(f"{name}: expected shape {want} (one row per memory item), got {x.shape}")
