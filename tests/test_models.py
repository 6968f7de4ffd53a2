"""Shapes, ranges, parameter counts, init and weight conversion of the MGUIT networks."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import init as init_config
from configs import tiny
from mguit_jax import convert
from mguit_jax import models, train
from mguit_jax.models import discriminators, layers

B, SIZE = 2, 216


@pytest.fixture(scope="module")
def config():
  return tiny.get_config().model


@pytest.fixture(scope="module")
def nets(config):
  return models.build_networks(config, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def images():
  return jax.random.uniform(jax.random.key(1), (B, SIZE, SIZE, 3), minval=-1, maxval=1)


@pytest.fixture(scope="module")
def codes(nets, images):
  """Content and style maps of the images (domain a)."""
  return nets["enc_c"](images, "a"), nets["enc_s"](images, "a")


def _params(module) -> dict:
  return nnx.to_pure_dict(nnx.state(module, nnx.Param))


# ----------------------------------------------------------------------------
# Shapes and values.


def test_network_names(nets):
  assert tuple(nets) == models.NETWORK_NAMES


@pytest.mark.parametrize("domain", ["a", "b"])
def test_encoder_shapes_and_unit_norm(nets, images, domain):
  content = nets["enc_c"](images, domain)
  style = nets["enc_s"](images, domain)
  assert content.shape == (B, 54, 54, 32)
  assert style.shape == (B, 54, 54, 16)
  np.testing.assert_allclose(jnp.linalg.norm(content, axis=-1), 1.0, atol=1e-5)


def test_branches_differ(nets, images):
  """The a and b branches have their own weights."""
  assert not np.allclose(nets["enc_c"](images, "a"), nets["enc_c"](images, "b"))
  assert not np.allclose(nets["enc_s"](images, "a"), nets["enc_s"](images, "b"))


def test_unknown_domain_raises(nets, images):
  with pytest.raises(ValueError, match="domain='c'"):
    nets["enc_c"](images, "c")


@pytest.mark.parametrize("domain", ["a", "b"])
def test_generator_shape_range_and_noise(nets, codes, config, domain):
  gen = nets["gen"]
  content, style = codes
  out = gen(content, style, domain)
  assert out.shape == (B, SIZE, SIZE, 3)
  assert float(jnp.max(jnp.abs(out))) < 1.0
  np.testing.assert_array_equal(out, gen(content, style, domain))
  noise = jax.random.normal(jax.random.key(2), content.shape)
  noisy = gen(content, style, domain, noise=noise)
  assert float(jnp.max(jnp.abs(noisy - out))) > 1e-3
  # noise enters as content + noise_std * noise
  np.testing.assert_allclose(
      noisy, gen(content + config.noise_std * noise, style, domain), atol=1e-6)


def test_generator_noise_shape_checked(nets, codes):
  content, style = codes
  with pytest.raises(ValueError, match="noise shape"):
    nets["gen"](content, style, "a", noise=jnp.zeros(content.shape[:-1] + (1,)))


def test_generator_domain_heads_differ(nets, codes):
  content, style = codes
  out_a, out_b = nets["gen"](content, style, "a"), nets["gen"](content, style, "b")
  assert not np.allclose(out_a, out_b)


@pytest.mark.parametrize("name", ["dis_a", "dis_b"])
def test_domain_discriminator_scales(nets, images, name):
  outs = nets[name](images)
  assert [o.shape for o in outs] == [(B, 13, 13, 1), (B, 6, 6, 1), (B, 3, 3, 1)]


def test_content_discriminator_shapes(nets, codes):
  assert nets["dis_c"](codes[0]).shape == (B, 1, 1, 1)
  # The official 360x360 crops give 90x90 content maps and 5x5 logits.
  assert nets["dis_c"](jnp.zeros((1, 90, 90, 32))).shape == (1, 5, 5, 1)


@pytest.mark.parametrize("depth,smallest", [(1, 44), (2, 100), (3, 212)])
def test_content_discriminator_depth_and_smallest_crop(depth, smallest):
  assert discriminators.min_crop_for_content_discriminator(depth) == smallest
  dis = models.ContentDiscriminator(content_dim=4, width=4, depth=depth, init_std=0.02,
                                    rngs=nnx.Rngs(0))
  assert dis(jnp.zeros((1, smallest // 4, smallest // 4, 4))).shape == (1, 1, 1, 1)
  assert discriminators.content_logits_size((smallest - 4) // 4, depth) < 1
  assert discriminators.content_logits_size(90, 3) == 5   # the official 360 px crop


def test_a_crop_too_small_for_the_content_discriminator_is_refused(tmp_path):
  config = tiny.get_config()
  config.data.crop_size = config.data.resize_short = 96
  config.data.data_dir = str(tmp_path / "tfds")
  with pytest.raises(ValueError, match=r"crop_size=96 .* at config.model.dis_c_depth=3 crops "
                                       r"must be at least 212 px"):
    train.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists() and not (tmp_path / "tfds").exists()   # before anything
  with pytest.raises(ValueError, match="at least 44 px"):
    discriminators.check_crop(40, 1)


def test_dis_norm_instance(images):
  plain = models.MultiScaleDiscriminator(
      width=8, num_scales=3, norm="none", init_std=0.02, rngs=nnx.Rngs(3))
  normed = models.MultiScaleDiscriminator(
      width=8, num_scales=3, norm="instance", init_std=0.02, rngs=nnx.Rngs(3))
  x = images[:1, :64, :64]
  jax.tree.map(np.testing.assert_array_equal, _params(plain), _params(normed))
  for a, b in zip(plain(x), normed(x)):
    assert float(jnp.max(jnp.abs(a - b))) > 1e-4
  with pytest.raises(ValueError, match="dis_norm='batch'"):
    models.MultiScaleDiscriminator(
        width=8, num_scales=3, norm="batch", init_std=0.02, rngs=nnx.Rngs(3))


def test_generator_jits(nets):
  """The networks trace with a static domain and static shapes."""
  content = jnp.ones((1, 4, 4, 32)) / math.sqrt(32)
  style = jnp.ones((1, 4, 4, 16))
  step = nnx.jit(lambda g, c, s, n: g(c, s, "b", noise=n))
  out = step(nets["gen"], content, style, jnp.zeros_like(content))
  np.testing.assert_allclose(out, nets["gen"](content, style, "b"), atol=1e-5)


# ----------------------------------------------------------------------------
# Layers with PyTorch semantics.


def _torch_conv_transpose(x, w, b, stride, padding, output_padding):
  """Naive NumPy ConvTranspose2d on NCHW x with torch weight layout (in, out, kh, kw)."""
  n, _, h, wd = x.shape
  _, cout, k, _ = w.shape
  full = np.zeros((n, cout, (h - 1) * stride + k, (wd - 1) * stride + k))
  for y in range(h):
    for xx in range(wd):
      full[:, :, y * stride:y * stride + k, xx * stride:xx * stride + k] += np.einsum(
          "nc,cohw->nohw", x[:, :, y, xx], w)
  ho = (h - 1) * stride - 2 * padding + k + output_padding
  wo = (wd - 1) * stride - 2 * padding + k + output_padding
  full = np.pad(full, ((0, 0), (0, 0), (0, output_padding), (0, output_padding)))
  return full[:, :, padding:padding + ho, padding:padding + wo] + b[None, :, None, None]


def test_conv_transpose_matches_torch_definition(nets):
  """A torch-layout ConvTranspose2d weight, converted, reproduces torch's definition."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 5, 4, 64)).astype(np.float32)
  w = rng.standard_normal((64, 32, 3, 3)).astype(np.float32)
  bias = rng.standard_normal((32,)).astype(np.float32)
  params = _params(nets["gen"])
  official = convert.params_to_official("gen", params)
  official.update({"dec2.0.model.0.weight": w, "dec2.0.model.0.bias": bias})
  up1 = convert.params_from_official("gen", official, params)["up1"]["conv"]
  conv = layers.ConvTranspose(64, 32, 3, 2, 1, 1, init_std=0.02, rngs=nnx.Rngs(0))
  conv.kernel[...], conv.bias[...] = jnp.asarray(up1["kernel"]), jnp.asarray(up1["bias"])
  with jax.default_matmul_precision("highest"):
    got = np.asarray(conv(jnp.asarray(x))).transpose(0, 3, 1, 2)
  want = _torch_conv_transpose(x.transpose(0, 3, 1, 2), w, bias, 2, 1, 1)
  assert got.shape == want.shape == (2, 32, 10, 8)
  np.testing.assert_allclose(got, want, atol=1e-4)


def test_conv_transpose_gradients_match_dilated_form():
  """The sub-pixel form has the gradients of the input-dilated conv it replaces."""
  conv = layers.ConvTranspose(6, 4, 3, 2, 1, 1, init_std=0.5, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (2, 5, 3, 6))
  target = jax.random.normal(jax.random.key(1), (2, 10, 6, 4))

  def dilated(kernel, x):
    y = jax.lax.conv_general_dilated(
        x, kernel, (1, 1), ((1, 2), (1, 2)), lhs_dilation=(2, 2),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum((y + conv.bias[...] - target) ** 2)

  def subpixel(conv, x):
    return jnp.sum((conv(x) - target) ** 2)

  with jax.default_matmul_precision("highest"):
    want_kernel, want_x = jax.grad(dilated, argnums=(0, 1))(conv.kernel[...], x)
    got_conv, got_x = nnx.grad(subpixel, argnums=(0, 1))(conv, x)
  np.testing.assert_allclose(got_conv["kernel"][...], want_kernel, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(got_x, want_x, rtol=1e-4, atol=1e-4)


def test_avg_pool_excludes_padding():
  x = jnp.arange(25.0).reshape(1, 5, 5, 1)
  out = layers.avg_pool3_s2(x)
  assert out.shape == (1, 3, 3, 1)
  assert float(out[0, 0, 0, 0]) == pytest.approx((0 + 1 + 5 + 6) / 4)
  assert float(out[0, 1, 1, 0]) == pytest.approx(float(jnp.mean(x[0, 1:4, 1:4])))


def test_reflect_pad_asymmetric():
  x = jnp.arange(4.0).reshape(1, 1, 4, 1)
  row = layers.reflect_pad(x, ((0, 0), (1, 2)))[0, 0, :, 0]
  np.testing.assert_array_equal(row, [1, 0, 1, 2, 3, 2, 1])


# ----------------------------------------------------------------------------
# Parameter counts and init.

TINY_COUNTS = {"enc_c": 143_456, "enc_s": 24_224, "gen": 182_854,
               "dis_a": 130_731, "dis_b": 130_731, "dis_c": 167_073}


def test_param_counts_tiny(nets):
  assert {k: models.count_params(v) for k, v in nets.items()} == TINY_COUNTS


def test_param_count_full_official():
  model = init_config.get_config("preset=official").model
  abstract = nnx.eval_shape(lambda: models.build_networks(model, rngs=nnx.Rngs(0)))
  leaves = jax.tree.leaves(nnx.state(abstract["gen"], nnx.Param))
  assert all(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in leaves)
  total = sum(models.count_params(net) for net in abstract.values())
  assert abs(total - 49.4e6) <= 0.05e6, total


def test_init_statistics(nets, config):
  gen = nets["gen"]
  kernel = np.asarray(gen.mid[0].conv1.kernel[...])  # 3*3*48*48 samples
  assert abs(kernel.std() / config.init_std - 1) < 0.03
  assert abs(kernel.mean()) < 3 * config.init_std / math.sqrt(kernel.size)
  # Conv bias ~ U(+-1/sqrt(in*k*k)); transposed-conv bias uses out*k*k (torch's rule).
  for bias, fan_in in [(gen.mid[0].conv1.bias, 48 * 9), (gen.up1.conv.bias, 32 * 9)]:
    bias = np.abs(np.asarray(bias[...]))
    bound = 1 / math.sqrt(fan_in)
    assert bias.max() <= bound and bias.max() > 0.5 * bound
  np.testing.assert_array_equal(gen.up1.norm.scale[...], 1.0)
  np.testing.assert_array_equal(gen.up1.norm.bias[...], 0.0)


# ----------------------------------------------------------------------------
# Official weight conversion.


@pytest.mark.parametrize("name", models.NETWORK_NAMES)
def test_official_round_trip(nets, name):
  params = _params(nets[name])
  official = convert.params_to_official(name, params)
  assert len(official) == len(jax.tree.leaves(params))
  back = convert.params_from_official(name, official, params)
  assert jax.tree.structure(back) == jax.tree.structure(params)
  jax.tree.map(np.testing.assert_array_equal, back, params)


def test_official_layouts(nets):
  gen = convert.params_to_official("gen", _params(nets["gen"]))
  assert gen["dec2.0.model.0.weight"].shape == (64, 32, 3, 3)   # ConvTranspose (in, out)
  assert gen["dec2.0.model.1.weight"].shape == (32, 1, 1)       # LayerNorm
  assert gen["decA4.0.weight"].shape == (40, 3, 1, 1)
  enc_c = convert.params_to_official("enc_c", _params(nets["enc_c"]))
  assert enc_c["convB.0.model.1.weight"].shape == (8, 3, 7, 7)  # Conv2d (out, in)
  np.testing.assert_array_equal(
      enc_c["conv_share.0.model.5.weight"][2, 1],
      np.asarray(nets["enc_c"].shared.conv2.kernel[...])[:, :, 1, 2])
  enc_s = convert.params_to_official("enc_s", _params(nets["enc_s"]))
  assert enc_s["conv_A.4.shortcut.weight"].shape == (16, 16, 1, 1)
  dis_c = convert.params_to_official("dis_c", _params(nets["dis_c"]))
  assert dis_c["model.4.weight"].shape == (1, 32, 1, 1)


def test_conversion_errors(nets):
  params = _params(nets["dis_c"])
  good = convert.params_to_official("dis_c", params)
  missing = {k: v for k, v in good.items() if k != "model.3.model.1.weight"}
  with pytest.raises(ValueError, match=r"'model.3.model.1.weight'.*\(32, 32, 4, 4\)"):
    convert.params_from_official("dis_c", missing, params)
  with pytest.raises(ValueError, match="model.9.bias"):
    convert.params_from_official("dis_c", {**good, "model.9.bias": np.zeros(1)}, params)
  bad = {**good, "model.4.weight": np.zeros((32, 1, 1, 1))}
  with pytest.raises(ValueError, match=r"'model.4.weight' has shape \(32, 1, 1, 1\), "
                     r"expected \(1, 32, 1, 1\)"):
    convert.params_from_official("dis_c", bad, params)
  with pytest.raises(ValueError, match="network name 'disc'"):
    convert.params_to_official("disc", params)


@pytest.mark.parametrize("kernel,stride,channels", [(3, 1, 5), (7, 1, 3), (1, 1, 6), (4, 2, 3),
                                                    (3, 2, 4), (7, 2, 8), (4, 1, 2)])
def test_matmul_conv_equals_xla_conv(kernel, stride, channels):
  """The CPU matmul form of a conv (and its gradients) equals XLA's convolution."""
  rng = np.random.default_rng(kernel * 10 + stride)
  x = jnp.asarray(rng.normal(size=(2, 17, 14, channels)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(kernel, kernel, channels, 5)), jnp.float32)
  ref = lambda x, w: jax.lax.conv_general_dilated(
      x, w, (stride, stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  ours = lambda x, w: layers._conv_as_matmuls(x, w, stride)
  with jax.default_matmul_precision("highest"):
    np.testing.assert_allclose(ours(x, w), ref(x, w), atol=1e-5, rtol=1e-5)
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))
    for g_ours, g_ref in zip(jax.grad(loss(ours), (0, 1))(x, w), jax.grad(loss(ref), (0, 1))(x, w)):
      np.testing.assert_allclose(g_ours, g_ref, atol=1e-4, rtol=1e-5)
