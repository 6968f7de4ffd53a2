"""The training iterations, as pure functions.

`full_step` runs one whole MGUIT iteration in the official order:
  1. encode both domains, update and read the memory, translate (self, cross,
     random-style) — one forward pass whose VJP is kept for step 5;
  2. D^a and D^b steps on the detached fakes;
  3. the content discriminator step on the detached contents;
  4. the cycle pass (re-encode the fakes, read-only memory read, translate back);
  5. the encoder/generator step against the *updated* discriminators.
`content_d_step` updates only the content discriminator (the d_iter schedule).

Where styles come from (memory reads, global style vectors) is the method's
(`config.method`, `mguit_jax.methods`); the iteration is the same for all of them.
All randomness (generator noise, random memory values) comes from
`draw_randoms`, so a test can inject recorded draws without another code path.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from mguit_jax import losses
from mguit_jax import methods
from mguit_jax import train_state as ts

Batch = dict[str, dict[str, jax.Array]]


def _stack(*xs: jax.Array) -> jax.Array:
  """[B,...] x k -> [B*k,...], interleaved per example (keeps the batch sharding)."""
  x = jnp.stack(xs, axis=1)
  return x.reshape((-1,) + x.shape[2:])


def _unstack(x: jax.Array, k: int) -> list[jax.Array]:
  x = x.reshape((-1, k) + x.shape[1:])
  return [x[:, i] for i in range(k)]


def draw_randoms(key: jax.Array, config: ml_collections.ConfigDict, batch: Batch) -> dict[str, jax.Array]:
  """Every random draw of one full iteration, from one key.

  rand_a / rand_b: [N, Cv] random memory values for domain-a / domain-b queries,
  distributed as the method stores values (its `random_values`).
  noise_a / noise_b: [B, 4, h, w, Ck] generator input noise for the first
  translation (4 per example, as the released code draws; the first 3 are used);
  noise_aba / noise_bab: [B, h, w, Ck] for the cycle translation.
  rand2_a / rand2_b: with `loss.mode_seeking`, a second draw of the random values, from a key
  of their own (the other draws stay those of a run without it).
  """
  b, hgt, wid, _ = batch["a"]["image"].shape
  content = (b, hgt // 4, wid // 4, config.model.content_dim)
  values = (sum(config.memory.sizes), config.model.style_dim)
  keys = jax.random.split(key, 6)
  normal = lambda k, shape: jax.random.normal(k, shape, jnp.float32)
  styles = methods.get(config.method)
  draws = {
      "rand_a": styles.random_values(keys[0], values, config),
      "rand_b": styles.random_values(keys[1], values, config),
      "noise_a": normal(keys[2], (b, 4) + content[1:]),
      "noise_b": normal(keys[3], (b, 4) + content[1:]),
      "noise_aba": normal(keys[4], content),
      "noise_bab": normal(keys[5], content),
  }
  if config.loss.mode_seeking:
    second = jax.random.split(jax.random.fold_in(key, 1))
    draws["rand2_a"] = styles.random_values(second[0], values, config)
    draws["rand2_b"] = styles.random_values(second[1], values, config)
  return draws


def _translate_forward(eg_params, defs, memory, batch, randoms, config):
  """Step 1: encoders, memory update and reads, first translation.

  Returns (differentiable outputs, aux) where aux holds the updated memory and
  the detached random-style maps (targets of the latent regression).
  """
  styles = methods.get(config.method)
  nets = ts.merge(defs, eg_params)
  enc_c, enc_s, gen = nets["enc_c"], nets["enc_s"], nets["gen"]
  x_a, x_b = batch["a"]["image"], batch["b"]["image"]
  c_a, c_b = enc_c(x_a, "a"), enc_c(x_b, "b")
  s_a, s_b = enc_s(x_a, "a"), enc_s(x_b, "b")
  memory, r, mem_losses = styles.train_forward(
      memory, c_a, c_b, s_a, s_b, batch["a"]["masks"], batch["b"]["masks"],
      randoms["rand_a"], randoms["rand_b"], config=config)
  sty_aa, sty_bb = styles.self_recon_styles(r, s_a, s_b, config=config)
  # The released code also renders x's contents with x's random style (rand_aa, rand_bb) but
  # no loss uses those images: they are left out (their noise, noise_x[:, 3], is still drawn).
  # Mode seeking renders each random-style translation again with a second random style and
  # the same noise, so that only the style differs between the two.
  out = dict(c_a=c_a, c_b=c_b, s_a=s_a, s_b=s_b, mem_losses=mem_losses)
  aux = dict(memory=memory, rand_ab=r["rand_ab"], rand_ba=r["rand_ba"])
  for x, y, c_x, c_y, sty_yy in (("b", "a", c_b, c_a, sty_aa), ("a", "b", c_a, c_b, sty_bb)):
    noise = randoms[f"noise_{y}"][:, :3]
    contents = [c_x, c_y, c_x]
    styles_in = [r[f"sty_{x}{y}"], sty_yy, r[f"rand_{x}{y}"]]
    if config.loss.mode_seeking:
      aux[f"rand2_{x}{y}"] = styles.random_read(memory, c_x, batch[x]["masks"],
                                                randoms[f"rand2_{x}"], config=config)
      contents.append(c_x)
      styles_in.append(aux[f"rand2_{x}{y}"])
      noise = jnp.concatenate([noise, noise[:, 2:3]], axis=1)
    images = _unstack(gen(_stack(*contents), _stack(*styles_in), y,
                          noise=noise.reshape((-1,) + noise.shape[2:])), len(contents))
    out[f"fake_{x}{y}"], out[f"fake_{y}{y}"], out[f"rand_{x}{y}_img"] = images[:3]
    if config.loss.mode_seeking:
      out[f"rand2_{x}{y}_img"] = images[3]
  return out, aux


def _discriminator_update(config, name, params, opt_state, loss_of, step, defs):
  """One optimiser step of discriminator `name` on `loss_of(network)`; returns (loss, p, o)."""
  loss_fn = lambda p: loss_of(ts.merge(defs, {name: p})[name])
  loss, grads = jax.value_and_grad(loss_fn)(params[name])
  new_p, new_o = ts.apply_gradients(config, name, params[name], opt_state[name], grads, step)
  return loss, new_p, new_o


def _content_d_update(config, params, opt_state, c_a, c_b, step, defs):
  """Content discriminator step: contents of b -> 1, of a -> 0 (inputs detached)."""
  c_a, c_b = jax.lax.stop_gradient((c_a, c_b))
  loss_of = lambda dis_c: (losses.bce_with_logits(dis_c(c_b), 1.0)
                           + losses.bce_with_logits(dis_c(c_a), 0.0))
  return _discriminator_update(config, "dis_c", params, opt_state, loss_of, step, defs)


def _domain_d_update(config, name, params, opt_state, real, fakes, step, defs):
  """Multi-scale domain discriminator step: the real image twice against two fakes."""
  real_pair = _stack(real, real)
  fake_pair = jax.lax.stop_gradient(_stack(*fakes))
  loss_of = lambda dis: losses.discriminator_loss(dis(real_pair), dis(fake_pair))
  return _discriminator_update(config, name, params, opt_state, loss_of, step, defs)


def _eg_objective(eg_params, fwd, dis_params, aux, batch, randoms, defs, config):
  """Step 4-5: the encoder/generator objective given the first-pass outputs."""
  w = config.loss
  styles = methods.get(config.method)
  nets = ts.merge(defs, {**eg_params, **dis_params})
  enc_c, gen = nets["enc_c"], nets["gen"]
  x_a, x_b = batch["a"]["image"], batch["b"]["image"]
  # Cycle: re-encode the translations' contents, take the method's cycle styles.
  c_ab, c_ba = enc_c(fwd["fake_ab"], "b"), enc_c(fwd["fake_ba"], "a")
  sty_aba, sty_bab = styles.cycle_styles(aux["memory"], nets, fwd, c_ab, c_ba, batch,
                                         config=config)
  fake_aba = gen(c_ab, sty_aba, "a", noise=randoms["noise_aba"])
  fake_bab = gen(c_ba, sty_bab, "b", noise=randoms["noise_bab"])

  # name -> (weight, domain-a term, domain-b term); logged weighted, as g/<name>_<domain>.
  terms = {
      "content_adv": (w.content_adv,
                      losses.bce_with_logits(nets["dis_c"](fwd["c_a"]), 0.5),
                      losses.bce_with_logits(nets["dis_c"](fwd["c_b"]), 0.5)),
      "domain_adv": (w.domain_adv,
                     losses.multiscale_bce(nets["dis_a"](_stack(fwd["fake_ba"], fwd["rand_ba_img"])), 1.0),
                     losses.multiscale_bce(nets["dis_b"](_stack(fwd["fake_ab"], fwd["rand_ab_img"])), 1.0)),
      "style_l2": (w.style_l2, losses.l2_regularizer(fwd["s_a"]), losses.l2_regularizer(fwd["s_b"])),
      "content_l2": (w.content_l2, losses.l2_regularizer(fwd["c_a"]),
                     losses.l2_regularizer(fwd["c_b"])),
      "content_consistency": (w.content_consistency, losses.l1(fwd["c_a"], c_ab),
                              losses.l1(fwd["c_b"], c_ba)),
      "cross_cycle": (w.cross_cycle, losses.l1(fake_aba, x_a), losses.l1(fake_bab, x_b)),
      "self_recon": (w.self_recon, losses.l1(fwd["fake_aa"], x_a), losses.l1(fwd["fake_bb"], x_b)),
  }
  if w.latent_regression:
    # DRIT's latent regression: the style encoder (frozen unless
    # `latent_regression_trains_style_encoder`, as DRIT updates only G with it) must recover
    # the random style, in the form the method compares it in.
    enc_s_params = eg_params["enc_s"]
    if not w.latent_regression_trains_style_encoder:
      enc_s_params = jax.lax.stop_gradient(enc_s_params)
    recover = styles.regressed_style(ts.merge(defs, {"enc_s": enc_s_params})["enc_s"],
                                     config=config)
    terms["latent_regression"] = (
        w.latent_regression,
        losses.l1(recover(fwd["rand_ba_img"], "a"), aux["rand_ba"]),
        losses.l1(recover(fwd["rand_ab_img"], "b"), aux["rand_ab"]))
  if w.mode_seeking:
    # DRIT++'s mode seeking: output distance per style distance, inverted (eps 1e-5).
    seek = lambda img, img2, sty, sty2: 1.0 / (
        jnp.mean(jnp.abs(img2 - img)) / jnp.mean(jnp.abs(sty2 - sty)) + 1e-5)
    terms["mode_seeking"] = (
        w.mode_seeking,
        seek(fwd["rand_ba_img"], fwd["rand2_ba_img"], aux["rand_ba"], aux["rand2_ba"]),
        seek(fwd["rand_ab_img"], fwd["rand2_ab_img"], aux["rand_ab"], aux["rand2_ab"]))
  weighted = {f"g/{name}_{dom}": weight * value
              for name, (weight, term_a, term_b) in terms.items()
              for dom, value in (("a", term_a), ("b", term_b))}
  g_total = sum(weighted.values())
  # The method's own losses (MGUIT's memory losses "key" and "value"; none for drit), logged
  # unweighted as mem/<name>, weighted by config.loss.memory_<name>.
  mem = fwd["mem_losses"]
  mem_total = sum((w[f"memory_{name}"] * value for name, value in mem.items()),
                  jnp.zeros((), jnp.float32))
  metrics = {**weighted, "g/total": g_total, **{f"mem/{k}": v for k, v in mem.items()}}
  if mem:
    metrics["mem/total"] = mem_total
  return g_total + mem_total, metrics


def full_step(state: ts.TrainState, batch: Batch, *, defs: dict[str, Any],
              config: ml_collections.ConfigDict,
              randoms: dict[str, jax.Array] | None = None):
  """One full iteration; returns (new_state, metrics).

  `randoms` replaces the draws of `draw_randoms` (parity tests inject recorded ones).
  """
  step = state.step
  if randoms is None:
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), step)
    randoms = draw_randoms(key, config, batch)
  params, opt_state = dict(state.params), dict(state.opt_state)
  eg_params = {k: params[k] for k in ts.EG_NETWORKS}

  fwd, pullback, aux = jax.vjp(
      lambda p: _translate_forward(p, defs, state.memory, batch, randoms, config),
      eg_params, has_aux=True)

  metrics = {}
  for name, real, fakes in (("dis_a", batch["a"]["image"], (fwd["fake_ba"], fwd["rand_ba_img"])),
                            ("dis_b", batch["b"]["image"], (fwd["fake_ab"], fwd["rand_ab_img"]))):
    metrics[f"d/{name}"], params[name], opt_state[name] = _domain_d_update(
        config, name, params, opt_state, real, fakes, step, defs)
  metrics["d/dis_c"], params["dis_c"], opt_state["dis_c"] = _content_d_update(
      config, params, opt_state, fwd["c_a"], fwd["c_b"], step, defs)

  dis_params = {k: params[k] for k in ("dis_a", "dis_b", "dis_c")}
  grad_fn = jax.grad(_eg_objective, argnums=(0, 1), has_aux=True)
  (g_direct, g_fwd), eg_metrics = grad_fn(
      eg_params, fwd, dis_params, aux, batch, randoms, defs, config)
  (g_through_fwd,) = pullback(g_fwd)
  grads = jax.tree.map(jnp.add, g_direct, g_through_fwd)
  for name in ts.EG_NETWORKS:
    params[name], opt_state[name] = ts.apply_gradients(
        config, name, params[name], opt_state[name], grads[name], step)
  metrics.update(eg_metrics)
  metrics.update(methods.get(config.method).health(aux["memory"], fwd, batch, config=config))
  metrics["lr"] = ts.learning_rate(config, step, "gen")
  new_state = state.replace(step=step + 1, params=params, opt_state=opt_state,
                            memory=aux["memory"])
  return new_state, metrics


def content_d_step(state: ts.TrainState, batch: Batch, *, defs: dict[str, Any],
                   config: ml_collections.ConfigDict):
  """Updates only the content discriminator (2 of every d_iter iterations)."""
  enc_c = ts.merge(defs, {"enc_c": state.params["enc_c"]})["enc_c"]
  c_a, c_b = enc_c(batch["a"]["image"], "a"), enc_c(batch["b"]["image"], "b")
  loss, p, o = _content_d_update(config, state.params, state.opt_state, c_a, c_b, state.step, defs)
  new_state = state.replace(step=state.step + 1,
                            params={**state.params, "dis_c": p},
                            opt_state={**state.opt_state, "dis_c": o})
  return new_state, {"d/dis_c": loss}


def schedule_step(state: ts.TrainState, batches: tuple[Batch, ...], *, defs: dict[str, Any],
                  config: ml_collections.ConfigDict):
  """One whole d_iter cycle in one program: `content_d_step` on each batch but the last,
  then `full_step` on the last (`train.fused_schedule`; the host then dispatches once per
  cycle). Returns (new_state, full-step metrics, content-D losses [d_iter - 1])."""
  losses = []
  for batch in batches[:-1]:
    state, metrics = content_d_step(state, batch, defs=defs, config=config)
    losses.append(metrics["d/dis_c"])
  state, metrics = full_step(state, batches[-1], defs=defs, config=config)
  return state, metrics, jnp.stack(losses) if losses else jnp.zeros((0,), jnp.float32)


def _fuse_cycle(config: ml_collections.ConfigDict, step: int) -> bool:
  """Whether the d_iter iterations from `step` run as one `schedule_step`: with
  `train.fused_schedule`, from a cycle's start, when no periodic action (log, samples,
  checkpoint, evaluation) or the end falls strictly inside the cycle."""
  t, n = config.train, config.train.d_iter
  if not t.fused_schedule or n < 2 or step % n or step + n > t.num_steps:
    return False
  periods = [p for p in (t.log_every, t.sample_every, t.checkpoint_every, t.eval_every) if p > 0]
  return not any(k % p == 0 for k in range(step + 1, step + n) for p in periods)


class Runner:
  """The d_iter schedule, jitted: iteration k is a full one when (k + 1) % d_iter == 0, a
  content-discriminator one otherwise; whole cycles run as one program where `_fuse_cycle`
  allows. The training loop calls it with the state, a batch source and the step."""

  def __init__(self, config: ml_collections.ConfigDict, defs: dict[str, Any], replicated):
    jit = lambda fn: jax.jit(functools.partial(fn, defs=defs, config=config),
                             donate_argnums=0, out_shardings=(replicated, replicated))
    self.config = config
    self.full_step, self.content_d_step = jit(full_step), jit(content_d_step)
    self.schedule_step = jax.jit(functools.partial(schedule_step, defs=defs, config=config),
                                 donate_argnums=0)

  def __call__(self, state, next_batch, step: int):
    """Runs the iteration(s) from `step`; returns (state, [metrics per iteration], new step)."""
    d_iter = self.config.train.d_iter
    if _fuse_cycle(self.config, step):
      state, metrics, dis_c_losses = self.schedule_step(
          state, tuple(next_batch() for _ in range(d_iter)))
      return state, [{"d/dis_c": loss} for loss in dis_c_losses] + [metrics], step + d_iter
    is_full = (step + 1) % d_iter == 0
    state, metrics = (self.full_step if is_full else self.content_d_step)(state, next_batch())
    return state, [metrics], step + 1
