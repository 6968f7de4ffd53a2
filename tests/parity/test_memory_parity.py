"""Memory parity with the official PyTorch MGUIT (memory.npz goldens, parity README §5, §7).

The official update, reads and losses on two synthetic cases (batch 2, 16x16
maps, sizes (10, 5, 2, 3)), starting from the initial memory of inputs.npz and
with the recorded random draws injected. case1 has a class present only in
domain A (the read-only path) and an overlap of a class-1 and a class-2 box.
Observed on CPU (float32): max abs error 3.6e-7 (memory), 2.4e-7 (reads),
about 1e-7 (losses).
"""

from __future__ import annotations

import functools
import pathlib

import jax
import numpy as np
import pytest

from configs import common
from mguit_jax import memory as mem

pytestmark = pytest.mark.parity

DATA = pathlib.Path(__file__).parent.parent / "testdata"
SIZES = (10, 5, 2, 3)
OFFSETS = np.cumsum((0,) + SIZES[:-1])
TOL = 1e-5
CASES = ("case1", "case2")


@pytest.fixture(scope="module")
def golden():
  return dict(np.load(DATA / "memory.npz"))


@pytest.fixture(scope="module")
def initial_memory():
  inputs = np.load(DATA / "inputs.npz")
  return mem.Memory(*(np.concatenate([inputs[f"mem/{i}/{name}"] for i in range(len(SIZES))])
                      for name in ("key", "val_a", "val_b")))


def _nhwc(x):
  return np.transpose(x, (0, 2, 3, 1))


def _inputs(golden, case):
  maps = {name: _nhwc(golden[f"{case}/in/{name}"])
          for name in ("cont_a", "cont_b", "sty_a", "sty_b", "masks_a", "masks_b")}
  # Draw order: class 0 rand1, class 0 rand2, class 1 rand1, ...; rand1 = A queries.
  draws = [golden[f"{case}/draws/{j}"] for j in range(2 * len(SIZES))]
  maps["rand_a"] = np.concatenate(draws[0::2])
  maps["rand_b"] = np.concatenate(draws[1::2])
  return maps


def _official_config():
  config = common.base_config("official").memory
  assert (config.update_rule, config.loss, tuple(config.sizes)) == ("official", "official", SIZES)
  return config


@pytest.fixture(scope="module")
def outputs(golden, initial_memory):
  fn = jax.jit(functools.partial(mem.train_forward, config=_official_config(), sizes=SIZES))
  with jax.default_matmul_precision("highest"):
    return {case: jax.device_get(fn(initial_memory, **_inputs(golden, case)))
            for case in CASES}


def _assert_close(actual, expected, what):
  err = float(np.abs(np.asarray(actual, np.float64) - expected).max())
  assert err <= TOL, f"{what}: max abs error {err:.3g} > {TOL}"
  return err


@pytest.mark.parametrize("case", CASES)
def test_updated_memory(golden, outputs, case):
  new, _, _ = outputs[case]
  for field, name in zip(mem.Memory._fields, ("key", "val_a", "val_b")):
    expected = np.concatenate([golden[f"{case}/mem_updated/{i}/{name}"]
                               for i in range(len(SIZES))])
    _assert_close(getattr(new, field), expected, f"{case} updated {field}")


@pytest.mark.parametrize("case", CASES)
def test_training_reads(golden, outputs, case):
  _, reads, _ = outputs[case]
  assert len(reads) == 8
  for name, value in reads.items():
    _assert_close(value, _nhwc(golden[f"{case}/out/{name}"]), f"{case} {name}")


@pytest.mark.parametrize("case", CASES)
def test_losses(golden, outputs, case):
  _, _, losses = outputs[case]
  _assert_close(losses["key"], golden[f"{case}/out/key_loss"], f"{case} key_loss")
  _assert_close(losses["value"], golden[f"{case}/out/value_loss"], f"{case} value_loss")


@pytest.mark.parametrize("case", CASES)
def test_second_read_only_reads(golden, outputs, case):
  new, _, _ = outputs[case]
  maps = _inputs(golden, case)
  with jax.default_matmul_precision("highest"):
    sty_aa = mem.read_class_aware(new.keys, new.values_a, maps["cont_a"], maps["masks_a"], SIZES)
    sty_bb = mem.read_class_aware(new.keys, new.values_b, maps["cont_b"], maps["masks_b"], SIZES)
  _assert_close(sty_aa, _nhwc(golden[f"{case}/second/sty_aa"]), f"{case} second sty_aa")
  _assert_close(sty_bb, _nhwc(golden[f"{case}/second/sty_bb"]), f"{case} second sty_bb")


@pytest.mark.parametrize("case", CASES)
def test_internal_assignments(golden, initial_memory, case):
  """Update top-1 items, per-class loss targets and the global loss targets."""
  maps = _inputs(golden, case)
  item_cls = mem.item_classes(SIZES)
  for domain in "ab":
    cont = maps[f"cont_{domain}"].reshape(-1, initial_memory.keys.shape[1])
    member, label = mem._membership(maps[f"masks_{domain}"], cont.shape[0], True)
    scores = cont @ initial_memory.keys.T
    beta = mem._masked_softmax(scores, member[:, item_cls], axis=0)
    top1 = np.asarray(mem._class_argmax(scores, item_cls, len(SIZES)))
    target = np.asarray(mem._class_argmax(beta, item_cls, len(SIZES)))
    member = np.asarray(member)
    for c in range(len(SIZES)):
      if f"{case}/int/class{c}/top1_{domain}" not in golden:
        continue   # the class was not updated in this case
      pixels = member[:, c]
      np.testing.assert_array_equal(top1[pixels, c] - OFFSETS[c],
                                    golden[f"{case}/int/class{c}/top1_{domain}"])
      np.testing.assert_array_equal(target[pixels, c] - OFFSETS[c],
                                    golden[f"{case}/int/class{c}/gather_{domain}"])
    global_target = target[np.arange(len(label)), np.asarray(label)]
    np.testing.assert_array_equal(global_target, golden[f"{case}/int/gathers_{domain}"])
