r"""Fine-tunes the domain classifier that IS and CIS are computed with (library and CLI).

  python -m mguit_jax.train_classifier --config configs/demo.py --workdir runs/classifier
  python -m mguit_jax.evaluate --workdir runs/demo --config configs/demo.py \
      --config.eval.classifier=runs/classifier/classifier.npz

The classifier is the FID Inception-v3 (weights from `config.eval.weights_dir`) with a new
linear head over the dataset's two domains (class 0 = domain A, 1 = domain B). It trains
with Adam for `config.eval.classifier_steps` steps on batches of
`config.eval.classifier_batch_size` training images, half from each domain, randomly
cropped (`config.data.crop_size`) and flipped as the translation model sees them;
`classifier_finetune=head` trains the head only, `all` the whole network. At the end it
reports the accuracy on the test images of both domains and writes
`WORKDIR/classifier.npz` (weights and metadata; never replaced without --overwrite).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from absl import flags, logging
from clu import metric_writers, periodic_actions
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax

from mguit_jax import cli, data, evaluate
from mguit_jax.metrics import classifier as classifier_lib
from mguit_jax.metrics import inception, inception_weights, utils

CLASSIFIER_FILE = "classifier.npz"
FINETUNE = ("head", "all")


def _loss(trainable, frozen, images, labels, *, graphdef, size):
  model = nnx.merge(graphdef, {**frozen, **trainable})
  logits = model(inception.preprocess(images, size))
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return loss, jnp.mean(jnp.argmax(logits, -1) == labels)


def _train_step(trainable, opt_state, frozen, images, labels, *, graphdef, size, tx):
  """One Adam step on the trainable parameters; returns them, the optimiser state, metrics."""
  loss_fn = functools.partial(_loss, graphdef=graphdef, size=size)
  (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      trainable, frozen, images, labels)
  updates, opt_state = tx.update(grads, opt_state, trainable)
  return optax.apply_updates(trainable, updates), opt_state, {"loss": loss, "accuracy": accuracy}


def _check(config) -> None:
  ev = config.eval
  if ev.classifier_finetune not in FINETUNE:
    raise ValueError(f"config.eval.classifier_finetune={ev.classifier_finetune!r}: expected one "
                     f"of {FINETUNE}")
  if ev.classifier_batch_size < 2 or ev.classifier_batch_size % 2:
    raise ValueError(f"config.eval.classifier_batch_size={ev.classifier_batch_size}: expected a "
                     "positive even number (half of each batch comes from each domain)")
  if ev.classifier_steps < 1:
    raise ValueError(f"config.eval.classifier_steps={ev.classifier_steps}: expected >= 1")


def test_accuracy(model: classifier_lib.DomainClassifier, config, size: int) -> tuple[float, int]:
  """(accuracy, number of images) on the test images of both domains."""
  correct, total = 0, 0
  for label, domain in enumerate(("a", "b")):
    for batch in evaluate.iter_test_images(config, domain,
                                           batch_size=config.eval.metric_batch_size):
      probs = utils.map_batches(lambda x: classifier_lib.probabilities(model, x, size),
                                batch.images, batch_size=config.eval.metric_batch_size)
      correct += int((probs.argmax(-1) == label).sum())
      total += len(batch)
  return correct / max(total, 1), total


def train_classifier(config: ml_collections.ConfigDict, workdir: str | Path, *,
                     overwrite: bool = False) -> dict[str, Any]:
  """Trains and saves WORKDIR/classifier.npz; returns its metadata (incl. test accuracy)."""
  workdir = Path(workdir).absolute()
  path = workdir / CLASSIFIER_FILE
  if path.exists() and not overwrite:
    raise FileExistsError(f"{path} exists; pass --overwrite to train it again")
  _check(config)
  ev = config.eval
  data.ensure_prepared(config)
  fid_model, fid_meta = inception_weights.load_fid_inception(ev.weights_dir, logits=False)
  classes = config.data.domains.split("_", 1)
  graphdef, params = nnx.split(classifier_lib.from_fid_inception(fid_model, len(classes)))
  params = nnx.to_pure_dict(params)
  names = ("head",) if ev.classifier_finetune == "head" else ("trunk", "head")
  trainable = {k: params[k] for k in names}
  frozen = {k: v for k, v in params.items() if k not in names}
  tx = optax.adam(ev.classifier_lr)
  opt_state = tx.init(trainable)
  step_fn = jax.jit(functools.partial(_train_step, graphdef=graphdef, size=ev.inception_size,
                                      tx=tx))

  data_config = ml_collections.ConfigDict(config.to_dict())
  data_config.data.batch_size = ev.classifier_batch_size // 2   # per domain
  batches = data.make_train_iterator(data_config)
  half = data_config.data.batch_size
  labels = np.repeat(np.arange(2, dtype=np.int32), half)
  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  progress = periodic_actions.ReportProgress(num_train_steps=ev.classifier_steps, writer=writer,
                                             every_steps=ev.classifier_log_every)
  logging.info("Training the %s classifier (%s) for %d steps of %d images.", classes,
               ev.classifier_finetune, ev.classifier_steps, 2 * half)
  pending = []
  for step in range(1, ev.classifier_steps + 1):
    batch = next(batches)
    images = (np.concatenate([batch["a"]["image"], batch["b"]["image"]]) + 1.0) * 127.5
    trainable, opt_state, metrics = step_fn(trainable, opt_state, frozen, images, labels)
    pending.append(jax.device_get(metrics))   # waits for the step: true rates and ETA
    progress(step)
    if step % ev.classifier_log_every == 0 or step == ev.classifier_steps:
      means = {f"classifier/{k}": float(np.mean([m[k] for m in pending])) for k in pending[0]}
      writer.write_scalars(step, means)
      pending = []

  model = nnx.merge(graphdef, {**frozen, **trainable})
  accuracy, num_test = test_accuracy(model, config, ev.inception_size)
  writer.write_scalars(ev.classifier_steps, {"classifier/test_accuracy": accuracy})
  writer.flush()
  meta = {"classes": classes, "dataset": config.data.name, "domains": config.data.domains,
          "inception_size": ev.inception_size, "finetune": ev.classifier_finetune,
          "steps": ev.classifier_steps, "batch_size": ev.classifier_batch_size,
          "lr": ev.classifier_lr, "fid_weights": fid_meta["source"],
          "test_accuracy": accuracy, "test_images": num_test}
  classifier_lib.save(path, model, meta)
  logging.info("Test accuracy %.4f on %d images; classifier written to %s", accuracy, num_test,
               path)
  return meta


# ---------------------------------------------------------------------------------- CLI


def _define_flags() -> None:
  config_flags.DEFINE_config_file(
      "config", None, "Config file of the dataset, e.g. configs/demo.py; fields can be "
      "overridden with --config.<field>=<value>.", lock_config=True)
  flags.DEFINE_string("workdir", None, "Directory for classifier.npz and its logs.")
  flags.DEFINE_bool("overwrite", False, "Replace an existing classifier.npz.")
  flags.mark_flags_as_required(["config", "workdir"])


def main():
  f = flags.FLAGS
  train_classifier(f.config, f.workdir, overwrite=f.overwrite)


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
