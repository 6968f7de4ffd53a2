"""What several test files share: a small paper-preset config and comparisons of runs."""

import jax
import jax.numpy as jnp
import numpy as np

from configs import tiny

# 64 px crops, the content discriminator one stride-2 layer deep as their 16 px content
# maps need: what a training step's behaviour does not depend on, at a fraction of the cost.
SMALL_CROPS = {"data.crop_size": 64, "data.resize_short": 64, "model.dis_c_depth": 1}


def small_paper_config():
  """The paper preset at the tiny widths on `SMALL_CROPS` (init N(0, 0.02) as the demo):
  the cheapest config whose full iteration learns."""
  config = tiny.get_config("preset=paper")
  config.update_from_flattened_dict({**SMALL_CROPS, "model.init_std": 0.02})
  return config


def max_abs_diff(a, b) -> float:
  """The largest |a - b| over all leaves of two pytrees of the same structure."""
  return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def assert_same_first_iteration(got, want, *, lr: float, memory_atol: float) -> None:
  """Two train states after one full iteration that summed the batch in different orders.

  The memory agrees to `memory_atol`. Gradients (read from Adam's first moment, 0.5 g)
  agree in direction (cosine >= 0.999); the cycle path amplifies rounding through instance
  norm, and conv biases feeding an instance norm have a true gradient of 0 (|g| ~ 1e-5
  noise), so parameters are only held to Adam's bound: within 2 lr of each other.
  """
  for a, b in zip(jax.tree.leaves(got.memory), jax.tree.leaves(want.memory)):
    np.testing.assert_allclose(a, b, atol=memory_atol)
  for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(want.params)):
    np.testing.assert_allclose(a, b, atol=2 * lr * 1.001)
  first_moments = lambda s: jax.tree.leaves([o[-1].mu for o in s.opt_state.values()])
  for a, b in zip(first_moments(got), first_moments(want)):
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if np.abs(a).max() > 1e-4:  # not a zero-true-gradient bias
      cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
      assert cosine >= 0.999, cosine
