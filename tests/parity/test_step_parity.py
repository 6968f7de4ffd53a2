"""Training-iteration parity with the official PyTorch MGUIT (`train_step.npz`).

One full iteration (D^a, D^b, D_c, then encoders, generator and memory) and one
content-discriminator-only iteration from the official initial parameters, with
the official random draws injected through `full_step(randoms=...)`: the 21
losses (1e-5 relative), the memory after (1e-5), every gradient, every
parameter after Adam, and our optimiser applied to the golden gradients.
Gradient tolerances follow what float32 resolves (see `tests/parity/harness.py`):
the cycle path through instance norm (content encoder, generator) to 3e-2
relative L2 with cosine >= 0.999; biases with a true gradient of exactly zero
and six style-encoder biases with a near-cancelling one, named in
`parity.ZERO_GRADIENT` and `parity.TINY_GRADIENT`, to absolute bounds.
"""

from __future__ import annotations

import numpy as np
import pytest

from configs import tiny
from tests.parity import harness as parity

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def step():
  return parity.by_group(parity.train_step_comparisons(tiny.get_config()))


@pytest.fixture(scope="module")
def content_d_step():
  return parity.by_group(parity.content_d_step_comparisons(tiny.get_config()))


@pytest.mark.parametrize("group", parity.STEP_GROUPS)
def test_full_iteration(step, group):
  parity.assert_passed(step.get(group, []))


@pytest.mark.parametrize("group", parity.CONTENT_D_GROUPS)
def test_content_d_iteration(content_d_step, group):
  parity.assert_passed(content_d_step.get(group, []))


def test_every_tensor_is_compared(step, content_d_step):
  golden = parity.load(parity.DATA_DIR, "train_step.npz")
  assert set(step) == set(parity.STEP_GROUPS)
  assert set(content_d_step) == set(parity.CONTENT_D_GROUPS)
  assert len(step["step/losses"]) == 21
  grads = {r.name for g in parity.OFFICIAL for r in step[f"step/grad/{g}"]}
  assert grads == {k[len("grad/"):] for k in golden if k.startswith("grad/")}
  assert len(grads) == 182
  assert len(content_d_step["content-D step/grad/dis_c"]) == 10


def test_named_tolerance_classes_exist():
  """A typo in the named tensors would silently give them the default tolerance."""
  golden = parity.load(parity.DATA_DIR, "train_step.npz")
  names = {k[len("grad/"):] for k in golden if k.startswith("grad/")}
  assert len(parity.ZERO_GRADIENT) == 32 and parity.ZERO_GRADIENT <= names
  assert len(parity.TINY_GRADIENT) == 6 and parity.TINY_GRADIENT <= names
  # Zero true gradient: the golden values are rounding noise.
  assert max(np.abs(golden[f"grad/{n}"]).max() for n in parity.ZERO_GRADIENT) <= 1.1e-5


def test_recorded_draws_are_regenerated():
  randoms = parity.golden_randoms(parity.DATA_DIR)
  assert randoms["rand_a"].shape == randoms["rand_b"].shape == (20, 16)
  assert randoms["noise_a"].shape == randoms["noise_b"].shape == (2, 4, 54, 54, 32)
  assert randoms["noise_aba"].shape == (2, 54, 54, 32)
  # The first generator call's input k of example b is golden batch row k * 2 + b.
  head = parity.load(parity.DATA_DIR, "train_step.npz")["draws/8/head"]
  np.testing.assert_array_equal(randoms["noise_a"][0, 0, 0, :16, 0], head)


def test_compare_metrics():
  want = np.array([1.0, -2.0, 0.5])
  row = parity.compare("g", "t", want * 1.01, want, parity.Tolerance(max_rel=5e-3))
  assert row.max_abs == pytest.approx(0.02) and row.max_rel == pytest.approx(0.01)
  assert row.rel_l2 == pytest.approx(0.01) and row.cosine == pytest.approx(1.0)
  assert not row.ok
  assert parity.compare("g", "t", want * 1.01, want, parity.Tolerance(max_rel=2e-2)).ok
  assert parity.compare("g", "t", -want, want, parity.GRAD).cosine == pytest.approx(-1.0)
  with pytest.raises(ValueError, match="g t: shape"):
    parity.compare("g", "t", want[:2], want, parity.GRAD)
  with pytest.raises(AssertionError, match="1 of 1 comparisons exceed"):
    parity.assert_passed([row])
