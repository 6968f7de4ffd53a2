"""The domain classifier behind IS and CIS: the FID Inception-v3 with a new linear head.

MGUIT and INIT score translations with an Inception-v3 fine-tuned on the dataset's
domain labels, which was never released. `mguit_jax.train_classifier` fine-tunes this
one (the head, or the whole network) from the FID weights and saves it as one .npz
with its metadata (classes, dataset, input resolution, test accuracy).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from flax import nnx
import jax
import numpy as np

from mguit_jax.metrics import utils
from mguit_jax.metrics.inception import NUM_FEATURES, InceptionV3, preprocess


class DomainClassifier(nnx.Module):
  """Inception-v3 pool3 features -> linear layer -> domain logits."""

  def __init__(self, num_classes: int, *, rngs: nnx.Rngs):
    self.trunk = InceptionV3(logits=False, rngs=rngs)
    self.head = nnx.Linear(NUM_FEATURES, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits [N, num_classes] of preprocessed images (`inception.preprocess`)."""
    return self.head(self.trunk(x))


def from_fid_inception(fid_model: InceptionV3, num_classes: int) -> DomainClassifier:
  """A classifier whose trunk holds the FID Inception weights and whose head is zero."""
  trunk = utils.module_params(fid_model)
  trunk.pop("fc", None)
  head = {"kernel": np.zeros((NUM_FEATURES, num_classes), np.float32),
          "bias": np.zeros((num_classes,), np.float32)}
  return utils.build_module(lambda: DomainClassifier(num_classes, rngs=nnx.Rngs(0)),
                            {"trunk": trunk, "head": head}, "FID Inception weights")


def save(path: str | Path, model: DomainClassifier, meta: dict[str, Any]) -> Path:
  return utils.save_params(path, utils.module_params(model), meta)


def load(path: str | Path) -> tuple[DomainClassifier, dict[str, Any]]:
  """The classifier saved at `path` and its metadata; FileNotFoundError saying how to make one."""
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(
        f"domain classifier {str(path)!r} not found (config.eval.classifier). IS and CIS need "
        "it: train one with `python -m mguit_jax.train_classifier --config CONFIG --workdir DIR` "
        "and pass --config.eval.classifier=DIR/classifier.npz, or leave is/cis out of --metrics.")
  params, meta = utils.load_params(path)
  classes = meta.get("classes")
  if not classes:
    raise ValueError(f"{path}: metadata names no classes; not a domain classifier file")
  model = utils.build_module(lambda: DomainClassifier(len(classes), rngs=nnx.Rngs(0)), params,
                             str(path))
  return model, meta


@functools.partial(jax.jit, static_argnames="size")
def probabilities(model: DomainClassifier, images: jax.Array, size: int) -> jax.Array:
  """Class probabilities [N, K] of uint8-range images [N, H, W, 3] at Inception size `size`."""
  with jax.default_matmul_precision("highest"):
    return jax.nn.softmax(model(preprocess(images, size)), axis=-1)
