"""Procedural two-domain street scenes: the embedded default dataset.

A scene is sampled once from (seed, index) as world geometry seen from a car on a
straight street (one-point perspective): road with lane markings, sidewalks, facades
with windows, street lamps, a distant skyline, and the annotated objects: cars (1),
traffic signs (2) and persons (3). The same scene can be rendered in either domain,
and each class changes differently between them, so that class-aware memory has
something to learn. At night the sky turns dark, facades darken while some windows
light up, car bodies darken but gain head- and tail-lights, persons darken, and the
retro-reflective signs stay bright; lamps throw light pools on the road.

Everything is numpy, vectorised over pixels; rendering is deterministic given the
scene (pixel noise is seeded from the scene too).
"""

from __future__ import annotations

import dataclasses

import numpy as np

CAR, SIGN, PERSON = 1, 2, 3
CLASS_NAMES = ("background", "car", "traffic_sign", "person")
DOMAINS = ("sunny", "night")

_CAM_HEIGHT = 1.4    # metres above the road
_FAR = 150.0         # where the street ends (metres)
_MIN_BOX = 4         # smallest kept box side (pixels)
_MIN_VISIBLE = 0.35  # objects hidden more than this by nearer boxes are dropped

_FACADE_COLORS = np.array([
    (200, 185, 160), (150, 78, 62), (150, 150, 150), (140, 160, 175), (220, 210, 180),
    (120, 92, 72), (210, 210, 205), (190, 112, 82), (170, 160, 120)], np.float32)
_CAR_COLORS = np.array([
    (180, 20, 25), (25, 50, 140), (230, 230, 230), (25, 25, 28), (160, 165, 170),
    (220, 190, 30), (30, 100, 50), (80, 80, 85), (120, 20, 60), (200, 90, 20)], np.float32)
_SKIN = np.array([(235, 200, 170), (200, 150, 110), (150, 100, 70), (95, 65, 45)], np.float32)
_CLOTHES = np.array([
    (200, 40, 40), (40, 70, 160), (240, 240, 235), (30, 30, 35), (60, 130, 60),
    (230, 200, 40), (120, 80, 140), (110, 110, 115), (200, 120, 60), (60, 170, 190)],
    np.float32)
_SIGN_KINDS = ("prohibit", "warning", "info", "stop", "priority")


@dataclasses.dataclass(frozen=True)
class Obj:
  """One annotated object: class id, depth and pixel box (full extent, may leave the image)."""
  label: int
  depth: float
  box: tuple[int, int, int, int]   # x1, y1, x2, y2, half-open integer pixel edges
  colors: tuple[tuple[float, float, float], ...]
  variant: str                     # car: front|rear; sign: one of _SIGN_KINDS; person: ""
  pole: tuple[int, int, int] | None = None   # sign pole: x1, x2, ground row


@dataclasses.dataclass(frozen=True)
class Side:
  """The buildings along one side of the street, as segments in depth."""
  start: np.ndarray    # [n] metres
  end: np.ndarray      # [n] metres
  height: np.ndarray   # [n] metres
  color: np.ndarray    # [n, 3]
  bay: np.ndarray      # [n] horizontal window spacing (metres)
  lit: np.ndarray      # [n] fraction of windows lit at night
  hash: np.ndarray     # [n] int64 per-building hash seed


@dataclasses.dataclass(frozen=True)
class Scene:
  """Domain-independent description of one street scene."""
  height: int
  width: int
  horizon: float       # row of the horizon (pixels)
  vanish_x: float      # column of the vanishing point
  focal: float         # pixels per metre at 1 m depth
  road_half: float     # half road width (metres)
  facade_x: float      # lateral distance of the facades (metres)
  sides: tuple[Side, Side]   # left, right
  sun_gain: tuple[float, float]   # daylight brightness of the left, right facades
  skyline: np.ndarray  # [W] skyline height above the horizon (pixels)
  clouds: np.ndarray   # [k, 4] cx, cy, rx, ry (pixels)
  stars: np.ndarray    # [k, 3] x, y, brightness
  lamps: np.ndarray    # [k, 2] lateral X, depth Z (metres)
  objects: tuple[Obj, ...]   # far to near (drawing order)
  noise_seed: int

  def annotations(self) -> tuple[np.ndarray, np.ndarray]:
    """Boxes float32 [M,4] (x1,y1,x2,y2) clipped to the image, labels int64 [M]."""
    boxes = np.array([o.box for o in self.objects], np.float32).reshape(-1, 4)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, self.width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, self.height)
    return boxes, np.array([o.label for o in self.objects], np.int64)


# ----------------------------------------------------------------------------- sampling


def make_scene(seed: int, index: int, height: int, width: int) -> Scene:
  """Samples scene `index` of the stream `seed` (pure function of its arguments)."""
  if height < 32 or width < 32:
    raise ValueError(f"synthetic scene size {height}x{width}: expected at least 32x32")
  rng = np.random.default_rng([seed, index, height, width])
  horizon = height * rng.uniform(0.40, 0.50)
  vanish_x = width * (0.5 + rng.uniform(-0.08, 0.08))
  focal = width * rng.uniform(0.85, 1.0)
  road_half = rng.uniform(4.5, 6.0)
  facade_x = road_half + rng.uniform(2.5, 3.5)
  cam = dict(horizon=horizon, vanish_x=vanish_x, focal=focal)
  sides = (_sample_side(rng), _sample_side(rng))
  sunny_left = rng.random() < 0.5
  sun_gain = (1.0, 0.72) if sunny_left else (0.72, 1.0)
  skyline = _sample_skyline(rng, width, horizon)
  n_clouds = rng.integers(0, 5)
  clouds = np.stack([rng.uniform(0, width, n_clouds), rng.uniform(0.05, 0.8, n_clouds) * horizon,
                     rng.uniform(0.08, 0.2, n_clouds) * width,
                     rng.uniform(0.03, 0.07, n_clouds) * height], 1)
  n_stars = int(width * horizon / 250)
  stars = np.stack([rng.integers(0, width, n_stars), rng.integers(0, int(horizon), n_stars),
                    rng.uniform(90, 255, n_stars)], 1)
  lamp_z = np.arange(rng.uniform(4, 20), 90, rng.uniform(18, 30))
  lamp_side = np.where(rng.random(lamp_z.size) < 0.5, -1.0, 1.0)
  lamps = np.stack([lamp_side * (road_half + 0.5), lamp_z], 1)
  objects = _sample_objects(rng, height, width, road_half, facade_x, **cam)
  return Scene(height=height, width=width, road_half=road_half, facade_x=facade_x,
               sides=sides, sun_gain=sun_gain, skyline=skyline, clouds=clouds, stars=stars,
               lamps=lamps, objects=objects, noise_seed=int(rng.integers(2**31)), **cam)


def _sample_side(rng: np.random.Generator) -> Side:
  """Buildings along one side, with occasional gaps (alleys)."""
  starts, ends = [], []
  z = rng.uniform(-5.0, 3.0)
  while z < _FAR:
    z += rng.uniform(0.0, 5.0) if rng.random() < 0.3 else 0.0
    length = rng.uniform(8.0, 30.0)
    starts.append(z)
    ends.append(z + length)
    z += length
  n = len(starts)
  color = _FACADE_COLORS[rng.integers(0, len(_FACADE_COLORS), n)]
  color = np.clip(color + rng.uniform(-15, 15, (n, 3)), 0, 255)
  return Side(start=np.array(starts), end=np.array(ends), height=rng.uniform(7.0, 30.0, n),
              color=color, bay=rng.uniform(2.2, 3.4, n), lit=rng.uniform(0.15, 0.6, n),
              hash=rng.integers(1, 2**20, n))


def _sample_skyline(rng: np.random.Generator, width: int, horizon: float) -> np.ndarray:
  """Heights (pixels above the horizon) of distant blocks, piecewise constant."""
  out = np.zeros(width, np.float32)
  x = 0
  while x < width:
    w = int(rng.integers(4, 16))
    out[x:x + w] = rng.uniform(0.03, 0.22) * horizon
    x += w
  return out


def _sample_objects(rng, height, width, road_half, facade_x, *, horizon, vanish_x, focal):
  """Cars, signs and persons in world space, projected, occlusion-culled, far to near."""
  near = focal * _CAM_HEIGHT / (height - horizon)   # depth of the bottom image row
  if rng.random() < 0.06:
    counts = (0, 0, 0)   # a few scenes hold no object at all
  else:
    counts = (rng.integers(0, 7), rng.integers(0, 4), rng.integers(0, 6))
    if sum(counts) == 0:
      counts = (1, 0, 0)
  proto = []   # (label, X centre, Z, width m, bottom height m, top height m, colors, variant)
  for _ in range(counts[0]):
    lane = rng.choice(["oncoming", "ahead", "parked_l", "parked_r"], p=[0.3, 0.35, 0.15, 0.2])
    x = {"oncoming": -0.5, "ahead": 0.5, "parked_l": -1.0, "parked_r": 1.0}[lane] * road_half
    x += rng.uniform(-0.4, 0.4) - (np.sign(x) * 1.1 if lane.startswith("parked") else 0.0)
    front = lane == "oncoming" or (lane == "parked_l" and rng.random() < 0.5)
    body = _CAR_COLORS[rng.integers(len(_CAR_COLORS))] + rng.uniform(-12, 12, 3)
    proto.append((CAR, x, _log_uniform(rng, near * 0.9, 45.0), rng.uniform(1.7, 2.0), 0.0,
                  rng.choice([1.45, 1.6, 1.75, 2.0]) + rng.uniform(-0.08, 0.08),
                  (tuple(np.clip(body, 0, 255)),), "front" if front else "rear"))
  for _ in range(counts[1]):
    side = -1.0 if rng.random() < 0.5 else 1.0
    size = rng.uniform(0.6, 0.85)
    bottom = rng.uniform(1.9, 2.4)
    depth = _log_uniform(rng, near * 1.5, 35.0)
    tint = tuple(rng.uniform(-10, 10, 3))   # small per-sign colour variation
    proto.append((SIGN, side * (road_half + 0.35), depth, size, bottom, bottom + size,
                  (tint,), str(rng.choice(_SIGN_KINDS))))
  for _ in range(counts[2]):
    if rng.random() < 0.15:   # crossing the road
      x = rng.uniform(-road_half, road_half)
    else:
      x = (-1.0 if rng.random() < 0.5 else 1.0) * rng.uniform(road_half + 0.4, facade_x - 0.4)
    tall = rng.uniform(1.55, 1.9)
    colors = (_SKIN[rng.integers(len(_SKIN))], _CLOTHES[rng.integers(len(_CLOTHES))],
              _CLOTHES[rng.integers(len(_CLOTHES))] * 0.7)
    proto.append((PERSON, x, _log_uniform(rng, near, 30.0), 0.32 * tall, 0.0, tall,
                  tuple(tuple(c) for c in colors), ""))

  objs = []
  for label, x, z, w, bottom, top, colors, variant in proto:
    s = focal / z
    cx = vanish_x + s * x
    ground = horizon + s * _CAM_HEIGHT
    box = (round(cx - s * w / 2), round(ground - s * top), round(cx + s * w / 2),
           round(ground - s * bottom))
    box = (box[0], box[1], max(box[2], box[0] + 1), max(box[3], box[1] + 1))
    pole = None
    if label == SIGN:
      half_pole = max(0.5, s * 0.04)
      pole = (round(cx - half_pole), round(cx + half_pole), round(ground))
    objs.append(Obj(label, float(z), box, colors, variant, pole))
  return _cull(objs, height, width)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
  """Depths spread evenly in log space, so near (large) objects are common."""
  return float(np.exp(rng.uniform(np.log(low), np.log(max(high, low * 1.01)))))


def _cull(objs: list[Obj], height: int, width: int) -> tuple[Obj, ...]:
  """Drops tiny and mostly hidden objects (by box overlap); returns far to near."""
  taken = np.zeros((height, width), bool)
  kept = []
  for o in sorted(objs, key=lambda o: o.depth):
    x1, y1, x2, y2 = np.clip(o.box, 0, [width, height, width, height])
    if x2 - x1 < _MIN_BOX or y2 - y1 < _MIN_BOX:
      continue
    region = taken[y1:y2, x1:x2]
    if 1.0 - region.mean() < _MIN_VISIBLE:
      continue
    region[...] = True
    kept.append(o)
  return tuple(reversed(kept))


# ---------------------------------------------------------------------------- rendering


def render(scene: Scene, domain: str, look: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
  """Renders `scene` in `domain` ('sunny' or 'night') as uint8 [H, W, 3].

  `look` = (warmth, exposure), each in [-1, 1]: the domain's appearance apart from the
  scene (see `_apply_look`); (0, 0) is the domain's central look.
  """
  if domain not in DOMAINS:
    raise ValueError(f"domain={domain!r}: expected one of {DOMAINS}")
  night = domain == "night"
  h, w = scene.height, scene.width
  ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
  xs = np.arange(w, dtype=np.float32)[None, :] + 0.5
  img = _sky(scene, ys, xs, night)
  _skyline(scene, img, ys, night)
  _ground(scene, img, ys, xs, night)
  _facades(scene, img, ys, xs, night)
  _street_lamps(scene, img, night)
  for obj in scene.objects:
    {CAR: _car, SIGN: _sign, PERSON: _person}[obj.label](scene, img, obj, night)
  img = _apply_look(img, look, night)
  rng = np.random.default_rng([scene.noise_seed, int(night)])
  img += rng.standard_normal(img.shape, dtype=np.float32) * (3.0 if night else 2.0)
  return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_pair(seed: int, index: int, height: int, width: int) -> dict[str, np.ndarray]:
  """Scene `index` in both domains with its annotations."""
  scene = make_scene(seed, index, height, width)
  boxes, labels = scene.annotations()
  return {"image_a": render(scene, "sunny"), "image_b": render(scene, "night"),
          "boxes": boxes, "labels": labels}


def sample_look(seed: int, index: int, domain: str, amount: float) -> tuple[float, float]:
  """The look of rendering `index` of stream `seed` in `domain`: (warmth, exposure) drawn
  uniformly from [-amount, amount] (amount 0: the central look), independently of the scene
  and of the other domain's rendering."""
  if not 0.0 <= amount <= 1.0:
    raise ValueError(f"look amount {amount}: expected a value in [0, 1]")
  rng = np.random.default_rng([seed, index, DOMAINS.index(domain), 7919])
  warmth, exposure = rng.uniform(-amount, amount, 2) if amount else (0.0, 0.0)
  return float(warmth), float(exposure)


def _apply_look(img, look, night):
  """Colour of the light, a style that varies between renderings of one domain.

  Sunny: warmth tints from a cool blue-white day (-1) to a golden afternoon (+1), exposure
  scales brightness by 2^(+-0.35). Night: warmth moves the light from moonlit blue (-1) to
  sodium orange (+1), lamps, windows and the sky glow alike; exposure by 2^(+-0.5).
  """
  warmth, exposure = look
  if not (warmth or exposure):
    return img
  if night:
    gain = np.float32((1 + 0.35 * warmth, 1 + 0.05 * warmth, 1 - 0.35 * warmth))
    glow = np.float32((30, 14, 0)) * max(warmth, 0) + np.float32((0, 6, 26)) * max(-warmth, 0)
    return (img * gain + glow) * np.float32(2 ** (0.5 * exposure))
  gain = np.float32((1 + 0.18 * warmth, 1 + 0.02 * warmth, 1 - 0.22 * warmth))
  return img * gain * np.float32(2 ** (0.35 * exposure))


def _mix(a, b, t):
  """Linear blend from a to b by t (float32)."""
  return a + (np.asarray(b, np.float32) - a) * np.asarray(t, np.float32)


def _sky(scene, ys, xs, night):
  """Vertical gradient; clouds by day, stars by night."""
  t = np.clip(ys / max(scene.horizon, 1.0), 0, 1)[..., None]
  top, low = ((4, 6, 22), (26, 32, 62)) if night else ((62, 120, 205), (185, 212, 240))
  img = np.broadcast_to(_mix(np.float32(top), low, t), (scene.height, scene.width, 3)).copy()
  if night:
    sx, sy, sb = scene.stars.T
    img[sy.astype(int), sx.astype(int)] = sb[:, None]
  else:
    for cx, cy, rx, ry in scene.clouds:
      d = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2
      d = np.minimum(d, ((xs - cx - 0.6 * rx) / (0.6 * rx)) ** 2 + ((ys - cy + 0.4 * ry) / ry) ** 2)
      alpha = np.clip(1.0 - d, 0, 1)[..., None] ** 0.5 * 0.85
      img = _mix(img, (248, 248, 250), alpha)
  return img


def _skyline(scene, img, ys, night):
  """Distant blocks above the horizon, hazy by day, dotted with lights at night."""
  top = scene.horizon - scene.skyline[None, :]
  mask = (ys >= top) & (ys < scene.horizon + 1)
  img[mask] = (12, 13, 24) if night else (150, 165, 190)
  if night:
    rows, cols = np.nonzero(mask)
    dots = _hash2(rows, cols, 7) % 23 == 0
    img[rows[dots], cols[dots]] = (200, 170, 100)


def _ground(scene, img, ys, xs, night):
  """Road with anti-aliased lane markings, kerbs and sidewalks, fading with distance."""
  below = ys[:, 0] > scene.horizon + 0.5
  row0 = int(np.argmax(below)) if below.any() else scene.height
  ys, out = ys[row0:], img[row0:]
  z = np.float32(scene.focal * _CAM_HEIGHT) / (ys - np.float32(scene.horizon))   # [h', 1]
  x = (xs - np.float32(scene.vanish_x)) * (z / np.float32(scene.focal))          # [h', W]
  ax = np.abs(x)
  px_per_m = scene.focal / z
  asphalt = (88, 88, 92) if not night else (20, 21, 27)
  walk = (165, 160, 150) if not night else (30, 30, 34)
  alley = (110, 105, 100) if not night else (12, 12, 16)
  color = np.where((ax < scene.road_half)[..., None], np.float32(asphalt),
                   np.where((ax < scene.facade_x)[..., None], np.float32(walk), np.float32(alley)))
  kerb = (ax >= scene.road_half) & (ax < scene.road_half + 0.2)
  color[kerb] = (120, 118, 112) if not night else (22, 22, 26)
  paint = (235, 235, 225) if not night else (120, 120, 115)
  dashed = (np.mod(z, 9.0) < 4.0) & (ax < 1.0)
  for offset, width, mask in ((0.0, 0.15, dashed), (scene.road_half - 0.35, 0.15, True)):
    dist = np.abs(ax - offset) * px_per_m
    alpha = np.clip(width / 2 * px_per_m + 0.5 - dist, 0, 1) * mask
    color = _mix(color, paint, alpha[..., None])
  haze = np.clip(z / _FAR, 0, 1)[..., None] * 0.6
  color = _mix(color, (185, 205, 230) if not night else (24, 28, 52), haze)
  if night:
    for lx, lz in scene.lamps:
      d2 = ((x - lx * 0.8) ** 2 + (z - lz) ** 2) / 16.0
      color += (np.exp(-d2)[..., None] * np.float32((110, 95, 60)))
  out[...] = color


def _facades(scene, img, ys, xs, night):
  """Building fronts on the planes X = -facade_x and X = +facade_x, with windows.

  Column quantities (depth, building) are computed per column, the rest only at the
  gathered facade pixels.
  """
  dx = xs[0] - np.float32(scene.vanish_x)
  haze_color = (24, 28, 52) if night else (185, 205, 230)
  for side, sign, gain in zip(scene.sides, (-1.0, 1.0), scene.sun_gain):
    cols = np.nonzero(sign * dx > 0.5)[0]
    z = np.float32(scene.focal * scene.facade_x) / np.abs(dx[cols])       # [c]
    b = np.clip(np.searchsorted(side.start, z, side="right") - 1, 0, len(side.start) - 1)
    inside = (z >= side.start[b]) & (z < side.end[b]) & (z < _FAR)
    y_world = _CAM_HEIGHT - (ys - np.float32(scene.horizon)) * (z / np.float32(scene.focal))
    rows, ci = np.nonzero(inside & (y_world >= 0) & (y_world < side.height[b]))
    if rows.size == 0:
      continue
    bi, yw = b[ci], y_world[rows, ci]
    u = (z - side.start[b]) / side.bay[b]    # position along the facade, in window bays
    in_bay = (np.mod(u, 1.0) > 0.25) & (np.mod(u, 1.0) < 0.72)
    floor_i = np.floor((yw - 0.4) / 3.0).astype(np.int64)
    in_floor = np.mod(yw - 0.4, 3.0)
    window = (in_bay[ci] & (in_floor > 0.9) & (in_floor < 2.5) & (floor_i >= 1)
              & (yw < side.height[bi] - 1.0))
    hashes = _hash2(floor_i, np.floor(u).astype(np.int64)[ci], side.hash[bi])
    base = side.color[bi].astype(np.float32)
    if night:
      color = base * 0.12 + np.float32((3, 3, 8))
      lit = window & ((hashes % 1000) < side.lit[bi] * 1000)
      warm = 0.75 + 0.25 * ((hashes // 1000) % 100)[:, None] / 100.0
      color[window] = (14, 15, 22)
      color[lit] = (np.float32((255, 214, 130)) * warm)[lit]
    else:
      color = base * gain
      shade = 0.85 + 0.3 * ((hashes // 1000) % 100)[:, None] / 100.0
      color[window] = (np.float32((105, 125, 150)) * shade * (0.8 + 0.2 * gain))[window]
    color[yw > side.height[bi] - 0.6] *= 0.7   # cornice
    color = _mix(color, haze_color, np.clip(z[ci] / _FAR, 0, 1)[:, None] * 0.5)
    img[rows, cols[ci]] = color


def _street_lamps(scene, img, night):
  """Poles along the kerb; the lamp heads glow at night."""
  for lx, lz in sorted(scene.lamps.tolist(), key=lambda l: -l[1]):
    if lz < 1.0:
      continue
    s = scene.focal / lz
    cx = scene.vanish_x + s * lx
    ground = scene.horizon + s * _CAM_HEIGHT
    half = max(0.5, 0.06 * s)
    x1, x2 = round(cx - half), round(cx + half)
    top = ground - 6.5 * s
    pole = (40, 42, 48) if not night else (10, 10, 14)
    _fill(img, x1, round(top), x2, round(ground), pole)
    head = (235, 240, 235) if not night else (255, 240, 190)
    hx = cx - np.sign(lx) * 0.7 * s
    _fill(img, round(hx - 0.4 * s), round(top - 0.12 * s), round(hx + 0.4 * s),
          round(top + 0.12 * s) + 1, head)


def _fill(img, x1, y1, x2, y2, color):
  h, w = img.shape[:2]
  img[max(y1, 0):max(min(y2, h), 0), max(x1, 0):max(min(x2, w), 0)] = color


def _window(img, box):
  """Pixel slice of `box` inside the image and the box-relative coords (u, v) of its pixels."""
  x1, y1, x2, y2 = box
  h, w = img.shape[:2]
  cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
  u = (np.arange(cx1, cx2, dtype=np.float32) + 0.5 - x1) / (x2 - x1)
  v = (np.arange(cy1, cy2, dtype=np.float32) + 0.5 - y1) / (y2 - y1)
  return img[cy1:cy2, cx1:cx2], u[None, :], v[:, None]


def _car(scene, img, obj, night):
  """Front or rear view: body, cabin with glass, wheels, bumper, plate and lights."""
  x1, y1, x2, y2 = obj.box
  if not night:   # contact shadow on the road
    depth = max(1, round((y2 - y1) * 0.08))
    region, _, _ = _window(img, (x1 - depth, y2 - depth, x2 + depth, y2 + depth))
    region *= 0.55
  out, u, v = _window(img, obj.box)
  body = np.float32(obj.colors[0])
  body = body * 0.2 + np.float32((3, 3, 6)) if night else body
  cu = np.abs(u - 0.5)
  cabin = (v >= 0.06) & (v < 0.45) & (cu < 0.36 + 0.1 * (v - 0.06) / 0.39)
  glass = (v >= 0.11) & (v < 0.42) & (cu < 0.31 + 0.1 * (v - 0.11) / 0.31)
  lower = (v >= 0.45) & (v < 0.86)
  wheels = (v >= 0.8) & (cu > 0.28) & (cu < 0.45)
  bumper = (v >= 0.76) & (v < 0.83)
  plate = (v >= 0.63) & (v < 0.73) & (cu < 0.11)
  lights = (v >= 0.5) & (v < 0.64) & (cu > 0.32) & (cu < 0.47)
  glass_c = (10, 12, 18) if night else (70, 85, 105)
  if obj.variant == "front":
    light_c = (255, 252, 230) if night else (185, 185, 175)
  else:
    light_c = (255, 36, 30) if night else (135, 22, 22)
  plate_c = (60, 60, 55) if night else (200, 200, 190)
  for mask, color in ((cabin | lower, body), (glass, glass_c), (wheels, (18, 18, 20)),
                      (bumper, body * 0.6 + 10), (plate, plate_c), (lights, light_c)):
    out[np.broadcast_to(mask, out.shape[:2])] = color
  if night:   # glow around the lamps, inside the box
    aspect = (y2 - y1) / (x2 - x1)
    d2 = np.minimum((u - 0.105) ** 2, (u - 0.895) ** 2) + ((v - 0.57) * aspect) ** 2
    glow = np.exp(-d2 / 0.004)[..., None] * (0.9 * np.float32(light_c))
    out[...] = np.minimum(out + glow, 255)


def _sign(scene, img, obj, night):
  """A plate on a pole; retro-reflective, so nearly as bright at night."""
  x1, y1, x2, y2 = obj.box
  px1, px2, ground = obj.pole
  _fill(img, px1, y2, px2, ground, (120, 122, 128) if not night else (28, 28, 32))
  out, u, v = _window(img, obj.box)
  gain = 0.88 if night else 1.0
  tint = np.float32(obj.colors[0])
  red, white = np.float32((200, 25, 30)) + tint, np.float32((240, 240, 235)) + tint
  blue, yellow = np.float32((20, 80, 190)) + tint, np.float32((245, 200, 20)) + tint
  cu, cv = u - 0.5, v - 0.5
  r = np.sqrt(cu ** 2 + cv ** 2)
  kind = obj.variant
  if kind == "prohibit":
    layers = ((r < 0.5, red), (r < 0.36, white))
  elif kind == "warning":   # triangle, point up
    tri = (v > 0.06) & (v < 0.94) & (np.abs(cu) < (v - 0.06) * 0.57)
    inner = (v > 0.3) & (v < 0.84) & (np.abs(cu) < (v - 0.3) * 0.57)
    layers = ((tri, red), (inner, white))
  elif kind == "info":
    arrow = (np.abs(cu) < 0.08) & (cv > -0.2) | (np.abs(cu) < 0.3 - np.abs(cv + 0.2)) & (cv < -0.1)
    layers = ((np.abs(cu) < 0.5, blue), (arrow & (cv < 0.3), white))
  elif kind == "stop":
    octagon = (np.maximum(np.abs(cu), np.abs(cv)) < 0.5) & (np.abs(cu) + np.abs(cv) < 0.7)
    layers = ((octagon, red), ((np.abs(cv) < 0.07) & (np.abs(cu) < 0.3), white))
  else:   # priority diamond
    layers = ((np.abs(cu) + np.abs(cv) < 0.5, white), (np.abs(cu) + np.abs(cv) < 0.36, yellow))
  for mask, color in layers:
    out[np.broadcast_to(mask, out.shape[:2])] = np.clip(color, 0, 255) * gain


def _person(scene, img, obj, night):
  """Head, torso with arms, legs; darkened at night."""
  out, u, v = _window(img, obj.box)
  x1, y1, x2, y2 = obj.box
  aspect = (y2 - y1) / (x2 - x1)
  skin, shirt, trousers = (np.float32(c) for c in obj.colors)
  if night:
    skin, shirt, trousers = (c * 0.22 + np.float32((3, 3, 8)) for c in (skin, shirt, trousers))
  cu = np.abs(u - 0.5)
  head = (cu ** 2 + ((v - 0.085) * aspect) ** 2) < (0.085 * aspect) ** 2
  torso = (v >= 0.16) & (v < 0.55) & (cu < 0.36)
  arms = (v >= 0.18) & (v < 0.52) & (cu >= 0.38)
  legs = (v >= 0.55) & (cu > 0.03) & (cu < 0.3)
  for mask, color in ((head, skin), (torso, shirt), (arms, shirt * 0.85), (legs, trousers)):
    out[np.broadcast_to(mask, out.shape[:2])] = color


def _hash2(a, b, seed):
  """Cheap deterministic integer hash of two integer arrays and a seed (non-negative)."""
  h = (np.asarray(a, np.int64) * 73856093) ^ (np.asarray(b, np.int64) * 19349663) ^ (
      np.asarray(seed, np.int64) * 83492791)
  h = (h ^ (h >> 13)) * 1274126177
  return np.abs(h ^ (h >> 16))
