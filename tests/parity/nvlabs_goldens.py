"""Reading and comparing the goldens of the NVlabs methods (tests/testdata/unit, munit).

Goldens are NCHW/OIHW arrays under the official state_dict names; `nvlabs.convert` maps
them to ours. Each file stores the configuration it was made with (`meta/hparams`).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from mguit_jax import methods
from mguit_jax.methods import nvlabs
from mguit_jax.methods.nvlabs import convert

TESTDATA = Path(__file__).parent.parent / "testdata"
NETS = nvlabs.NETWORK_NAMES


@functools.cache
def load(method: str):
  """(modules.npz, train_step.npz) of `method`."""
  return (np.load(TESTDATA / method / "modules.npz"),
          np.load(TESTDATA / method / "train_step.npz"))


def hparams(method: str) -> dict:
  modules, _ = load(method)
  hp = json.loads(str(modules["meta/hparams"]))
  return hp.get("hparams_used", hp)


def nhwc(x):
  return np.transpose(x, (0, 2, 3, 1)) if np.ndim(x) == 4 else np.asarray(x)


def max_diff(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def state_dict(npz, prefix: str) -> dict[str, np.ndarray]:
  """The parameters stored under `prefix` (names without a further "/": not activations)."""
  return {k[len(prefix):]: npz[k] for k in npz.files
          if k.startswith(prefix) and "/" not in k[len(prefix):]
          and k.rsplit(".", 1)[-1] in ("weight", "bias", "gamma", "beta")}


def golden_state(method: str, config):
  """A fresh state of `config` with the goldens' initial parameters."""
  modules, _ = load(method)
  init_state = methods.get(method).init_state
  like = jax.eval_shape(functools.partial(init_state, config)).params
  params = {n: convert.params_from_official(n, state_dict(modules, f"{n}/"), like[n])
            for n in NETS}
  return init_state(config).replace(params=jax.tree.map(jnp.asarray, params))


def batch(method: str):
  modules, _ = load(method)
  return {d: {"image": jnp.asarray(nhwc(modules[f"x_{d}"]))} for d in "ab"}


def assert_round_trip(method: str, state) -> None:
  """Our parameters back in the official layout equal the goldens' state_dicts."""
  modules, _ = load(method)
  for n in NETS:
    back = convert.params_to_official(n, jax.device_get(state.params[n]))
    want = state_dict(modules, f"{n}/")
    assert set(back) == set(want), n
    for k, v in want.items():
      np.testing.assert_array_equal(back[k], v, err_msg=f"{n}/{k}")


def objective_grads(objective, names, params, batch, draws, defs, config) -> dict:
  """Gradients (host arrays) of a method's `objective` w.r.t. the networks `names`."""
  return jax.device_get(jax.jit(jax.grad(
      lambda p: objective(p, params, batch, draws, defs, config)[0]))(
          {k: params[k] for k in names}))


def assert_gradients(method: str, grads: dict, kind: str, rtol: float, atol: float) -> None:
  """Each gradient tensor within atol + rtol x its largest golden magnitude."""
  _, golden = load(method)
  for n, tree in grads.items():
    names = convert.official_names(n, tree)
    for path, g in traverse_util.flatten_dict(jax.device_get(tree)).items():
      want = convert.to_ours(golden[f"{kind}_grad/{n}/{names[path]}"])
      bound = atol + rtol * float(np.abs(want).max())
      assert max_diff(g, want) <= bound, (n, names[path], max_diff(g, want), bound)


def assert_after_step(method: str, new, config, atol: float, moment_atol: float,
                      networks: tuple[str, ...] = NETS) -> None:
  """Parameters and Adam moments after one step from the goldens' state.

  Adam's first step moves every parameter by about lr x sign(g + weight_decay x p): where
  that is rounding noise (<= 1e-6: biases of convs whose output is instance-normalised, which
  the norm removes, and weights whose decay cancels their gradient), the two implementations
  may move it differently, by up to 2 lr. Elsewhere parameters agree to `atol`; the moments
  (where the goldens store them) to `moment_atol`.
  """
  modules, golden = load(method)
  assert int(new.step) == 1
  for n in networks:
    kind = n[:3]
    names = convert.official_names(n, new.params[n])
    adam = new.opt_state[n][1]   # (decay, adam) chain
    assert int(adam.count) == 1
    moments = {"exp_avg": traverse_util.flatten_dict(adam.mu),
               "exp_avg_sq": traverse_util.flatten_dict(adam.nu)}
    for path, p in traverse_util.flatten_dict(new.params[n]).items():
      official = names[path]
      want = convert.to_ours(golden[f"{kind}_after/{n}/{official}"])
      grad = convert.to_ours(golden[f"{kind}_grad/{n}/{official}"]
                             + config.optim.weight_decay * modules[f"{n}/{official}"])
      diff = np.abs(np.asarray(p, np.float64) - want)
      assert diff.max() <= 2 * config.optim.lr + 1e-6, (n, official)
      determined = np.abs(grad) > 1e-6
      assert not determined.any() or diff[determined].max() < atol, (
          n, official, diff[determined].max())
      for moment, tree in moments.items():
        key = f"{kind}_adam/{n}/{official}/{moment}"
        if key in golden.files:
          assert max_diff(tree[path], convert.to_ours(golden[key])) < moment_atol, key
