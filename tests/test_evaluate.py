"""End to end: classifier training and evaluation of a tiny checkpoint, result files, refusals.

The FID Inception here has random weights (no torch needed) and runs at 75 px instead of
299 to keep the CPU time small; the numbers only check the plumbing and the invariants.
"""

import dataclasses
import functools
import json

from flax import nnx
import jax
import ml_collections
import numpy as np
import pytest

from configs import tiny
from mguit_jax import checkpointing, data, evaluate, train_classifier, train_state
from mguit_jax.metrics import inception, utils


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """(config, workdir): a tiny checkpoint at step 1, random FID weights, a trained classifier."""
  root = tmp_path_factory.mktemp("eval")
  config = tiny.get_config()
  config.data.data_dir = str(root / "tfds")
  config.train.num_devices = 1
  config.eval.num_inputs = 3
  config.eval.num_styles = 2
  config.eval.num_pairs = 1
  config.eval.batch_size = 2
  config.eval.metric_batch_size = 4
  config.eval.inception_size = 75
  config.eval.weights_dir = str(root / "weights")
  config.eval.classifier_steps = 2
  config.eval.classifier_batch_size = 2
  config.eval.classifier_log_every = 1
  data.ensure_prepared(config)
  # Random "pytorch-fid" weights, with the ImageNet layer, where they are looked up.
  make = lambda: inception.InceptionV3(logits=True, rngs=nnx.Rngs(0))
  utils.save_params(root / "weights" / "inception_fid_pytorch_fid.npz", utils.random_params(make),
                    {"source": "random", "logits": True})
  meta = train_classifier.train_classifier(config, root / "classifier")
  assert meta["classes"] == ["sunny", "night"] and meta["test_images"] == 8
  correct = meta["test_accuracy"] * meta["test_images"]   # a share of the 8 test images
  assert 0.0 <= meta["test_accuracy"] <= 1.0 and correct == pytest.approx(round(correct))
  config.eval.classifier = str(root / "classifier" / train_classifier.CLASSIFIER_FILE)

  # The tiny model with random weights (init_state's shapes; its compilation is slow on CPU).
  workdir = root / "run"
  abstract = jax.eval_shape(functools.partial(train_state.init_state, config))
  rng = np.random.default_rng(0)
  state = jax.tree.map(lambda s: rng.normal(0, 0.05, s.shape).astype(s.dtype)
                       if s.dtype == np.float32 else np.zeros(s.shape, s.dtype), abstract)
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints", max_to_keep=1)
  ckpt.save(1, state, data.make_train_iterator(config), config)
  ckpt.wait()
  ckpt.close()
  return config, workdir


@pytest.mark.slow
def test_evaluate_writes_every_metric_and_refuses_to_overwrite(run):
  config, workdir = run
  results = evaluate.evaluate(workdir, config=config)
  for d in evaluate.DIRECTIONS:
    assert results[f"{d}/lpips"] > 0.0   # random weights: random styles give other outputs
    assert np.isfinite(results[f"{d}/fid"])
    assert 1.0 <= results[f"{d}/is"] <= 2.0 + 1e-6 and 1.0 <= results[f"{d}/cis"] <= 2.0 + 1e-6
    assert 1.0 <= results[f"{d}/is_imagenet"] <= 1008
    assert 0.0 <= results[f"{d}/cycle/l1"] <= 1.0 and results[f"{d}/cycle/psnr"] > 0.0
    for kind in ("paired", "paired_input"):
      assert 0.0 <= results[f"{d}/{kind}/all/l1"] <= 1.0
      assert results[f"{d}/{kind}/all/psnr"] > 0.0
      assert results[f"{d}/{kind}/all/lpips"] >= 0.0
  # The untranslated floor compares the same image pairs both ways (sunny vs night: ~8 dB).
  for m in ("l1", "psnr", "lpips"):
    assert results[f"a2b/paired_input/all/{m}"] == pytest.approx(
        results[f"b2a/paired_input/all/{m}"], rel=1e-5), m
  assert 6.0 < results["a2b/paired_input/all/psnr"] < 11.0
  report = json.loads((workdir / "eval_1.json").read_text())
  assert report["step"] == 1 and report["metrics"] == pytest.approx(results)
  protocol = report["protocol"]
  assert protocol["a2b/num_inputs"] == 3 and protocol["a2b/num_random_styles"] == 2
  assert protocol["a2b/lpips_pairs_per_input"] == 1 and protocol["b2a/fid_num_real"] == 4
  assert protocol["inception_size"] == 75 and protocol["fid_weights"] == "random"
  md = (workdir / "eval_1.md").read_text()
  assert "| lpips |" in md and "| paired/all/psnr |" in md
  assert list(workdir.glob("events.out.tfevents.*"))

  with pytest.raises(FileExistsError, match="eval_1.json exists"):
    evaluate.evaluate(workdir, config=config, metrics=["lpips"])
  other_pair = ml_collections.ConfigDict(config.to_dict())
  other_pair.data.domains = "night_sunny"
  with pytest.raises(ValueError, match="checkpoint was trained on dataset 'synthetic' domains "
                                       "'sunny_night'"):
    evaluate.evaluate(workdir, config=other_pair, metrics=["lpips"], overwrite=True)
  no_classifier = ml_collections.ConfigDict(config.to_dict())
  no_classifier.eval.classifier = ""
  with pytest.raises(FileNotFoundError, match="train_classifier"):
    evaluate.evaluate(workdir, config=no_classifier, metrics=["cis"], overwrite=True)
  assert json.loads((workdir / "eval_1.json").read_text()) == report   # untouched


@dataclasses.dataclass
class _Identity:
  """A translator that returns its input for every style: deterministic, no translation."""
  config: ml_collections.ConfigDict
  step: int = 7

  def translate(self, images, direction, *, num_styles=0, seed=0):
    del direction, seed
    return np.repeat(images[:, None], 1 + num_styles, axis=1)


@pytest.mark.slow
def test_a_deterministic_translator_has_no_diversity(run, tmp_path):
  config, _ = run
  results = evaluate.evaluate(tmp_path, config=config, metrics=["lpips", "cis", "paired"],
                              translator=_Identity(config))
  for d in evaluate.DIRECTIONS:
    assert results[f"{d}/lpips"] == pytest.approx(0.0, abs=1e-6)
    assert results[f"{d}/cis"] == pytest.approx(1.0)
    for key in [k for k in results if k.startswith(f"{d}/paired/")]:
      assert results[key] == pytest.approx(results[key.replace("/paired/", "/paired_input/")])
  assert (tmp_path / "eval_7.json").is_file()

  # --merge adds a metric to the same step's report: the cycle of an identity is exact
  # (PSNR capped at 100 dB); what was there stays.
  merged = evaluate.evaluate(tmp_path, config=config, metrics=["cycle"], merge=True,
                             translator=_Identity(config))
  for d in evaluate.DIRECTIONS:
    assert merged[f"{d}/cycle/l1"] == 0.0 and merged[f"{d}/cycle/psnr"] == pytest.approx(100.0)
  assert {k: merged[k] for k in results} == results
  report = json.loads((tmp_path / "eval_7.json").read_text())
  assert report["requested"] == ["cis", "cycle", "lpips", "paired"]
  assert "| cycle/psnr |" in (tmp_path / "eval_7.md").read_text()
  # Nothing left to compute: the report's numbers come back without a translation.
  refuses = _Identity(config)
  refuses.translate = lambda *a, **k: pytest.fail("translated again")
  assert evaluate.evaluate(tmp_path, config=config, metrics=["cycle", "lpips"], merge=True,
                           translator=refuses) == report["metrics"]
  other = ml_collections.ConfigDict(config.to_dict())
  other.eval.num_pairs = 3
  with pytest.raises(FileExistsError, match="other config.eval settings"):
    evaluate.evaluate(tmp_path, config=other, metrics=["fid"], merge=True,
                      translator=_Identity(other))
  assert json.loads((tmp_path / "eval_7.json").read_text()) == report
