"""Network parity with the official PyTorch MGUIT (golden tensors, tiny widths).

Parameters come from `modules.npz` through `mguit_jax.convert`. Whole networks
are compared on the shared 216x216 inputs (`modules.npz`); single blocks and
leaf layers on small inputs (`blocks.npz`), each fed the golden input of the
block so that an error points at the block that causes it.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import tiny
from mguit_jax import convert
from mguit_jax import models
from mguit_jax.models import layers

pytestmark = pytest.mark.parity

DATA = pathlib.Path(__file__).parent.parent / "testdata"
BLOCK_TOL = 1e-5
NET_TOL = 1e-4


@pytest.fixture(autouse=True)
def _highest_precision():
  with jax.default_matmul_precision("highest"):
    yield


@pytest.fixture(scope="module")
def modules_npz():
  return dict(np.load(DATA / "modules.npz"))


@pytest.fixture(scope="module")
def blocks_npz():
  return dict(np.load(DATA / "blocks.npz"))


@pytest.fixture(scope="module")
def nets(modules_npz):
  """The six tiny networks holding the official initial parameters.

  Built abstractly (no random init) and filled from the golden state dicts.
  """
  abstract = nnx.eval_shape(
      lambda: models.build_networks(tiny.get_config().model, rngs=nnx.Rngs(0)))
  built = {}
  for name, net in abstract.items():
    prefix = f"{convert.OFFICIAL_NAMES[name]}/state/"
    state_dict = {k[len(prefix):]: v for k, v in modules_npz.items()
                  if k.startswith(prefix)}
    graphdef, state = nnx.split(net)
    params = convert.params_from_official(name, state_dict, nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, params))
    built[name] = nnx.merge(graphdef, state)
  return built


def nhwc(a: np.ndarray) -> np.ndarray:
  return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


class Checker:
  """Compares arrays with golden (NCHW) tensors and reports every mismatch at once."""

  def __init__(self, golden: dict[str, np.ndarray], tol: float):
    self.golden, self.tol, self.rows = golden, tol, []

  def __call__(self, got: jax.Array, key: str) -> jax.Array:
    """Records the error of `got` against golden `key`; returns the golden (NHWC)."""
    want = nhwc(self.golden[key])
    got = np.asarray(got)
    assert got.shape == want.shape, f"{key}: shape {got.shape} != {want.shape}"
    max_abs = float(np.max(np.abs(got - want)))
    rel = max_abs / max(float(np.max(np.abs(want))), 1e-30)
    self.rows.append((key, max_abs, rel))
    return jnp.asarray(want)

  def verify(self):
    assert self.rows, "nothing compared"
    report = "\n".join(f"  {k}: max-abs {a:.2e}, rel {r:.2e}" for k, a, r in self.rows)
    worst = max(self.rows, key=lambda row: row[1])
    print(f"\nworst {worst[0]}: max-abs {worst[1]:.2e}, rel {worst[2]:.2e}")
    bad = [row for row in self.rows if not row[1] <= self.tol]
    assert not bad, f"tolerance {self.tol:g} exceeded:\n{report}"


# ----------------------------------------------------------------------------
# Whole networks on the shared 216x216 inputs.


@pytest.mark.parametrize("domain", ["a", "b"])
def test_content_encoder(nets, modules_npz, domain):
  inputs = np.load(DATA / "inputs.npz")
  check = Checker(modules_npz, NET_TOL)
  check(nets["enc_c"](nhwc(inputs[f"x{domain}"]), domain), f"enc_c/out/{domain}")
  check.verify()


@pytest.mark.parametrize("domain", ["a", "b"])
def test_style_encoder(nets, modules_npz, domain):
  inputs = np.load(DATA / "inputs.npz")
  check = Checker(modules_npz, NET_TOL)
  check(nets["enc_s"](nhwc(inputs[f"x{domain}"]), domain), f"enc_a/out/{domain}")
  check.verify()


@pytest.mark.parametrize("domain, other", [("a", "b"), ("b", "a")])
def test_generator(nets, modules_npz, domain, other):
  content = nhwc(modules_npz[f"enc_c/out/{other}"])
  style = nhwc(modules_npz[f"enc_a/out/{domain}"])
  check = Checker(modules_npz, NET_TOL)
  check(nets["gen"](content, style, domain), f"gen/out/{domain}")
  check.verify()


@pytest.mark.parametrize("name, official, domain",
                         [("dis_a", "disA", "a"), ("dis_b", "disB", "b")])
def test_domain_discriminator(nets, modules_npz, name, official, domain):
  inputs = np.load(DATA / "inputs.npz")
  outs = nets[name](nhwc(inputs[f"x{domain}"]))
  assert len(outs) == 3
  check = Checker(modules_npz, NET_TOL)
  for s, out in enumerate(outs):
    check(out, f"{official}/out/scale{s}")
  check.verify()


@pytest.mark.parametrize("domain", ["a", "b"])
def test_content_discriminator(nets, modules_npz, domain):
  out = nets["dis_c"](nhwc(modules_npz[f"enc_c/out/{domain}"]))
  assert out.shape == (2, 1, 1, 1)
  check = Checker(modules_npz, NET_TOL)
  check(out.reshape(-1), f"disContent/out/{domain}")
  check.verify()


# ----------------------------------------------------------------------------
# Blocks and leaf layers on small inputs.


@pytest.mark.parametrize("domain", ["a", "b"])
def test_content_encoder_blocks(nets, blocks_npz, domain):
  enc, D = nets["enc_c"], domain.upper()
  branch = getattr(enc, f"branch_{domain}").layers
  check = Checker(blocks_npz, BLOCK_TOL)
  x = jnp.asarray(nhwc(blocks_npz[f"enc_c/in/x{domain}"]))
  act = f"enc_c/act_{domain}"
  for i, block in enumerate(branch):
    x = check(block(x), f"{act}/conv{D}.{i}/out")
  x = check(enc.shared(x), f"{act}/conv_share.0/out")
  check(layers.l2_normalize(x), f"enc_c/out/{domain}")
  check(enc(nhwc(blocks_npz[f"enc_c/in/x{domain}"]), domain), f"enc_c/out/{domain}")
  check.verify()


def test_content_encoder_leaves(nets, blocks_npz):
  branch, act = nets["enc_c"].branch_a.layers, "enc_c/act_a/convA"
  check = Checker(blocks_npz, BLOCK_TOL)
  x = jnp.asarray(nhwc(blocks_npz["enc_c/in/xa"]))
  # convA.0: LeakyReLUConv2d (reflect 3, 7x7 conv, slope 0.01).
  h = check(layers.reflect_pad(x, 3), f"{act}.0.model.0/out")
  h = check(branch[0].conv(h), f"{act}.0.model.1/out")
  x = check(jax.nn.leaky_relu(h, 0.01), f"{act}.0.model.2/out")
  # convA.1: ReLUINSConv2d (reflect 1, 3x3 stride-2 conv, IN, ReLU).
  h = check(layers.reflect_pad(x, 1), f"{act}.1.model.0/out")
  h = check(branch[1].conv(h), f"{act}.1.model.1/out")
  h = check(layers.instance_norm(h), f"{act}.1.model.2/out")
  check(jax.nn.relu(h), f"{act}.1.model.3/out")
  # convA.3: INSResBlock.
  x = jnp.asarray(nhwc(blocks_npz[f"{act}.2/out"]))
  h = check(layers.reflect_pad(x, 1), f"{act}.3.model.0/out")
  h = check(branch[3].conv1(h), f"{act}.3.model.1/out")
  h = check(layers.instance_norm(h), f"{act}.3.model.2/out")
  h = check(jax.nn.relu(h), f"{act}.3.model.3/out")
  h = check(layers.reflect_pad(h, 1), f"{act}.3.model.4/out")
  h = check(branch[3].conv2(h), f"{act}.3.model.5/out")
  check(layers.instance_norm(h), f"{act}.3.model.6/out")
  check.verify()


@pytest.mark.parametrize("domain", ["a", "b"])
def test_style_encoder_blocks(nets, blocks_npz, domain):
  enc, D = nets["enc_s"], domain.upper()
  branch, act = getattr(enc, f"branch_{domain}"), f"enc_a/act_{domain}/conv_{D}"
  check = Checker(blocks_npz, BLOCK_TOL)
  x = jnp.asarray(nhwc(blocks_npz[f"enc_a/in/x{domain}"]))
  x = check(layers.reflect_pad(x, ((1, 2), (1, 2))), f"{act}.0/out")
  x = check(branch.stem(x), f"{act}.1/out")
  for i, block in enumerate(branch.blocks):
    x = check(block(x), f"{act}.{i + 2}/out")
  check(jax.nn.leaky_relu(x, 0.2), f"{act}.5/out")
  check(enc(nhwc(blocks_npz[f"enc_a/in/x{domain}"]), domain), f"enc_a/out/{domain}")
  check.verify()


def test_style_encoder_leaves(nets, blocks_npz):
  blocks, act = nets["enc_s"].branch_a.blocks, "enc_a/act_a/conv_A"
  check = Checker(blocks_npz, BLOCK_TOL)

  def pre(x, conv, p):  # IN, LeakyReLU 0.2, reflect pad 1, 3x3 conv
    h = check(layers.instance_norm(x), f"{p}.0/out")
    h = check(jax.nn.leaky_relu(h, 0.2), f"{p}.1/out")
    h = check(layers.reflect_pad(h, 1), f"{p}.2/out")
    return check(conv(h), f"{p}.3/out")

  # conv_A.2: BasicBlock with average pools.
  x = jnp.asarray(nhwc(blocks_npz[f"{act}.1/out"]))
  h = pre(x, blocks[0].conv1, f"{act}.2.conv")
  h = check(layers.instance_norm(h), f"{act}.2.conv.4/out")
  h = check(jax.nn.leaky_relu(h, 0.2), f"{act}.2.conv.5/out")
  h = check(layers.reflect_pad(h, 1), f"{act}.2.conv.6.0/out")
  h = check(blocks[0].conv2(h), f"{act}.2.conv.6.1/out")
  check(layers.avg_pool2(h), f"{act}.2.conv.6.2/out")
  s = check(layers.avg_pool2(x), f"{act}.2.shortcut.0/out")
  check(blocks[0].shortcut(s), f"{act}.2.shortcut.1/out")
  # conv_A.4: BasicBlock4, no pools.
  x = jnp.asarray(nhwc(blocks_npz[f"{act}.3/out"]))
  h = pre(x, blocks[2].conv1, f"{act}.4.conv")
  h = check(layers.instance_norm(h), f"{act}.4.conv.4/out")
  h = check(jax.nn.leaky_relu(h, 0.2), f"{act}.4.conv.5/out")
  h = check(layers.reflect_pad(h, 1), f"{act}.4.conv.6/out")
  check(blocks[2].conv2(h), f"{act}.4.conv.7/out")
  check(blocks[2].shortcut(x), f"{act}.4.shortcut/out")
  check.verify()


def test_generator_blocks(nets, blocks_npz):
  gen = nets["gen"]
  check = Checker(blocks_npz, BLOCK_TOL)
  content = jnp.asarray(nhwc(blocks_npz["gen/in/content"]))
  style = jnp.asarray(nhwc(blocks_npz["gen/in/style"]))
  act = "gen/act_a"
  x = check(content, f"{act}/dec_share.0/out")  # noise layer: identity in eval
  x = check(gen.trunk(x), f"{act}/dec_share.1/out")
  x = check(jnp.concatenate([x, style], -1), f"{act}/dec1.0/in")
  for i, block in enumerate(gen.mid):
    x = check(block(x), f"{act}/dec1.{i}/out")
  x = check(jnp.concatenate([x, style], -1), f"{act}/dec2.0/in")
  check(x, f"{act}/dec2.0.model.0/in")
  h = check(gen.up1.conv(x), f"{act}/dec2.0.model.0/out")
  h = check(gen.up1.norm(h), f"{act}/dec2.0.model.1/out")
  check(jax.nn.relu(h), f"{act}/dec2.0.model.2/out")
  trunk = check(gen.up1(x), f"{act}/dec2.0/out")
  style2 = check(layers.upsample2(style), f"{act}/up/out")
  style4 = check(layers.upsample2(style2), f"{act}/up@1/out")
  for d in ("a", "b"):
    D, act = d.upper(), f"gen/act_{d}"
    x = check(jnp.concatenate([trunk, style2], -1), f"{act}/dec{D}3.0/in")
    x = check(getattr(gen, f"up2_{d}")(x), f"{act}/dec{D}3.0/out")
    x = check(jnp.concatenate([x, style4], -1), f"{act}/dec{D}4.0/in")
    x = check(getattr(gen, f"out_{d}")(x), f"{act}/dec{D}4.0/out")
    check(jnp.tanh(x), f"{act}/dec{D}4.1/out")
    check(gen(content, style, d), f"gen/out/{d}")
  check.verify()


def test_domain_discriminator_blocks(nets, blocks_npz):
  dis = nets["dis_a"]
  check = Checker(blocks_npz, BLOCK_TOL)
  x = jnp.asarray(nhwc(blocks_npz["disA/in/x"]))
  for s, net in enumerate(dis.scales):
    h = x
    for i, layer in enumerate(net.layers):
      h = check(layer(h), f"disA/act/Diss.{s}.{i}/out")
    x = check(layers.avg_pool3_s2(x), "disA/act/downsample" + (f"@{s}" if s else "") + "/out")
  for s, out in enumerate(dis(nhwc(blocks_npz["disA/in/x"]))):
    check(out, f"disA/out/scale{s}")
  check.verify()


def test_content_discriminator_blocks(nets, blocks_npz):
  dis = nets["dis_c"]
  check = Checker(blocks_npz, BLOCK_TOL)
  x = jnp.asarray(nhwc(blocks_npz["disContent/in/x"]))
  for i, layer in enumerate(dis.net.layers):
    x = check(layer(x), f"disContent/act/model.{i}/out")
  check(dis(nhwc(blocks_npz["disContent/in/x"])).reshape(-1), "disContent/out")
  check.verify()
