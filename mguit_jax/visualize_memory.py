r"""What the memory learned (paper Fig. 9): t-SNE of content features, and each item's style.

  python -m mguit_jax.visualize_memory --workdir runs/demo --output runs/demo/memory \
      [--direction a2b] [--input DIR] [--num_images 8] [--num_points 3000]

Writes into OUTPUT:
  * `tsne_<src>.png`: the content features (1/4-resolution pixels of the source domain's
    test images, a random subset of `num_points`) projected to 2-D with t-SNE, coloured
    by the memory item each pixel addresses most (argmax of the test-time attention);
  * `items_<direction>.png`: per test image, the input, its translation with the memory's
    read, and one translation per item with every pixel given that item's stored value;
  * `items_<src>.json`: the share of pixels addressing each item.
Test images come from the run's test split (`data.test_images`; `--config` supplies the
data fields when the checkpoint's own config predates them) or from `--input`.
Needs scikit-learn and matplotlib (`pip install scikit-learn==1.9.1 matplotlib==3.11.2`).
"""

from __future__ import annotations

from collections.abc import Sequence
import json
from pathlib import Path

from absl import flags
import ml_collections
from ml_collections import config_flags
import numpy as np

from mguit_jax import cli, memory as memory_lib
from mguit_jax import translate
from mguit_jax.data import synthetic

_PACKAGES = "pip install scikit-learn==1.9.1 matplotlib==3.11.2"


def _pyplot():
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(f"the memory plots need matplotlib and scikit-learn: {_PACKAGES}") from e
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def item_names(sizes: Sequence[int]) -> list[str]:
  """'background 0', ..., 'car 0', ...: each item's class and its index within the class."""
  classes = memory_lib.item_classes(sizes)
  names = (synthetic.CLASS_NAMES if len(sizes) == len(synthetic.CLASS_NAMES)
           else [f"class {k}" for k in range(len(sizes))])
  return [f"{names[k]} {int(np.sum(classes[:i] == k))}" for i, k in enumerate(classes)]


def addressed_items(translator: translate.Translator, images: Sequence[np.ndarray],
                    domain: str) -> tuple[np.ndarray, np.ndarray]:
  """Content features [P, Ck] of all pixels of `images` and the item each addresses most [P]."""
  _check_memory(translator)
  features = np.concatenate([translator.encode(image[None], domain).reshape(
      -1, translator.memory.keys.shape[-1]) for image in images])
  weights = memory_lib.read_weights_all(translator.memory.keys, features,
                                        translator.config.memory.attention_temperature)
  return features, np.asarray(np.argmax(weights, axis=-1))


def tsne(features: np.ndarray, num_points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(indices of a random subset of at most `num_points` rows, their 2-D t-SNE embedding)."""
  try:
    from sklearn.manifold import TSNE  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(f"the t-SNE plot needs scikit-learn: {_PACKAGES}") from e
  rng = np.random.default_rng(seed)
  keep = np.sort(rng.permutation(len(features))[:num_points])
  perplexity = float(min(30, max(len(keep) - 1, 1) / 3))
  embedding = TSNE(n_components=2, perplexity=perplexity, init="pca",
                   random_state=seed).fit_transform(features[keep])
  return keep, embedding


def plot_tsne(embedding: np.ndarray, items: np.ndarray, names: Sequence[str], title: str,
              path: Path) -> Path:
  """Scatter plot of the embedding, one colour per memory item, written atomically."""
  plt = _pyplot()
  cmap = plt.get_cmap("tab20" if len(names) <= 20 else "hsv", len(names))
  fig, ax = plt.subplots(figsize=(8, 6.5), dpi=120)
  for n in np.unique(items):
    pts = embedding[items == n]
    ax.scatter(pts[:, 0], pts[:, 1], s=4, color=cmap(int(n)), label=f"{names[n]} ({len(pts)})")
  ax.set_title(title)
  ax.set_xticks([])
  ax.set_yticks([])
  ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=3, fontsize=8,
            title="memory item (pixels)")
  return _save(fig, path)


def item_translations(translator: translate.Translator, image: np.ndarray,
                      direction: str) -> np.ndarray:
  """uint8 [1 + N, H, W, 3]: the memory read, then each item's value on every pixel."""
  _check_memory(translator)
  direction = translator.resolve_direction(direction)
  stored = np.asarray(getattr(translator.memory, f"values_{direction[2]}"))
  n = stored.shape[0]
  values = np.concatenate([stored[None], np.repeat(stored[:, None], n, axis=1)])
  return translator.translate_values(image[None], direction, values)[0]


def plot_items(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray],
               names: Sequence[str], title: str, path: Path, columns: int = 6) -> Path:
  """Per input: the input, the memory read and one panel per item, with titles."""
  plt = _pyplot()
  per_image = 2 + len(names)
  rows_each = -(-per_image // columns)
  h, w = inputs[0].shape[:2]
  fig, axes = plt.subplots(rows_each * len(inputs), columns, squeeze=False, dpi=100,
                           layout="constrained",
                           figsize=(columns * 2.2, rows_each * len(inputs) * 2.2 * h / w + 0.4))
  for ax in axes.flat:
    ax.axis("off")
  for i, (image, out) in enumerate(zip(inputs, outputs)):
    panels = [("input", image), ("memory read", out[0])] + list(zip(names, out[1:]))
    for j, (label, panel) in enumerate(panels):
      ax = axes[i * rows_each + j // columns, j % columns]
      ax.imshow(panel)
      ax.set_title(label, fontsize=8)
  fig.suptitle(title)
  return _save(fig, path)


def _save(fig, path: Path) -> Path:
  plt = _pyplot()
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.stem + ".tmp.png")
  fig.savefig(tmp, bbox_inches="tight")
  plt.close(fig)
  tmp.replace(path)
  return path


def _check_memory(translator: translate.Translator) -> None:
  if translator.method != "mguit":
    raise ValueError(f"this run was trained with method {translator.method!r}, which has no "
                     "memory items to visualise (only method 'mguit' has)")


def visualize(translator: translate.Translator, images: Sequence[np.ndarray], output: str | Path,
              direction: str = "a2b", *, num_points: int = 3000, num_grid: int = 2,
              seed: int = 0) -> dict[str, Path]:
  """Writes the t-SNE plot, the item grid (first `num_grid` images) and the item shares."""
  _check_memory(translator)
  if not images:
    raise ValueError("no test images to visualise")
  output = Path(output)
  direction = translator.resolve_direction(direction)
  src = direction[0]
  names = item_names(translator.config.memory.sizes)
  features, items = addressed_items(translator, images, src)
  keep, embedding = tsne(features, num_points, seed)
  loss = translator.config.memory.loss
  aware = "class-aware" if translator.config.memory.class_aware else "single"
  what = f"step {translator.step}, {aware} memory, {loss} loss"
  paths = {"tsne": plot_tsne(embedding, items[keep], names,
                             f"Content features of domain {src} by memory item ({what})",
                             output / f"tsne_{src}.png")}
  grid_images = list(images[:num_grid])
  outputs = [item_translations(translator, image, direction) for image in grid_images]
  paths["items"] = plot_items(grid_images, outputs, names,
                              f"{direction}: each memory item's stored style ({what})",
                              output / f"items_{direction}.png")
  share = np.bincount(items, minlength=len(names)) / len(items)
  paths["shares"] = output / f"items_{src}.json"
  tmp = paths["shares"].with_name(paths["shares"].name + ".tmp")
  tmp.write_text(json.dumps({"step": translator.step, "pixels": int(len(items)),
                             "share": dict(zip(names, np.round(share, 5).tolist()))}, indent=2))
  tmp.replace(paths["shares"])
  return paths


def load_images(config: ml_collections.ConfigDict, domain: str, input_dir: str | None,
                limit: int) -> list[np.ndarray]:
  """The first `limit` images of `input_dir`, or of `config`'s test split of `domain`."""
  if input_dir is not None:
    return [translate.load_image(p) for p in translate.find_images(input_dir)[:limit]]
  from mguit_jax import data  # pylint: disable=import-outside-toplevel
  return [example["image"] for example in data.test_images(config, domain, limit)]


def _define_flags() -> None:
  translate.define_checkpoint_flags()
  config_flags.DEFINE_config_file(
      "config", None, "Config file for the data fields (default: the checkpoint's own "
      "config); fields can be overridden with --config.<field>=<value>.", lock_config=True)
  flags.DEFINE_string("output", None, "Directory for the plots.", required=True)
  flags.DEFINE_string("direction", "a2b", "a2b or b2a (or with the domain names): the source "
                      "domain's features, translated to the target.")
  flags.DEFINE_string("input", None, "Images to use instead of the run's test split.")
  flags.DEFINE_integer("num_images", 8, "Test images whose pixels enter the t-SNE.")
  flags.DEFINE_integer("num_points", 3000, "Pixels (random subset) embedded by t-SNE.")
  flags.DEFINE_integer("num_grid", 2, "Test images shown with every item's style.")
  flags.DEFINE_integer("seed", 0, "Seed of the pixel subset and of t-SNE.")


def main():
  f = flags.FLAGS
  translator = translate.translator_from_flags()
  direction = translator.resolve_direction(f.direction)
  config = f.config if f.config is not None else translator.config
  images = load_images(config, direction[0], f.input, f.num_images)
  paths = visualize(translator, images, f.output, direction, num_points=f.num_points,
                    num_grid=f.num_grid, seed=f.seed)
  print("Wrote " + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
