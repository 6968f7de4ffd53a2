"""TFDS builder for the synthetic sunny/night street scenes (generated locally, no download).

Splits:
* `train_a`: scenes rendered in domain A (sunny) only;
* `train_b`: different scenes, rendered in domain B (night) only;
* `test`: held-out scenes with both renderings, the paired ground truth.

Every record has the same features (TFDS has one schema for all splits):
`image_a`, `image_b` (PNG), `boxes` float32 [M, 4] (x1, y1, x2, y2 in pixels, half-open),
`labels` int64 [M] (1 car, 2 traffic sign, 3 person; M may be 0) and `scene` (the index
of the scene within its split). A train split holds only its own domain's image; the
other image field is a 1x1 black placeholder that nothing reads.

With `looks` > 0 each training image is rendered in a look of its own (warmth and
exposure of the light, `synthetic.sample_look`), a style that the scene does not decide;
the test scenes keep each domain's central look, so the paired ground truth is the
translation that a deterministic (average-style) output should match.

Written as array_record and read with `builder.as_data_source(split)`, which needs no
TensorFlow. Records come back in hashed order; `scene` gives the generation order.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from mguit_jax.data import synthetic

NUM_CLASSES = len(synthetic.CLASS_NAMES)   # background + car, sign, person
SPLITS = ("train_a", "train_b", "test")
# Scene streams interleave, so the three splits never share a scene and the scenes
# of one split do not depend on the sizes of the others.
_STREAM = {"train_a": 0, "train_b": 1, "test": 2}


@dataclasses.dataclass
class SyntheticStreetsConfig(tfds.core.BuilderConfig):
  """Image size, split sizes and the scene seed; all encoded in the config name."""
  height: int = 216
  width: int = 288
  num_train: int = 200
  num_test: int = 20
  seed: int = 0
  looks: float = 0.0


def builder_config(height: int, width: int, num_train: int, num_test: int,
                   seed: int = 0, looks: float = 0.0) -> SyntheticStreetsConfig:
  """The config for these parameters; its name keeps different configs' files apart."""
  for field, value, least in (("height", height, 32), ("width", width, 32),
                              ("num_train", num_train, 1), ("num_test", num_test, 1)):
    if value < least:   # TFDS cannot write an empty split
      raise ValueError(f"config.data.synthetic.{field}={value}: expected at least {least}")
  if not 0.0 <= looks <= 1.0:
    raise ValueError(f"config.data.synthetic.looks={looks}: expected a value in [0, 1]")
  suffix = f"_looks{looks:g}" if looks else ""
  return SyntheticStreetsConfig(
      name=f"{height}x{width}_train{num_train}_test{num_test}_seed{seed}{suffix}",
      description=f"{height}x{width} images, {num_train} train scenes per domain, "
                  f"{num_test} paired test scenes, scene seed {seed}, "
                  f"training looks drawn from [-{looks:g}, {looks:g}].",
      height=height, width=width, num_train=num_train, num_test=num_test, seed=seed,
      looks=looks)


class SyntheticStreets(tfds.core.GeneratorBasedBuilder):
  """Procedural sunny/night street scenes with car, sign and person boxes."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First renderer."}

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    """None: nothing is downloaded, so there is no checksums file to locate.

    (TFDS's default lookup for builders inside a package needs the
    `importlib_resources` backport, which this project does not depend on.)
    """
    return None

  def _info(self) -> tfds.core.DatasetInfo:
    image = tfds.features.Image(shape=(None, None, 3), encoding_format="png")
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image_a": image,
            "image_b": image,
            "boxes": tfds.features.Tensor(shape=(None, 4), dtype=np.float32),
            "labels": tfds.features.Tensor(shape=(None,), dtype=np.int64),
            "scene": np.int64,
        }))

  def _split_generators(self, dl_manager):
    del dl_manager   # nothing to download
    cfg = self.builder_config
    return {split: self._generate_examples(split, cfg.num_test if split == "test"
                                           else cfg.num_train)
            for split in SPLITS}

  def _generate_examples(self, split: str, count: int):
    cfg = self.builder_config
    placeholder = _png(np.zeros((1, 1, 3), np.uint8))
    looks = 0.0 if split == "test" else cfg.looks
    for i in range(count):
      index = 3 * i + _STREAM[split]
      scene = synthetic.make_scene(cfg.seed, index, cfg.height, cfg.width)
      boxes, labels = scene.annotations()

      def image(domain, rendered):
        if not rendered:
          return placeholder
        look = synthetic.sample_look(cfg.seed, index, domain, looks)
        return _png(synthetic.render(scene, domain, look))

      yield i, {
          "image_a": image("sunny", split in ("train_a", "test")),
          "image_b": image("night", split in ("train_b", "test")),
          "boxes": boxes,
          "labels": labels,
          "scene": i,
      }


def _png(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
  return buffer.getvalue()
