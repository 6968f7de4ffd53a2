"""Box annotation files: the INIT text formats and the JSON sidecar of image folders.

INIT, as distributed: one text file per domain; each image is a block of lines

    # <index>
    <image path>
    3 <height> <width> 1
    0
    <number of boxes M>
    <class> <x1> <y1> <x2> <y2>        (M rows, pixels of the height x width image)

Blank lines between blocks are ignored. Class ids: 1 car, 2 traffic (speed-limit) sign,
3 person.

INIT, per-image layout (the released MGUIT loader's `label/<domain>_<phase>/` folders):
one text file per image, the image path (relative to the dataset root) as the first
word of line 1, line 2 ignored, and one `<class> <x1> <y1> <x2> <y2>` row per box
from line 3 on.

JSON sidecar (image folders): an object mapping each image path, relative to its
folder, to a list of `[class, x1, y1, x2, y2]` rows, e.g.
`{"0001.png": [[1, 10, 20, 110, 90]], "sub/0002.jpg": []}`.

Parsing checks syntax and class ids and raises ValueError naming the file and line;
whether a box fits its image is checked once the image is read (see builders.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
import dataclasses
import json
import math
from pathlib import Path

import numpy as np

ROW_FORMAT = "'<class> <x1> <y1> <x2> <y2>'"


@dataclasses.dataclass(frozen=True)
class Annotation:
  """One image's boxes as an annotation file states them."""
  image: str                  # image path as written in the file
  boxes: np.ndarray           # float32 [M, 4] x1, y1, x2, y2 in pixels
  labels: np.ndarray          # int64 [M]
  source: str                 # the annotation file
  line: int = 0               # line of the entry (0: the whole file)
  box_lines: tuple[int, ...] = ()    # line of each box row (empty: no line numbers)
  size: tuple[int, int] | None = None   # (height, width) the boxes refer to, if stated

  def where(self, box: int | None = None) -> str:
    """'file:line' of the entry, or of box row `box`."""
    line = self.box_lines[box] if box is not None and self.box_lines else self.line
    return f"{self.source}:{line}" if line else self.source


def no_boxes(image: str, source: str) -> Annotation:
  """An image without objects (all background)."""
  return Annotation(image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), source)


class _Lines:
  """The non-blank lines of a text file with their 1-based numbers."""

  def __init__(self, path: Path):
    self.path = path
    try:
      text = path.read_text()
    except UnicodeDecodeError as e:
      raise ValueError(f"{path}: not a text annotation file ({e})") from e
    self._lines = [(n, s.strip()) for n, s in enumerate(text.splitlines(), 1) if s.strip()]
    self._next = 0

  def __bool__(self) -> bool:
    return self._next < len(self._lines)

  def take(self, what: str) -> tuple[int, str]:
    if not self:
      last = self._lines[-1][0] if self._lines else 0
      raise ValueError(f"{self.path}:{last}: file ends where {what} was expected")
    self._next += 1
    return self._lines[self._next - 1]


def _ints(text: str, count: int, where: str, what: str) -> list[int]:
  fields = text.split()
  if len(fields) != count or not all(f.lstrip("-").isdigit() for f in fields):
    raise ValueError(f"{where}: {text!r} is not {what}")
  return [int(f) for f in fields]


def _box_row(text: str, where: str, classes: Collection[int] | None) -> tuple[int, list[float]]:
  """Parses '<class> x1 y1 x2 y2'; `classes` None accepts any class id >= 1."""
  fields = text.split()
  if len(fields) != 5:
    raise ValueError(f"{where}: box row {text!r} has {len(fields)} fields; "
                     f"expected 5: {ROW_FORMAT}")
  try:
    label = int(fields[0])
  except ValueError:
    raise ValueError(f"{where}: class {fields[0]!r} is not an integer; "
                     f"expected {ROW_FORMAT}") from None
  try:
    box = [float(f) for f in fields[1:]]
  except ValueError:
    raise ValueError(f"{where}: box row {text!r} holds a non-numeric coordinate; "
                     f"expected {ROW_FORMAT}") from None
  return _checked(label, box, where, classes)


def _checked(label: int, box: list[float], where: str, classes) -> tuple[int, list[float]]:
  if not all(math.isfinite(v) for v in box):
    raise ValueError(f"{where}: box {box} holds a non-finite coordinate")
  if classes is None and label < 1:
    raise ValueError(f"{where}: unknown class id {label}; expected an integer >= 1")
  if classes is not None and label not in classes:
    raise ValueError(f"{where}: unknown class id {label}; expected "
                     f"{', '.join(map(str, sorted(classes)))}")
  return label, box


def _rows(rows: list[tuple[int, str]], path: Path, classes) -> tuple[np.ndarray, np.ndarray]:
  parsed = [_box_row(text, f"{path}:{n}", classes) for n, text in rows]
  boxes = np.array([b for _, b in parsed], np.float32).reshape(-1, 4)
  return boxes, np.array([c for c, _ in parsed], np.int64)


def read_init_blocks(path: str | Path, classes: Collection[int] | None) -> list[Annotation]:
  """All image blocks of an INIT annotation file, in file order (classes None: any >= 1)."""
  lines, path = _Lines(Path(path)), Path(path)
  out = []
  while lines:
    start, header = lines.take("'# <index>'")
    if not header.startswith("#"):
      raise ValueError(f"{path}:{start}: {header!r} does not start an image block; "
                       "expected '# <index>'")
    _, image = lines.take("the image path")
    n, dims = lines.take("'3 <height> <width> 1'")
    _, height, width, _ = _ints(dims, 4, f"{path}:{n}", "'3 <height> <width> 1'")
    if height < 1 or width < 1:
      raise ValueError(f"{path}:{n}: image size {height}x{width} is empty")
    lines.take("the '0' line")
    n, count = lines.take("the number of boxes")
    (m,) = _ints(count, 1, f"{path}:{n}", "the number of boxes (an integer)")
    if m < 0:
      raise ValueError(f"{path}:{n}: negative number of boxes {m}")
    rows = []
    for i in range(m):
      n, text = lines.take(f"box row {i + 1} of {m} (block at line {start})")
      if text.startswith("#"):
        raise ValueError(f"{path}:{n}: the block at line {start} announces {m} boxes but "
                         f"the next block starts after {i} rows")
      rows.append((n, text))
    boxes, labels = _rows(rows, path, classes)
    out.append(Annotation(image, boxes, labels, str(path), start,
                          tuple(n for n, _ in rows), (height, width)))
  return out


def read_label_file(path: str | Path, classes: Collection[int]) -> Annotation:
  """One image's per-image label file (image path on line 1, box rows from line 3)."""
  path = Path(path)
  try:
    text = path.read_text()
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not a text label file ({e})") from e
  lines = text.splitlines()
  if not lines or not lines[0].split():
    raise ValueError(f"{path}:1: expected the image path on line 1")
  rows = [(n, s.strip()) for n, s in enumerate(lines[2:], 3) if s.strip()]
  boxes, labels = _rows(rows, path, classes)
  return Annotation(lines[0].split()[0], boxes, labels, str(path), 1,
                    tuple(n for n, _ in rows))


def read_boxes_json(path: str | Path, classes: Collection[int] | None = None) -> list[Annotation]:
  """The entries of a JSON sidecar; errors name the file and the image key."""
  path = Path(path)
  try:
    data = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"{path}: not valid JSON ({e})") from e
  if not isinstance(data, dict):
    raise ValueError(f"{path}: expected an object mapping image paths to box lists")
  out = []
  for image, rows in data.items():
    where = f"{path} [{image!r}]"
    if not isinstance(rows, list):
      raise ValueError(f"{where}: expected a list of [class, x1, y1, x2, y2] rows")
    parsed = []
    for i, row in enumerate(rows):
      at = f"{where} row {i}"
      if not isinstance(row, list) or len(row) != 5:
        raise ValueError(f"{at}: {row!r} is not a [class, x1, y1, x2, y2] list")
      if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in row):
        raise ValueError(f"{at}: {row!r} holds a non-numeric value")
      if not isinstance(row[0], int):
        raise ValueError(f"{at}: class {row[0]!r} is not an integer")
      parsed.append(_checked(row[0], [float(v) for v in row[1:]], at, classes))
    boxes = np.array([b for _, b in parsed], np.float32).reshape(-1, 4)
    out.append(Annotation(image, boxes, np.array([c for c, _ in parsed], np.int64), where))
  return out


def format_init_blocks(entries: Iterable[tuple[str, tuple[int, int], np.ndarray, np.ndarray]]
                       ) -> Iterator[str]:
  """Lines of an INIT annotation file for (image path, (height, width), boxes, labels)."""
  for index, (image, (height, width), boxes, labels) in enumerate(entries):
    yield f"# {index}"
    yield image
    yield f"3 {height} {width} 1"
    yield "0"
    yield str(len(labels))
    for label, box in zip(labels, np.asarray(boxes).reshape(-1, 4)):
      yield " ".join([str(int(label))] + [f"{v:g}" for v in box])
    yield ""
