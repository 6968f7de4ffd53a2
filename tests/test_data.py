"""Tests for the synthetic dataset, its TFDS builder and the grain pipeline."""

from __future__ import annotations

import io

from etils import epath
import grain
import numpy as np
from PIL import Image
import pytest

from configs import tiny
from mguit_jax import data
from mguit_jax.data import pipeline
from mguit_jax.data import synthetic
from mguit_jax.data import synthetic_tfds


@pytest.fixture(scope="module")
def config(tmp_path_factory):
  c = tiny.get_config()
  c.data.data_dir = str(tmp_path_factory.mktemp("tfds"))
  data.ensure_prepared(c)
  return c


def _batches(iterator, n):
  return [next(iterator) for _ in range(n)]


def _assert_same(batches_x, batches_y):
  for x, y in zip(batches_x, batches_y, strict=True):
    for domain in "ab":
      for key in ("image", "masks"):
        np.testing.assert_array_equal(x[domain][key], y[domain][key])


# ---------------------------------------------------------------------------- renderer


def test_render_is_deterministic():
  one = synthetic.render_pair(3, 7, 216, 288)
  two = synthetic.render_pair(3, 7, 216, 288)
  other = synthetic.render_pair(3, 8, 216, 288)
  for key in one:
    np.testing.assert_array_equal(one[key], two[key])
  assert one["image_a"].shape == (216, 288, 3) and one["image_a"].dtype == np.uint8
  assert not np.array_equal(one["image_a"], other["image_a"])


def test_annotations_are_valid_and_varied():
  scenes = [synthetic.make_scene(0, i, 216, 288) for i in range(120)]
  counts = np.zeros(4, int)
  empty = overlapping = 0
  for i, scene in enumerate(scenes):
    boxes, labels = scene.annotations()
    data.validate_example(boxes, labels, 216, 288, 4, f"scene {i}")
    counts += np.bincount(labels, minlength=4)
    empty += labels.size == 0
    lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.all(hi > lo, -1) & ~np.eye(len(boxes), dtype=bool)
    overlapping += inter.any()
  assert counts[0] == 0 and min(counts[1:]) >= 50   # every class is common
  assert 1 <= empty <= 20                           # a few scenes without objects
  assert overlapping >= 20                          # occlusion happens


def _region(image, box, shrink=0.0):
  x1, y1, x2, y2 = box
  dx, dy = (x2 - x1) * shrink, (y2 - y1) * shrink
  return image[int(y1 + dy):int(np.ceil(y2 - dy)), int(x1 + dx):int(np.ceil(x2 - dx))]


def test_domains_change_each_class_differently():
  sky_a, sky_b, person_ratio, sign_ratio, car_dim = [], [], [], [], []
  cars = cars_lit = 0
  windows = 0
  for i in range(16):
    scene = synthetic.make_scene(0, i, 216, 288)
    a = synthetic.render(scene, "sunny").astype(np.float32)
    b = synthetic.render(scene, "night").astype(np.float32)
    vx, top = int(scene.vanish_x), int(0.3 * scene.horizon)
    sky_a.append(a[:top, vx - 3:vx + 3].mean())
    sky_b.append(b[:top, vx - 3:vx + 3].mean())
    boxes, labels = scene.annotations()
    for box, label in zip(boxes, labels):
      ra, rb = _region(a, box), _region(b, box)
      if label == synthetic.CAR:
        cars += 1
        cars_lit += (rb[..., 0] >= 230).any()     # head- or tail-light pixels
        car_dim.append(rb.mean() / ra.mean())
      elif label == synthetic.PERSON:
        person_ratio.append(_region(b, box, 0.3).mean() / _region(a, box, 0.3).mean())
      elif label == synthetic.SIGN and min(box[2] - box[0], box[3] - box[1]) >= 8:
        sign_ratio.append(_region(b, box, 0.35).mean() / _region(a, box, 0.35).mean())
    warm = (b[..., 0] > 200) & (b[..., 1] > 140) & (b[..., 2] < 170)   # lit windows
    windows += warm[:int(scene.horizon)].sum()
  assert np.mean(sky_a) > 130 and np.mean(sky_b) < 40           # the sky turns dark
  assert cars >= 20 and cars_lit / cars >= 0.9                   # cars gain lights
  assert np.median(car_dim) < 0.5                                # car bodies darken
  assert len(person_ratio) >= 10 and np.max(person_ratio) < 0.5  # persons darken
  assert len(sign_ratio) >= 3 and np.min(sign_ratio) > 0.8       # signs stay bright
  assert windows > 16 * 100                                      # windows light up


def test_looks_change_the_light_not_the_scene():
  scene = synthetic.make_scene(0, 5, 216, 288)
  np.testing.assert_array_equal(synthetic.render(scene, "night", (0.0, 0.0)),
                                synthetic.render(scene, "night"))
  top = int(0.3 * scene.horizon)
  for domain in synthetic.DOMAINS:
    cool, warm = (synthetic.render(scene, domain, (w, 0.0)).astype(np.float32) for w in (-1, 1))
    dark, bright = (synthetic.render(scene, domain, (0.0, e)).astype(np.float32) for e in (-1, 1))
    red_over_blue = lambda img: img[..., 0].mean() / img[..., 2].mean()
    assert red_over_blue(warm) > 1.5 * red_over_blue(cool), domain
    assert bright.mean() > 1.5 * dark.mean(), domain
    # The scene stays: edges (row differences) agree in sign where they are strong.
    d_warm, d_cool = np.diff(warm.mean(-1), axis=0), np.diff(cool.mean(-1), axis=0)
    strong = np.abs(d_cool) > 20
    assert strong.sum() > 500 and (np.sign(d_warm[strong]) == np.sign(d_cool[strong])).mean() > 0.95
  night_sky = lambda w: synthetic.render(scene, "night", (w, 0.0))[:top].astype(np.float32)
  assert night_sky(1)[..., 0].mean() > night_sky(-1)[..., 0].mean() + 15   # sodium glow
  assert night_sky(-1)[..., 2].mean() > night_sky(1)[..., 2].mean() + 15   # moonlit blue
  looks = np.array([synthetic.sample_look(0, i, "night", 0.5) for i in range(200)])
  assert np.abs(looks).max() <= 0.5 and looks.std(0).min() > 0.25   # uniform on [-0.5, 0.5]
  assert synthetic.sample_look(0, 3, "night", 0.5) == synthetic.sample_look(0, 3, "night", 0.5)
  assert synthetic.sample_look(0, 3, "night", 0.5) != synthetic.sample_look(0, 3, "sunny", 0.5)
  assert synthetic.sample_look(0, 3, "sunny", 0.0) == (0.0, 0.0)
  with pytest.raises(ValueError, match=r"look amount 1.5"):
    synthetic.sample_look(0, 3, "sunny", 1.5)


def test_looks_render_training_images_only(tmp_path):
  cfg = synthetic_tfds.builder_config(64, 64, num_train=2, num_test=1, looks=1.0)
  assert cfg.name == "64x64_train2_test1_seed0_looks1"
  builder = synthetic_tfds.SyntheticStreets(data_dir=str(tmp_path), file_format="array_record",
                                            config=cfg)
  builder.download_and_prepare()
  record = lambda split, scene: next(r for r in (builder.as_data_source(split)[i] for i in range(
      len(builder.as_data_source(split)))) if r["scene"] == scene)
  scene = synthetic.make_scene(0, 1, 64, 64)   # train_b scene 0
  look = synthetic.sample_look(0, 1, "night", 1.0)
  assert look != (0.0, 0.0)
  np.testing.assert_array_equal(record("train_b", 0)["image_b"],
                                synthetic.render(scene, "night", look))
  want = synthetic.render_pair(0, 2, 64, 64)   # test scene 0: the central looks
  np.testing.assert_array_equal(record("test", 0)["image_a"], want["image_a"])
  np.testing.assert_array_equal(record("test", 0)["image_b"], want["image_b"])
  with pytest.raises(ValueError, match=r"config.data.synthetic.looks=2"):
    synthetic_tfds.builder_config(64, 64, 2, 1, looks=2.0)


# ----------------------------------------------------------------------- TFDS builder


def test_tfds_splits(config):
  builder = pipeline._synthetic_builder(config)
  syn = config.data.synthetic
  assert builder.builder_config.name == "216x256_train8_test4_seed0"
  splits = {s: builder.as_data_source(s) for s in synthetic_tfds.SPLITS}
  assert {s: len(v) for s, v in splits.items()} == {"train_a": 8, "train_b": 8, "test": 4}
  test = splits["test"]
  records = sorted((test[i] for i in range(len(test))), key=lambda r: r["scene"])
  assert [r["scene"] for r in records] == [0, 1, 2, 3]
  want = synthetic.render_pair(0, 3 * 1 + 2, syn.height, syn.width)   # test scene 1
  for key in ("image_a", "image_b", "boxes", "labels"):
    np.testing.assert_array_equal(records[1][key], want[key])
  assert records[1]["boxes"].dtype == np.float32 and records[1]["labels"].dtype == np.int64
  train_a = {int(splits["train_a"][i]["scene"]): splits["train_a"][i] for i in range(8)}
  train_b = {int(splits["train_b"][i]["scene"]): splits["train_b"][i] for i in range(8)}
  assert train_a[0]["image_a"].shape == (216, 256, 3)
  assert train_a[0]["image_b"].shape == (1, 1, 3)   # placeholder: not rendered
  assert train_b[0]["image_b"].shape == (216, 256, 3)
  # Unpaired: the B scenes are other scenes than the A scenes.
  assert not any(np.array_equal(train_a[i]["boxes"], train_b[i]["boxes"]) for i in range(8))


def test_tfds_config_names_separate_sizes(config):
  other = config.copy_and_resolve_references()
  other.data.synthetic.num_test = 5
  assert pipeline._synthetic_builder(other).data_dir != pipeline._synthetic_builder(config).data_dir
  with pytest.raises(FileNotFoundError, match="ensure_prepared"):
    data.load_test_pairs(other)


# ------------------------------------------------------------------------ pipeline


def test_train_batches(config):
  batches = _batches(data.make_train_iterator(config), 5)
  for batch in batches:
    for domain in "ab":
      image, masks = batch[domain]["image"], batch[domain]["masks"]
      assert image.shape == (2, 216, 216, 3) and image.dtype == np.float32
      assert masks.shape == (2, 54, 54, 4) and masks.dtype == np.float32
      assert image.min() >= -1.0 and image.max() <= 1.0 and image.max() - image.min() > 1.0
      assert set(np.unique(masks)) <= {0.0, 1.0}
      np.testing.assert_array_equal(masks[..., 0], 1.0 - masks[..., 1:].max(-1))
  masks = np.concatenate([b[d]["masks"] for b in batches for d in "ab"])
  assert masks[..., 1:].sum((0, 1, 2)).min() > 0   # every object class shows up
  # Domain B is the night: darker on average.
  mean = lambda d: np.mean([b[d]["image"].mean() for b in batches])
  assert mean("b") < mean("a") - 0.3


def test_same_config_same_batches_and_seed_matters(config):
  _assert_same(_batches(data.make_train_iterator(config), 4),
               _batches(data.make_train_iterator(config), 4))
  reseeded = config.copy_and_resolve_references()
  reseeded.seed = 1
  x = next(data.make_train_iterator(config))["a"]["image"]
  y = next(data.make_train_iterator(reseeded))["a"]["image"]
  assert not np.array_equal(x, y)


def test_iterator_state_round_trip(config, tmp_path):
  reference = data.make_train_iterator(config)
  _batches(reference, 5)   # more than an epoch of 8 images at batch 2 comes later
  state = reference.get_state()
  want = _batches(reference, 6)
  restored = data.make_train_iterator(config)
  restored.set_state(state)
  _assert_same(want, _batches(restored, 6))
  # The same through grain's orbax checkpoint handler (what the train loop uses).
  saved = data.make_train_iterator(config)
  _batches(saved, 5)
  handler = grain.checkpoint.CheckpointHandler()
  handler.save(epath.Path(tmp_path), args=grain.checkpoint.CheckpointSave(saved))
  fresh = data.make_train_iterator(config)
  handler.restore(epath.Path(tmp_path), args=grain.checkpoint.CheckpointRestore(fresh))
  _assert_same(want, _batches(fresh, 6))


def test_host_sharding(config):
  c = config.copy_and_resolve_references()
  hosts = [next(data.make_train_iterator(c, process_index=i, process_count=2))
           for i in range(2)]
  assert hosts[0]["a"]["image"].shape == (1, 216, 216, 3)
  assert not np.array_equal(hosts[0]["a"]["image"], hosts[1]["a"]["image"])
  with pytest.raises(ValueError, match="batch_size"):
    data.make_train_iterator(c, process_count=3)


def test_fewer_mask_classes(config):
  c = config.copy_and_resolve_references()
  c.memory.sizes = (10,)
  masks = next(data.make_train_iterator(c))["a"]["masks"]
  assert masks.shape == (2, 54, 54, 1) and np.all(masks == 1.0)


def test_class_masks_on_hand_boxes():
  # Crop of 16 px: content cells have centres 2, 6, 10, 14.
  boxes = np.array([[20, 4, 30, 12], [0, 0, 5, 3], [14, 13, 40, 40]], np.float32)
  labels = np.array([1, 2, 3])
  cropped, kept = pipeline.crop_boxes(boxes, labels, 16, 0, 16)
  np.testing.assert_array_equal(cropped, [[4, 4, 14, 12], [0, 13, 16, 16]])   # 2nd dropped
  np.testing.assert_array_equal(kept, [1, 3])
  masks = pipeline.class_masks(cropped, kept, 16, 4)
  car = np.zeros((4, 4))
  car[1:3, 1:3] = 1        # x centres 6, 10 and y centres 6, 10 lie in the box
  person = np.zeros((4, 4))
  person[3, :] = 1         # y centre 14 in [13, 16)
  np.testing.assert_array_equal(masks[..., 1], car)
  np.testing.assert_array_equal(masks[..., 3], person)
  np.testing.assert_array_equal(masks[..., 2], 0)
  np.testing.assert_array_equal(masks[..., 0], 1 - np.maximum(car, person))
  flipped = pipeline.flip_boxes(cropped, 16)
  np.testing.assert_array_equal(flipped[0], [2, 4, 12, 12])
  car_flipped = np.zeros((4, 4))
  car_flipped[1:3, 0:3] = 1   # x centres 2, 6, 10
  flipped_masks = pipeline.class_masks(flipped, kept, 16, 4)
  np.testing.assert_array_equal(flipped_masks[..., 1], car_flipped)
  # Classes beyond the mask channels count as background.
  np.testing.assert_array_equal(pipeline.class_masks(cropped, kept, 16, 2)[..., 0], 1 - car)


def test_augment_keeps_masks_on_objects():
  # Black image with two coloured rectangles; after crop and flip, a content cell is an
  # object cell exactly when the pixel at its centre has the object's colour.
  image = np.zeros((216, 300, 3), np.uint8)
  boxes = np.array([[30, 20, 130, 90], [150, 100, 290, 210]], np.float32)
  labels = np.array([1, 3])
  colours = {1: (255, 0, 0), 3: (0, 0, 255)}
  for (x1, y1, x2, y2), label in zip(boxes.astype(int), labels):
    image[y1:y2, x1:x2] = colours[label]
  augment = pipeline.Augment(resize_short=216, crop_size=216, flip=True, num_classes=4)
  example = {"image": image, "boxes": boxes, "labels": labels}
  flips = set()
  for seed in range(8):
    out = augment(example, np.random.default_rng(seed))
    centres = out["image"][2::4, 2::4]
    for label, colour in colours.items():
      on_object = np.all(np.isclose(centres, np.array(colour) / 127.5 - 1), -1)
      np.testing.assert_array_equal(out["masks"][..., label], on_object.astype(np.float32))
    flips.add(bool(out["masks"][:, :10, 1].any()))   # the car sits on the left unless flipped
  assert flips == {True, False}


def test_resize_scales_boxes():
  image = np.zeros((108, 144, 3), np.uint8)
  resized, boxes = pipeline.resize(image, np.array([[10, 20, 30, 40]], np.float32), 216)
  assert resized.shape == (216, 288, 3)
  np.testing.assert_allclose(boxes, [[20, 40, 60, 80]])


def test_load_test_pairs(config):
  pairs = data.load_test_pairs(config, num=3)
  assert pairs["image_a"].shape == (3, 216, 216, 3)
  assert pairs["image_b"].shape == (3, 216, 216, 3)
  assert pairs["masks"].shape == (3, 54, 54, 4)
  # Scene order and a centre crop (216x256 -> columns 20..235), no resize at short side 216.
  want = synthetic.render_pair(0, 2, 216, 256)   # test scene 0
  np.testing.assert_array_equal(pairs["image_a"][0], pipeline.normalize(want["image_a"][:, 20:236]))
  np.testing.assert_array_equal(pairs["image_b"][0], pipeline.normalize(want["image_b"][:, 20:236]))
  assert len(data.load_test_pairs(config)["image_a"]) == 4


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("boxes, labels, match", [
    (np.zeros((2, 3)), np.ones(2), "field 'boxes' has shape"),
    (np.array([[10, 10, 20, 20]]), np.ones(2), "field 'labels' has shape"),
    (np.array([[10, 10, 10, 20]]), np.ones(1), "'boxes' row 0 .* x2 > x1"),
    (np.array([[10, 30, 20, 20]]), np.ones(1), "'boxes' row 0 .* y2 > y1"),
    (np.array([[0, 0, 10, 10], [90, 10, 102, 20]]), np.ones(2), "'boxes' row 1 .* outside"),
    (np.array([[-2, 0, 10, 10]]), np.ones(1), "outside"),
    (np.array([[0, 0, 10, 10]]), np.array([0]), "'labels' entry 0 = 0"),
    (np.array([[0, 0, 10, 10]]), np.array([4]), "'labels' entry 0 = 4; expected .* 1..3"),
])
def test_validate_example_errors(boxes, labels, match):
  with pytest.raises(ValueError, match=match) as e:
    data.validate_example(boxes, labels, 50, 100, 4, "file x.json")
  assert "file x.json" in str(e.value)


def test_validate_example_accepts_good_boxes():
  data.validate_example(np.zeros((0, 4)), np.zeros(0), 50, 100, 4, "empty")
  data.validate_example(np.array([[-1, 0, 101, 50.5]]), np.array([3]), 50, 100, 4, "edge")


def test_broken_image_and_empty_split():
  source = pipeline.DomainSource(
      [{"image_a": b"not a png", "boxes": np.zeros((0, 4)), "labels": np.zeros(0)}],
      "train_a", "image_a", 4)
  with pytest.raises(ValueError, match="split 'train_a' record 0: image failed to decode"):
    source[0]
  buffer = io.BytesIO()
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, format="PNG")
  good = pipeline.DomainSource(
      [{"image_b": buffer.getvalue(), "boxes": np.array([[0, 0, 9.5, 4]]), "labels": [2]}],
      "train_b", "image_b", 4)
  with pytest.raises(ValueError, match="split 'train_b' record 0: field 'boxes'"):
    good[0]


def test_empty_domain_raises(config, monkeypatch):
  empty = pipeline.DomainSource([], "train_b", "image_b", 4)
  full = pipeline._train_sources(config)[0]
  monkeypatch.setattr(pipeline, "_train_sources", lambda c: (full, empty))
  with pytest.raises(ValueError, match="split 'train_b' .* is empty"):
    data.make_train_iterator(config)


def test_ensure_prepared_init_and_unknown(tmp_path):
  c = tiny.get_config()
  c.data.name = "init"
  c.data.data_dir = str(tmp_path / "tfds")
  with pytest.raises(FileNotFoundError) as e:
    data.ensure_prepared(c)
  assert str(tmp_path / "tfds" / "init") in str(e.value)
  assert "config.data.manual_dir" in str(e.value)
  c.data.name = "kitti"
  with pytest.raises(ValueError, match="config.data.name='kitti'"):
    data.ensure_prepared(c)


def test_bad_sizes(config):
  c = config.copy_and_resolve_references()
  c.data.crop_size = 218
  with pytest.raises(ValueError, match="config.data.crop_size=218"):
    data.make_train_iterator(c)
  c.data.crop_size, c.data.resize_short = 216, 200
  with pytest.raises(ValueError, match="config.data.resize_short=200"):
    data.make_train_iterator(c)
  c.data.resize_short, c.data.synthetic.num_train = 216, 0
  with pytest.raises(ValueError, match="config.data.synthetic.num_train=0"):
    data.ensure_prepared(c)
