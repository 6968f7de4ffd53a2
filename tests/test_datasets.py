"""Tests for the real datasets (INIT, image folders, KITTI, Cityscapes) on tiny fixture
datasets written here in each source's own format: parse -> prepare -> load -> batches."""

from __future__ import annotations

import json
from pathlib import Path
import pickle

import numpy as np
from PIL import Image
import pytest

from configs import folders
from configs import init
from configs import kitti_cityscapes
from configs import tiny
from mguit_jax import data
from mguit_jax.data import annotations
from mguit_jax.data import builders
from mguit_jax.data import folders_tfds
from mguit_jax.data import init_tfds
from mguit_jax.data import kitti_cityscapes_tfds
from mguit_jax.data import pipeline
from mguit_jax.data import transforms

H, W = 40, 64   # raw fixture images; stored as they are (short side 40), so pixels stay exact

# INIT-like scenes (boxes in image pixels), then random ones; see _init_scenes.
_SCENES = [
    ([], []),                                            # no objects
    ([[50, 10, 70, 30]], [1]),                           # crosses the right border: clipped
    ([[4, 4, 30, 30], [20, 10, 40, 38]], [1, 3]),        # a car and a person overlap
    ([[0, 0, 12, 16]], [2]),                             # touches the top-left corner
    ([[10, 10, 10, 20], [30, 4, 44, 36]], [1, 3]),       # an empty box (dropped), a person
    ([[8, 6, 24, 30], [40, 2, 60, 20]], [2, 1]),         # annotated at twice the image size
]


def _draw(boxes, labels, seed, size=(H, W)):
  """Noise below 100 where there is no object; class k in 1..3 sets channel k-1 to 255
  inside its boxes, so that overlapping boxes of different classes all show."""
  image = np.random.default_rng(seed).integers(0, 100, (*size, 3), np.uint8)
  for (x1, y1, x2, y2), label in zip(np.asarray(boxes, int).reshape(-1, 4), labels):
    image[max(y1, 0):y2, max(x1, 0):x2, label - 1] = 255
  return image


def _save(path: Path, image: np.ndarray) -> Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path)
  return path


def _clean(boxes, h=H, w=W):
  """What preparation keeps of image-pixel boxes: clipped, empty ones dropped."""
  boxes = np.clip(np.asarray(boxes, np.float32).reshape(-1, 4), 0, [w, h, w, h])
  return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]), boxes


def _init_scenes(seed):
  rng = np.random.default_rng(seed)
  scenes = list(_SCENES)
  while len(scenes) < 14:
    x1, y1 = rng.integers(0, 44, 2), rng.integers(0, 26, 2)
    w, h = rng.integers(6, 20, 2), rng.integers(6, 14, 2)
    scenes.append((np.stack([x1, y1, x1 + w, y1 + h], 1).tolist(), rng.integers(1, 4, 2).tolist()))
  return scenes


def _write_init(root: Path, domains=("sunny", "night")) -> dict[str, tuple]:
  """INIT as distributed: <domain>/seq<k>/NNNNNN.png and <domain>_annotation.txt whose
  paths carry the author's directory; one entry names a missing image. Returns
  {name: (image, boxes, labels)} as preparation should store them."""
  expected = {}
  for d, domain in enumerate(domains):
    entries = []
    for i, (boxes, labels) in enumerate(_init_scenes(d)):
      rel = f"{domain}/seq{i % 2}/{i:06d}.png"
      image = _save(root / rel, _draw(boxes, labels, 100 * d + i))
      written, size = np.asarray(boxes, np.float32).reshape(-1, 4), (H, W)
      if i == 5:
        written, size = 2 * written, (2 * H, 2 * W)
      entries.append((f"/home/author/INIT/{rel}", size, written, np.asarray(labels, np.int64)))
      keep, clean = _clean(boxes)
      expected[f"{domain}_seq{i % 2}_{i:06d}"] = (np.asarray(Image.open(image)), clean[keep],
                                                  np.asarray(labels, np.int64)[keep])
    entries.append((f"/home/author/INIT/{domain}/seq2/missing.png", (H, W), np.zeros((0, 4)),
                    np.zeros(0, np.int64)))
    lines = annotations.format_init_blocks(entries)
    (root / f"{domain}_annotation.txt").write_text("\n".join(lines))
  return expected


def _config(tmp: Path, name: str, domains: str, **overrides):
  c = tiny.get_config()
  c.data.name, c.data.domains = name, domains
  c.data.data_dir, c.data.manual_dir = str(tmp / "tfds"), str(tmp / "raw")
  c.data.storage_short = c.data.resize_short = 40
  c.data.crop_size = 32
  c.data.prepare_workers = 0
  for key, value in overrides.items():
    c.data[key] = value
  return c


def _records(config, which: int, split: str) -> dict[str, dict]:
  source = pipeline._domain_source(config, which, split)
  return {r["name"]: r for r in (source[i] for i in range(len(source)))}


def _metadata(config, module, domain):
  return module.make_builder(config, domain).info.metadata


def _batches(iterator, n):
  return [next(iterator) for _ in range(n)]


@pytest.fixture(scope="module")
def init_setup(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("init")
  expected = _write_init(tmp / "raw" / "init")
  config = _config(tmp, "init", "sunny_night")
  data.ensure_prepared(config)
  return config, expected


# ------------------------------------------------------------------------ annotations


def test_init_blocks_round_trip(tmp_path):
  entries = [("a/1.png", (40, 64), np.array([[1, 2, 3.5, 4], [0, 0, 64, 40]]), np.array([3, 1])),
             ("b/2.png", (30, 20), np.zeros((0, 4)), np.zeros(0, int))]
  path = tmp_path / "sunny.txt"
  path.write_text("\n\n".join(annotations.format_init_blocks(entries)))   # blank lines too
  parsed = annotations.read_init_blocks(path, {1, 2, 3})
  assert [(a.image, a.size) for a in parsed] == [("a/1.png", (40, 64)), ("b/2.png", (30, 20))]
  np.testing.assert_array_equal(parsed[0].boxes, [[1, 2, 3.5, 4], [0, 0, 64, 40]])
  np.testing.assert_array_equal(parsed[0].labels, [3, 1])
  assert parsed[1].boxes.shape == (0, 4) and parsed[1].labels.shape == (0,)
  assert parsed[0].where() == f"{path}:1" and parsed[0].where(1) == f"{path}:13"
  assert parsed[1].where() == f"{path}:17"


_BLOCK = "# 0\nimg.png\n3 40 64 1\n0\n{n}\n{rows}"


@pytest.mark.parametrize("text, match", [
    (_BLOCK.format(n=1, rows="1 2 3 4"), r"x.txt:6: box row '1 2 3 4' has 4 fields; expected 5"),
    (_BLOCK.format(n=1, rows="1 2 3 4 5 6"), r"x.txt:6: .* has 6 fields"),
    (_BLOCK.format(n=1, rows="1 2 b 4 5"), r"x.txt:6: .* non-numeric coordinate"),
    (_BLOCK.format(n=1, rows="car 2 3 4 5"), r"x.txt:6: class 'car' is not an integer"),
    (_BLOCK.format(n=1, rows="7 1 2 3 4"), r"x.txt:6: unknown class id 7; expected 1, 2, 3"),
    (_BLOCK.format(n=1, rows="1 1 2 nan 4"), r"x.txt:6: .* non-finite"),
    (_BLOCK.format(n=2, rows="1 1 2 3 4\n# 1\nb.png"),
     r"x.txt:7: the block at line 1 announces 2 boxes but the next block starts after 1 rows"),
    (_BLOCK.format(n=2, rows="1 1 2 3 4"), r"x.txt:6: file ends where box row 2 of 2"),
    (_BLOCK.format(n="two", rows=""), r"x.txt:5: 'two' is not the number of boxes"),
    ("# 0\nimg.png\n3 40 1\n0\n0\n", r"x.txt:3: '3 40 1' is not '3 <height> <width> 1'"),
    ("img.png\n3 40 64 1\n", r"x.txt:1: 'img.png' does not start an image block"),
])
def test_init_blocks_errors(tmp_path, text, match):
  path = tmp_path / "x.txt"
  path.write_text(text)
  with pytest.raises(ValueError, match=match):
    annotations.read_init_blocks(path, {1, 2, 3})


def test_label_json_and_kitti_errors(tmp_path):
  label = tmp_path / "l.txt"
  label.write_text("sunny/a.png 1\n3 40 64 1\n1 0 0 10 10\n\n3 5 5 9\n")
  with pytest.raises(ValueError, match=r"l.txt:5: box row '3 5 5 9' has 4 fields"):
    annotations.read_label_file(label, {1, 2, 3})
  label.write_text("sunny/a.png\n\n1 0 0 10 10\n")
  parsed = annotations.read_label_file(label, {1, 2, 3})
  assert parsed.image == "sunny/a.png" and parsed.where(0) == f"{label}:3"
  sidecar = tmp_path / "trainA.json"
  for content, match in ((['a'], "expected an object"), ({"a.png": [[1, 0, 0, "x", 4]]},
                         r"\['a.png'\] row 0: .* non-numeric"), ({"a.png": [[0, 0, 0, 4, 4]]},
                         r"\['a.png'\] row 0: unknown class id 0; expected an integer >= 1"),
                         ({"a.png": [[1.5, 0, 0, 4, 4]]}, "class 1.5 is not an integer"),
                         ({"a.png": [[1, 0, 0, 4]]}, "is not a \\[class, x1, y1, x2, y2\\]")):
    sidecar.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=match):
      annotations.read_boxes_json(sidecar)
  sidecar.write_text("{oops")
  with pytest.raises(ValueError, match="trainA.json: not valid JSON"):
    annotations.read_boxes_json(sidecar)
  kitti = tmp_path / "000001.txt"
  kitti.write_text("Car 0 0 0 1 2 3 4 1 1 1 0 0 0 0\nCar 0 0 0 1 2 3\n")
  with pytest.raises(ValueError, match=r"000001.txt:2: 7 fields; expected 15"):
    kitti_cityscapes_tfds.read_kitti_labels(kitti)
  kitti.write_text("Bus 0 0 0 1 2 3 4 1 1 1 0 0 0 0\n")
  with pytest.raises(ValueError, match=r"000001.txt:1: unknown object type 'Bus'"):
    kitti_cityscapes_tfds.read_kitti_labels(kitti)


def test_test_split_rule():
  # Two sequences of 20 and 7 frames, listed out of order: each gives its last 15%
  # (3 and 1 frames) to the test split.
  images = [f"night/a/{i:03d}.png" for i in range(20)] + [f"night/b/{i:03d}.png" for i in range(7)]
  order = np.random.default_rng(0).permutation(len(images))
  flags = init_tfds.in_test_split([images[i] for i in order])
  test = sorted(images[i] for i, f in zip(order, flags) if f)
  assert test == ["night/a/017.png", "night/a/018.png", "night/a/019.png", "night/b/006.png"]
  assert sum(init_tfds.in_test_split([f"{i:04d}.png" for i in range(1000)])) == 150


# ------------------------------------------------------------------------------- INIT


def test_init_prepared(init_setup):
  config, expected = init_setup
  builder = init_tfds.make_builder(config, "sunny")
  assert builder.builder_config.name == "sunny_40_png"
  assert {s: v.num_examples for s, v in builder.info.splits.items()} == {"train": 12, "test": 2}
  # The last 15% (rounded) of each sequence is test: the last frame of seq0 and seq1
  # (7 entries each), none of seq2 (1 entry, the missing image).
  assert set(_records(config, 0, "test")) == {"sunny_seq0_000012", "sunny_seq1_000013"}
  records = {**_records(config, 0, "train"), **_records(config, 0, "test")}
  assert len(records) == 14
  for name, record in records.items():
    image, boxes, labels = expected[name]
    np.testing.assert_array_equal(record["image"], image)
    np.testing.assert_allclose(record["boxes"], boxes, atol=1e-5)
    np.testing.assert_array_equal(record["labels"], labels)
  np.testing.assert_array_equal(records["sunny_seq1_000001"]["boxes"], [[50, 10, 64, 30]])
  meta = builder.info.metadata
  assert meta["num_classes"] == 4 and meta["class_names"][1:] == ["car", "traffic_sign", "person"]
  assert meta["issues"]["counts"] == {"train": {"missing_image": 1, "box_outside": 1,
                                                "empty_box": 1, "size_mismatch": 1}}
  places = meta["issues"]["examples"]["train"]
  annotation_file = Path(config.data.manual_dir) / "init" / "sunny_annotation.txt"
  assert places["missing_image"][0].startswith(f"{annotation_file}:")
  assert "missing.png" in places["missing_image"][0]
  assert places["empty_box"][0].startswith(f"{annotation_file}:")
  assert "80x128 but the image is 40x64" in places["size_mismatch"][0]


def test_sources_pickle_for_worker_processes(init_setup):
  config, _ = init_setup
  source = pipeline._domain_source(config, 1, "train")
  copy = pickle.loads(pickle.dumps(source))   # what grain sends to its worker processes
  for key in ("image", "boxes", "labels"):
    np.testing.assert_array_equal(copy[3][key], source[3][key])
  assert copy[3]["name"] == source[3]["name"] and copy.num_classes == 4


def test_an_empty_split_says_which_images_were_skipped(tmp_path):
  _write_init(tmp_path / "raw" / "init")
  for image in (tmp_path / "raw" / "init" / "sunny").rglob("*.png"):
    image.unlink()   # every entry of the annotation now names a missing image
  with pytest.raises(ValueError, match=r"(?s)split '\w+' has no images under .*; skipped: "
                                       r"\{'missing_image': \d+\}; first cases:\n  .*000000\.png"):
    data.ensure_prepared(_config(tmp_path, "init", "sunny_night"))


def test_init_batches_align_masks_with_pixels(init_setup):
  config, _ = init_setup
  batches = _batches(data.make_train_iterator(config), 8)
  seen = np.zeros(4)
  for batch in batches:
    for domain in "ab":
      image, masks = batch[domain]["image"], batch[domain]["masks"]
      assert image.shape == (2, 32, 32, 3) and masks.shape == (2, 8, 8, 4)
      assert image.dtype == masks.dtype == np.float32
      assert image.min() >= -1 and image.max() <= 1
      # A cell is in class k exactly when the pixel at its centre shows class k's channel.
      centres = image[:, 2::4, 2::4]
      np.testing.assert_array_equal(masks[..., 1:], (centres > 0.9).astype(np.float32))
      np.testing.assert_array_equal(masks[..., 0], 1 - masks[..., 1:].max(-1))
      seen += masks.sum((0, 1, 2))
  assert seen.min() > 0   # background and all three classes occur
  overlap = [(b[d]["masks"][..., 1:].sum(-1) > 1).any() for b in batches for d in "ab"]
  assert any(overlap)     # the car / person overlap set two channels somewhere


def test_init_iterator_state_and_determinism(init_setup):
  config, _ = init_setup
  first = data.make_train_iterator(config)
  _batches(first, 3)
  state = first.get_state()
  want = _batches(first, 9)   # beyond an epoch of 12 images at batch 2
  resumed = data.make_train_iterator(config)
  resumed.set_state(state)
  again = _batches(data.make_train_iterator(config), 12)
  for x, y, z in zip(want, _batches(resumed, 9), again[3:], strict=True):
    for d in "ab":
      for key in ("image", "masks"):
        np.testing.assert_array_equal(x[d][key], y[d][key])
        np.testing.assert_array_equal(x[d][key], z[d][key])


def test_test_images_and_pairs(init_setup):
  config, expected = init_setup
  night = list(data.test_images(config, "b"))
  assert {e["name"] for e in night} == {"night_seq0_000012", "night_seq1_000013"}
  for example in night:
    assert set(example) == {"name", "image", "boxes", "labels"}
    assert example["image"].dtype == np.uint8 and example["image"].shape == (H, W, 3)
    assert example["boxes"].dtype == np.float32 and example["labels"].dtype == np.int32
    np.testing.assert_array_equal(example["image"], expected[example["name"]][0])
  assert len(list(data.test_images(config, "a", limit=1))) == 1
  pairs = data.load_test_pairs(config, 2)
  assert pairs["image_a"].shape == pairs["image_b"].shape == (2, 32, 32, 3)
  assert pairs["masks"].shape == (2, 8, 8, 4)
  first = next(data.test_images(config, "a"))
  np.testing.assert_array_equal(pairs["image_a"][0],
                                pipeline.normalize(first["image"][4:36, 16:48]))   # centre crop
  c = config.copy_and_resolve_references()
  c.data.test_split = "train[:3]+test"
  assert len(list(data.test_images(c, "a"))) == 5
  c.data.test_split = "val"
  with pytest.raises(ValueError, match=r"split 'val' cannot be read .* \['test', 'train'\]"):
    next(data.test_images(c, "a"))
  with pytest.raises(ValueError, match="domain='c'"):
    next(data.test_images(config, "c"))


def test_synthetic_test_images(tmp_path):
  c = tiny.get_config()
  c.data.data_dir = str(tmp_path)
  c.data.synthetic.num_train, c.data.synthetic.num_test = 1, 3
  data.ensure_prepared(c)
  a, b = list(data.test_images(c, "a")), list(data.test_images(c, "b"))
  assert [e["name"] for e in a] == [e["name"] for e in b] == ["scene_0000", "scene_0001",
                                                                "scene_0002"]
  np.testing.assert_array_equal(a[1]["boxes"], b[1]["boxes"])
  assert a[0]["image"].shape == (216, 256, 3) and a[0]["labels"].dtype == np.int32
  c.data.test_split = "train"
  assert [e["name"] for e in data.test_images(c, "b")] == ["scene_0000"]


def test_init_label_layout_rescales(tmp_path):
  root = tmp_path / "raw" / "init"
  boxes = {"a": [[8, 10, 40, 50]], "b": [[0, 0, 128, 20], [60, 40, 100, 80]]}
  labels = {"a": [1], "b": [3, 2]}
  for split, names in (("train", ("a", "b")), ("test", ("a",))):
    for domain in ("sunny", "rainy"):
      for name in names:
        _save(root / "images" / domain / split / f"{name}.png",
              _draw(boxes[name], labels[name], 0, size=(2 * H, 2 * W)))
        rows = "\n".join(" ".join(map(str, [c, *b])) for c, b in zip(labels[name], boxes[name]))
        text = f"images/{domain}/{split}/{name}.png\n3 80 128 1\n{rows}\n"
        path = root / "label" / f"{domain}_{split}" / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
  config = _config(tmp_path, "init", "rainy_sunny")
  data.ensure_prepared(config)
  train = _records(config, 0, "train")   # rainy
  assert sorted(train) == ["images_rainy_train_a", "images_rainy_train_b"]
  record = train["images_rainy_train_b"]
  assert record["image"].shape == (H, W, 3)   # stored at short side 40
  np.testing.assert_allclose(record["boxes"], np.array(boxes["b"]) / 2)
  np.testing.assert_array_equal(record["labels"], [3, 2])
  assert list(_records(config, 1, "test")) == ["images_sunny_test_a"]
  assert next(data.make_train_iterator(config))["b"]["masks"].shape == (2, 8, 8, 4)


def test_prepare_in_worker_processes_matches(init_setup, tmp_path):
  config, _ = init_setup
  parallel = config.copy_and_resolve_references()
  parallel.data.data_dir, parallel.data.prepare_workers = str(tmp_path), 2
  parallel.data.domains = "night_sunny"
  init_tfds.make_builder(parallel, "night").download_and_prepare()
  for split in ("train", "test"):
    want, got = _records(config, 1, split), _records(parallel, 0, split)
    assert sorted(want) == sorted(got)
    for name in want:
      for key in ("image", "boxes", "labels"):
        np.testing.assert_array_equal(want[name][key], got[name][key])
  assert (_metadata(parallel, init_tfds, "night")["issues"]
          == _metadata(config, init_tfds, "night")["issues"])


# ---------------------------------------------------------------------- image folders


def _write_folders(root: Path):
  """trainA (3 PNG + 1 JPEG in a sub-folder), trainB (2), testA (1), testB (1)."""
  boxes = [[4, 4, 20, 30]], [[30, 8, 60, 38], [0, 0, 10, 10]]
  for i in range(3):
    _save(root / "trainA" / f"{i}.png", _draw(*([], []) if i else (boxes[0], [1]), i))
  Image.fromarray(_draw([], [], 3)).save(root / "trainA" / "x.jpg")   # not in a sub-folder
  (root / "trainA" / "notes.md").write_text("not an image")
  _save(root / "trainA" / "more" / "4.jpeg", _draw([], [], 4))
  for i in range(2):
    _save(root / "trainB" / f"{i}.png", _draw(boxes[1], [2, 1], 10 + i))
  _save(root / "testA" / "t.png", _draw([], [], 20))
  _save(root / "testB" / "t.png", _draw([], [], 21))


def test_folders_without_boxes_train_background_only(tmp_path):
  _write_folders(tmp_path / "h2z")
  config = _config(tmp_path, "folders", "A_B", folders=dict(path=str(tmp_path / "h2z")))
  config.memory.sizes = (20,)
  data.ensure_prepared(config)
  builder = folders_tfds.make_builder(config, "A")
  assert builder.builder_config.name.startswith("h2z-") and builder.num_classes() == 1
  train = _records(config, 0, "train")
  assert sorted(train) == ["0", "1", "2", "more_4", "x"]
  assert all(r["boxes"].shape == (0, 4) for r in train.values())
  batch = next(data.make_train_iterator(config))
  assert batch["a"]["masks"].shape == (2, 8, 8, 1) and np.all(batch["a"]["masks"] == 1)
  assert [e["name"] for e in data.test_images(config, "b")] == ["t"]


def test_upscaled_images_are_reported_with_the_factor(tmp_path, caplog):
  _write_folders(tmp_path / "small")
  config = _config(tmp_path, "folders", "A_B", folders=dict(path=str(tmp_path / "small")),
                   storage_short=80, resize_short=80, strict=True)   # reported, not an error
  config.memory.sizes = (20,)
  data.ensure_prepared(config)
  counts = _metadata(config, folders_tfds, "A")["issues"]["counts"]
  assert counts == {"train": {"upscaled": 5}, "test": {"upscaled": 1}}
  assert "'upscaled': 5" in caplog.text
  assert "short side 40 px stored at 80 px (2.00x" in caplog.text
  config.data.resize_short = 120   # training above the stored size upscales every image
  data.make_train_iterator(config)
  assert "every training image is upscaled 1.50x" in caplog.text


def test_folders_with_sidecars(tmp_path, caplog):
  root = tmp_path / "custom"
  _write_folders(root)
  (root / "trainA.json").write_text(json.dumps({
      "0.png": [[1, 4, 4, 20, 30]], "more/4.jpeg": [], "gone.png": [[1, 0, 0, 5, 5]]}))
  entries = [(f"{i}.png", (H, W), [[30, 8, 60, 38], [0, 0, 10, 10]], [2, 1]) for i in range(2)]
  (root / "trainB.txt").write_text("\n".join(annotations.format_init_blocks(entries)))
  config = _config(tmp_path, "folders", "B_A", folders=dict(path=str(root)))
  config.memory.sizes = (10, 5, 2)
  data.ensure_prepared(config)
  a = _records(config, 1, "train")
  np.testing.assert_array_equal(a["0"]["boxes"], [[4, 4, 20, 30]])
  assert a["1"]["boxes"].shape == (0, 4)
  meta = _metadata(config, folders_tfds, "A")
  assert meta["num_classes"] == 2
  assert meta["issues"]["counts"]["train"] == {"missing_image": 1, "unannotated_image": 3}
  assert _metadata(config, folders_tfds, "B")["num_classes"] == 3
  for batch in _batches(data.make_train_iterator(config), 3):   # A: 2 channels' worth
    masks = batch["b"]["masks"]
    np.testing.assert_array_equal(masks[..., 1:], (batch["b"]["image"][:, 2::4, 2::4, :2] > 0.9))
  (root / "trainB.json").write_text("{}")
  other = _config(tmp_path / "2", "folders", "A_B", folders=dict(path=str(root)))
  with pytest.raises(ValueError, match="both trainB.json and trainB.txt exist"):
    data.ensure_prepared(other)


# ------------------------------------------------------------------ KITTI, Cityscapes


def _kitti_row(kind, box):
  return " ".join([kind, "0.00", "0", "-1.57", *map(str, box), "1.5", "1.6", "3.7", "-3", "1.7",
                   "20", "-1.5"])


def _write_kitti(root: Path):
  rows = {"000000": [("Car", [10, 5, 30.5, 25]), ("Van", [40, 0, 64, 20]),
                     ("DontCare", [0, 30, 10, 40]), ("Pedestrian", [2, 2, 8, 30])],
          "000001": [("Cyclist", [5, 5, 25, 35]), ("Truck", [30, 10, 70, 39]),
                     ("Misc", [1, 1, 3, 3])],
          "000002": []}
  for stem, objects in rows.items():
    _save(root / "training" / "image_2" / f"{stem}.png", _draw([], [], int(stem)))
    path = root / "training" / "label_2" / f"{stem}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(_kitti_row(k, b) + "\n" for k, b in objects))
  (root / "training" / "label_2" / "000003.txt").write_text(_kitti_row("Car", [0, 0, 5, 5]))
  for stem in ("000000", "000001"):
    _save(root / "testing" / "image_2" / f"{stem}.png", _draw([], [], 7))


def _write_cityscapes(root: Path):
  ids = np.zeros((H, W), np.uint16)
  ids[:, :] = 7                       # road (stuff)
  ids[5:20, 10:30] = 26001            # car
  ids[22:38, 40:50] = 24000           # person
  ids[0:10, 50:64] = 26002            # car at the border
  ids[30:40, 0:20] = 24               # person group (no instance)
  ids[12:30, 52:60] = 33005           # bicycle
  ids[25:35, 20:30] = 25001           # rider (not mapped)
  for split, city, stem in (("train", "aachen", "aachen_000000_000019"),
                            ("train", "bonn", "bonn_000001_000019"),
                            ("train", "bonn", "bonn_000002_000019"),
                            ("val", "lindau", "lindau_000000_000019")):
    _save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", _draw([], [], 1))
  labels = root / "gtFine" / "train"
  _save(labels / "aachen" / "aachen_000000_000019_gtFine_instanceIds.png", ids)
  _save(root / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_instanceIds.png", ids)
  polygons = {"imgHeight": H, "imgWidth": W, "objects": [
      {"label": "truck", "polygon": [[10, 5], [30, 5], [30, 25], [10, 25]]},
      {"label": "persongroup", "polygon": [[0, 0], [5, 0], [5, 5]]},
      {"label": "car", "polygon": [[50, 30], [70, 30], [70, 45], [50, 45]]},
      {"label": "sky", "polygon": [[0, 0], [64, 0], [64, 10]]}]}
  (labels / "bonn").mkdir(parents=True)
  (labels / "bonn" / "bonn_000001_000019_gtFine_polygons.json").write_text(json.dumps(polygons))


def test_kitti_cityscapes(tmp_path):
  _write_kitti(tmp_path / "raw" / "kitti")
  _write_cityscapes(tmp_path / "raw" / "cityscapes")
  config = _config(tmp_path, "kitti_cityscapes", "kitti_cityscapes")
  config.memory.sizes = kitti_cityscapes.get_config().memory.sizes
  data.ensure_prepared(config)
  kitti = _records(config, 0, "train")
  assert sorted(kitti) == ["000000", "000001", "000002"]
  np.testing.assert_array_equal(kitti["000000"]["boxes"], [[10, 5, 30.5, 25], [40, 0, 64, 20],
                                                           [2, 2, 8, 30]])
  np.testing.assert_array_equal(kitti["000000"]["labels"], [2, 2, 1])   # car, van, pedestrian
  np.testing.assert_array_equal(kitti["000001"]["boxes"], [[5, 5, 25, 35], [30, 10, 64, 39]])
  np.testing.assert_array_equal(kitti["000001"]["labels"], [4, 3])      # cyclist, truck
  assert sorted(_records(config, 0, "test")) == ["000000", "000001"]
  meta = _metadata(config, kitti_cityscapes_tfds, "kitti")
  assert meta["issues"]["counts"]["train"] == {"missing_image": 1, "box_outside": 1}
  assert meta["class_names"] == ["background", "person", "car", "truck", "bicycle"]
  city = _records(config, 1, "train")
  np.testing.assert_array_equal(city["aachen_000000_000019"]["boxes"],
                                [[40, 22, 50, 38], [10, 5, 30, 20], [50, 0, 64, 10],
                                 [52, 12, 60, 30]])
  np.testing.assert_array_equal(city["aachen_000000_000019"]["labels"], [1, 2, 2, 4])
  np.testing.assert_array_equal(city["bonn_000001_000019"]["boxes"],
                                [[10, 5, 31, 26], [50, 30, 64, 40]])   # polygons, clipped
  np.testing.assert_array_equal(city["bonn_000001_000019"]["labels"], [3, 2])
  assert city["bonn_000002_000019"]["boxes"].shape == (0, 4)           # no annotation files
  assert (_metadata(config, kitti_cityscapes_tfds, "cityscapes")["issues"]["counts"]
          == {"train": {"unannotated_image": 1}})
  assert list(_records(config, 1, "test")) == ["lindau_000000_000019"]
  batch = next(data.make_train_iterator(config))
  assert batch["a"]["masks"].shape == batch["b"]["masks"].shape == (2, 8, 8, 5)


# ---------------------------------------------------------------------------- configs


def test_configs():
  c = init.get_config("domains=sunny_cloudy,preset=official")
  assert (c.data.name, c.data.domains, c.data.storage_short) == ("init", "sunny_cloudy", 360)
  c = kitti_cityscapes.get_config()
  assert (c.data.name, c.data.domains, c.memory.sizes) == ("kitti_cityscapes",
                                                           "kitti_cityscapes", (8, 3, 3, 3, 3))
  c = folders.get_config("path=/data/x,sizes=10-5-2-3")
  assert (c.data.name, c.data.folders.path, c.memory.sizes) == ("folders", "/data/x", (10, 5, 2, 3))
  assert folders.get_config("path=/data/x").memory.sizes == (20,)
  with pytest.raises(ValueError, match="needs path="):
    folders.get_config()
  with pytest.raises(ValueError, match="sizes='10;5': expected '-'-separated"):
    folders.get_config("path=x,sizes=10;5")
  c = init.get_config("domains=sunny_foggy")
  with pytest.raises(ValueError, match=r"domains='sunny_foggy'.*'rainy', 'cloudy'"):
    data.ensure_prepared(c)


# ------------------------------------------------------------------------- bad input


def test_missing_data_directory(tmp_path):
  config = _config(tmp_path, "init", "sunny_night")
  with pytest.raises(FileNotFoundError) as e:
    data.ensure_prepared(config)
  message = str(e.value)
  assert str(tmp_path / "raw" / "init") in message and str(tmp_path / "tfds" / "init") in message
  assert "config.data.manual_dir" in message and "zhiqiangshen.com" in message
  config = _config(tmp_path, "kitti_cityscapes", "kitti_cityscapes")
  with pytest.raises(FileNotFoundError, match=r"raw files are not in .*raw/kitti.*data_object"):
    data.ensure_prepared(config)
  config = _config(tmp_path, "folders", "A_B")
  with pytest.raises(ValueError, match="config.data.folders.path is empty"):
    data.ensure_prepared(config)
  config.data.domains = "sunny_night"
  with pytest.raises(ValueError, match=r"domains='sunny_night'.*\('A', 'B'\)"):
    data.make_train_iterator(config)


def test_wrong_layouts(tmp_path):
  root = tmp_path / "raw" / "init"
  root.mkdir(parents=True)
  (root / "README.txt").write_text("hello")
  with pytest.raises(FileNotFoundError, match=r"no annotation file .* 'sunny'.*\['README.txt'\]"):
    data.ensure_prepared(_config(tmp_path, "init", "sunny_night"))
  (tmp_path / "raw" / "kitti" / "training").mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match=r"label_2 is not a directory"):
    data.ensure_prepared(_config(tmp_path, "kitti_cityscapes", "kitti_cityscapes"))
  (tmp_path / "folders" / "trainA").mkdir(parents=True)
  config = _config(tmp_path, "folders", "A_B", folders=dict(path=str(tmp_path / "folders")))
  with pytest.raises(ValueError, match=r"image_folders/A: split 'train' has no images"):
    data.ensure_prepared(config)
  _save(tmp_path / "folders" / "trainA" / "a.png", _draw([], [], 0))
  with pytest.raises(FileNotFoundError, match=r"trainB is not a directory.*found \['trainA'\]"):
    data.ensure_prepared(config)
  prepared = f"{folders_tfds.tag(tmp_path / 'folders')}_A_40_png"   # trainA only
  assert list((tmp_path / "tfds").rglob("dataset_info.json")) == [
      tmp_path / "tfds" / "image_folders" / prepared / "1.0.0" / "dataset_info.json"]


def _one_domain_init(root: Path, rows: str):
  """Six images without boxes, then 6.png (the test image) with `rows` (count line first)."""
  for domain in ("sunny", "night"):
    for i in range(7):
      _save(root / domain / f"{i}.png", _draw([], [], i))
    text = "".join(f"# {i}\n{domain}/{i}.png\n3 {H} {W} 1\n0\n0\n\n" for i in range(6))
    (root / f"{domain}.txt").write_text(text + f"# 6\n{domain}/6.png\n3 {H} {W} 1\n0\n{rows}")


def test_unknown_class_and_strict_mode_name_file_and_line(tmp_path):
  root = tmp_path / "raw" / "init"
  _one_domain_init(root, "1\n5 0 0 10 10\n")
  config = _config(tmp_path, "init", "sunny_night")
  with pytest.raises(ValueError, match=r"sunny.txt:42: unknown class id 5; expected 1, 2, 3"):
    data.ensure_prepared(config)
  _one_domain_init(root, "1\n1 -5 0 10 10\n")
  strict = _config(tmp_path, "init", "sunny_night", strict=True)
  with pytest.raises(ValueError, match=r"sunny.txt:42: box \[-5.0, 0.0, 10.0, 10.0\] leaves "
                                       r"the 40x64 image; clipped \(box_outside; config.data"):
    data.ensure_prepared(strict)
  assert not list((tmp_path / "tfds").rglob("dataset_info.json"))
  data.ensure_prepared(config)   # not strict: clipped and counted
  assert _metadata(config, init_tfds, "sunny")["issues"]["counts"] == {"test": {"box_outside": 1}}


def test_truncated_image_is_skipped_and_counted(tmp_path):
  root = tmp_path / "raw" / "init"
  _one_domain_init(root, "0\n")
  whole = (root / "night" / "2.png").read_bytes()
  (root / "night" / "2.png").write_bytes(whole[:len(whole) // 2])
  config = _config(tmp_path, "init", "sunny_night")
  data.ensure_prepared(config)
  meta = _metadata(config, init_tfds, "night")
  assert meta["issues"]["counts"] == {"train": {"unreadable_image": 1}}
  assert meta["issues"]["examples"]["train"]["unreadable_image"][0].startswith(
      f"{root / 'night' / '2.png'}: image failed to decode (OSError: image file is truncated")
  assert sorted(_records(config, 1, "train")) == ["night_0", "night_1", "night_3", "night_4",
                                                  "night_5"]
  strict = _config(tmp_path / "s", "init", "sunny_night", strict=True)
  strict.data.manual_dir = config.data.manual_dir
  with pytest.raises(ValueError, match=r"night/2.png: image failed to decode"):
    data.ensure_prepared(strict)
  (root / "night" / "6.png").write_bytes(whole[:100])   # the only test image
  with pytest.raises(ValueError, match=r"init/night: every image of split 'test' was skipped"):
    data.ensure_prepared(_config(tmp_path / "t", "init", "night_sunny",
                                 manual_dir=config.data.manual_dir))


def test_interrupted_prepare_leaves_no_dataset(tmp_path, monkeypatch):
  root = tmp_path / "raw" / "init"
  _one_domain_init(root, "0\n")
  config = _config(tmp_path, "init", "sunny_night")
  store = builders._Store.__call__
  calls = []

  def crash_on_third(self, example):
    calls.append(example.name)
    if len(calls) == 3:
      raise KeyboardInterrupt   # as if the user stopped it
    return store(self, example)

  monkeypatch.setattr(builders._Store, "__call__", crash_on_third)
  with pytest.raises(KeyboardInterrupt):
    data.ensure_prepared(config)
  builder = init_tfds.make_builder(config, "sunny")
  assert not builder.is_prepared()
  assert not list((tmp_path / "tfds").rglob("dataset_info.json"))
  assert not list((tmp_path / "tfds").rglob("*incomplete*"))
  with pytest.raises(FileNotFoundError, match="not prepared in .*ensure_prepared"):
    data.make_train_iterator(config)
  monkeypatch.setattr(builders._Store, "__call__", store)
  data.ensure_prepared(config)   # a new attempt starts afresh and completes
  assert builder.is_prepared() and len(_records(config, 0, "train")) == 6


def test_exif_rotated_photos_are_read_upright(tmp_path):
  """A phone photo stored 20 wide x 10 high with orientation 6 (rotate 90 degrees clockwise
  to display) is read as the upright 20 high x 10 wide image, header size included."""
  stored = np.zeros((10, 20, 3), np.uint8)
  stored[:, :5] = 255                        # white on the stored image's left
  exif = Image.Exif()
  exif[0x0112] = 6
  Image.fromarray(stored).save(tmp_path / "photo.jpg", exif=exif, quality=100)
  with Image.open(tmp_path / "photo.jpg") as image:
    assert transforms.upright_size(image) == (20, 10)
    upright = transforms.to_rgb(image)
  assert upright.shape == (20, 10, 3)
  # Rotated clockwise, the stored left edge becomes the top.
  assert upright[:4].mean() > 200 and upright[6:].mean() < 50
  decoded = transforms.decode_png((tmp_path / "photo.jpg").read_bytes(), "photo.jpg")
  np.testing.assert_array_equal(decoded, upright)


def _png16(pixels: np.ndarray, color_type: int) -> bytes:
  """A 16-bit PNG (color type 0 grey, 2 RGB) written by hand: PIL cannot write 16-bit RGB."""
  import struct
  import zlib
  h, w = pixels.shape[:2]
  rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(h))
  chunk = lambda kind, body: (struct.pack(">I", len(body)) + kind + body
                              + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
  header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
          + chunk(b"IEND", b""))


def test_every_kind_of_image_is_read_as_8_bit_rgb(tmp_path, caplog):
  rng = np.random.default_rng(0)
  grey16 = rng.integers(0, 65536, (6, 7)).astype(np.uint16)
  rgb16 = rng.integers(0, 65536, (6, 7, 3)).astype(np.uint16)
  rgb = rng.integers(0, 256, (6, 7, 3)).astype(np.uint8)
  (tmp_path / "grey16.png").write_bytes(_png16(grey16, 0))
  (tmp_path / "rgb16.png").write_bytes(_png16(rgb16, 2))
  Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(
      tmp_path / "palette.png")
  Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]])).convert("LA").save(tmp_path / "la.png")
  Image.fromarray((grey16 / 65535).astype(np.float32), mode="F").save(tmp_path / "float.tiff")
  Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
  read = {p.name: transforms.decode_png(p.read_bytes(), p.name) for p in tmp_path.iterdir()}
  assert all(x.dtype == np.uint8 and x.shape == (6, 7, 3) for x in read.values())
  # 16-bit greyscale was clipped to white by PIL's own conversion; here it is scaled.
  np.testing.assert_array_equal(read["grey16.png"][..., 1], np.round(grey16 / 257))
  np.testing.assert_array_equal(read["rgb16.png"], rgb16 >> 8)
  np.testing.assert_array_equal(read["float.tiff"][..., 2], np.round(grey16 / 65535 * 255))
  palette = np.asarray(Image.open(tmp_path / "palette.png").convert("RGB"))
  np.testing.assert_array_equal(read["palette.png"], palette)
  np.testing.assert_array_equal(read["la.png"][..., 0], rgb[..., 0])
  assert "la.png has an alpha channel; it is dropped" in caplog.text
  assert np.abs(read["cmyk.jpg"].astype(int) - rgb).mean() < 8
