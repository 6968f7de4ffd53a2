r"""Translates images of any size with a trained checkpoint (library and CLI).

  python -m mguit_jax.translate --workdir runs/demo --input photos/ --output out/ \
      --direction a2b --num_styles 2

For every input image `<dir>/<stem>.<ext>` it writes `OUTPUT/<dir>/<stem>_<own>.png`, the
method's own translation (`OWN_OUTPUT`: MGUIT's `memory`, its stored style; UNIT's
`translation`; MUNIT's `zero_style`), and `<stem>_style1.png` ... (random styles), at the input's
full resolution; subfolders of an input directory are mirrored. Images of the same size
are translated together in batches. Unreadable inputs are reported by name and skipped.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
import dataclasses
import functools
from pathlib import Path

from absl import app, flags, logging
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from PIL import Image
import tqdm

from mguit_jax import checkpointing, cli, methods, samples
from mguit_jax import memory as memory_lib
from mguit_jax.data import pipeline, transforms

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# Smallest side: padded to the method's input multiple (4 for every method here), the
# 1/4-resolution maps have the 2 pixels their reflection padding needs.
MIN_SIZE = 5


def _restore_inference(step_dir: Path):
  """(config dict, what the run's method needs to translate) of one checkpoint step; nothing
  else (discriminators, optimiser states) is read."""
  state_dir, config_dir = step_dir / "state", step_dir / "config"
  if not (state_dir.is_dir() and config_dir.is_dir()):
    raise FileNotFoundError(f"{step_dir} is not a checkpoint step directory: expected its "
                            "state/ and config/ subdirectories (e.g. RUN/checkpoints/1000)")
  saved_config = ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(config_dir)
  method = methods.get(methods.name_of(saved_config))
  handler = ocp.PyTreeCheckpointHandler()
  wanted = method.inference_subtree(handler.metadata(state_dir).tree)
  restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
  restored = ocp.Checkpointer(handler).restore(state_dir, args=ocp.args.PyTreeRestore(
      item=wanted, restore_args=restore_args, partial_restore=True))
  return saved_config, restored


class Translator:
  """A trained model restored for inference: what its method (`config.method`) needs to
  translate (MGUIT: content encoder, generator and memory; UNIT: the two VAE generators).

  `multimodal`: whether the method draws random styles (MGUIT, drit) or translates each
  image one way (UNIT).
  """

  def __init__(self, config: ml_collections.ConfigDict, inference: dict, step: int):
    self.method = methods.name_of(config)
    if self.method == "mguit" and "attention_temperature" not in config.memory:
      # Saved before the field existed: trained with the equations' temperature, 1.
      config = ml_collections.ConfigDict(config.to_dict())
      config.memory.attention_temperature = 1.0
    self.config = methods.configure(config, self.method)
    self._impl = methods.get(self.method)
    self.multimodal = self._impl.MULTIMODAL
    self.own_output = self._impl.OWN_OUTPUT   # the name of translation 0's files
    self.step = step
    self.domains = tuple(config.data.domains.split("_", 1))
    self.inference = jax.device_put(inference)
    self._multiple = self._impl.input_multiple(self.config)
    defs = self._impl.graphdefs(self.config)
    self._translate = jax.jit(
        functools.partial(self._impl.translate_batch, defs=defs, config=self.config),
        static_argnames="direction")
    self._encode = jax.jit(functools.partial(self._impl.encode_batch, defs=defs),
                           static_argnames="domain")

  @property
  def params(self):
    return self.inference["params"]

  @property
  def memory(self) -> memory_lib.Memory:
    """The memory (methods of the MGUIT family)."""
    return memory_lib.as_memory(self.inference["memory"])

  def set_state(self, inference: dict, step: int) -> None:
    """Translates with another state of the same shapes (no recompilation)."""
    self.inference, self.step = jax.device_put(inference), step

  @classmethod
  def from_checkpoint(cls, path: str | Path) -> Translator:
    """Restores one checkpoint step directory, e.g. RUN/checkpoints/1000.

    `step` is the directory's name (-1 when it is not a number).
    """
    path = Path(path).absolute()
    if not path.is_dir():
      raise FileNotFoundError(f"checkpoint {path} does not exist")
    config, inference = _restore_inference(path)
    step = int(path.name) if path.name.isdigit() else -1
    return cls(ml_collections.ConfigDict(config), inference, step)

  @classmethod
  def from_workdir(cls, workdir: str | Path, step: int | None = None) -> Translator:
    """Restores step `step` (default: the latest) of a training workdir."""
    ckpt_dir = Path(workdir).absolute() / "checkpoints"
    if not ckpt_dir.is_dir():
      raise FileNotFoundError(f"workdir {Path(workdir).absolute()} has no checkpoints/ "
                              "directory: expected the --workdir of a training run")
    manager = checkpointing.Checkpointer(ckpt_dir, max_to_keep=1)  # only lists; never saves
    try:
      steps_saved = manager.all_steps()
    finally:
      manager.close()
    if not steps_saved:
      raise FileNotFoundError(f"{ckpt_dir} holds no finished checkpoint")
    if step is not None:
      if step not in steps_saved:
        raise FileNotFoundError(f"{ckpt_dir} has no checkpoint of step {step}; "
                                f"saved steps: {steps_saved}")
      return cls.from_checkpoint(ckpt_dir / str(step))
    failed = []
    for step in reversed(steps_saved):   # the newest that restores; damaged ones are reported
      try:
        translator = cls.from_checkpoint(ckpt_dir / str(step))
      except Exception as e:   # TensorStore, JSON: each fails its own way
        failed.append(f"step {step}: {type(e).__name__}: {str(e).strip()[:200]}")
        logging.warning("Checkpoint %d in %s is damaged (%s); trying the one before.", step,
                        ckpt_dir, failed[-1])
        continue
      return translator
    raise RuntimeError(f"no checkpoint in {ckpt_dir} can be restored:\n  " + "\n  ".join(failed))

  def resolve_direction(self, direction: str) -> str:
    """'a2b'/'b2a', or the same with the run's domain names (e.g. 'sunny2night')."""
    a, b = self.domains if len(self.domains) == 2 else ("a", "b")
    names = {"a2b": "a2b", "b2a": "b2a", f"{a}2{b}": "a2b", f"{b}2{a}": "b2a"}
    if direction not in names:
      raise ValueError(
          f"direction {direction!r} does not match this checkpoint (trained on domains "
          f"a={a!r}, b={b!r}, config.data.domains={self.config.data.domains!r}): expected "
          f"one of {sorted(names)}")
    return names[direction]

  def translate(self, images: np.ndarray, direction: str, *, num_styles: int = 0,
                seed: int = 0) -> np.ndarray:
    """uint8 [B, H, W, 3] -> uint8 [B, 1 + num_styles, H, W, 3].

    Index 0 is the method's own translation (MGUIT: the memory's stored style); 1.. random
    styles drawn from `seed` (the same for every image, so an image's outputs do not depend
    on the rest of its batch; only for `multimodal` methods). Any H, W >= MIN_SIZE: the batch
    is padded by reflection to the method's input multiple and cropped back; each padded
    shape compiles once.
    """
    if num_styles < 0:
      raise ValueError(f"num_styles={num_styles}: expected >= 0")
    if num_styles and not self.multimodal:
      raise ValueError(f"method {self.method!r} translates each image one way: it has no "
                       f"random styles (num_styles={num_styles}; expected 0)")
    direction = self.resolve_direction(direction)
    values = self._impl.style_inputs(self.inference, direction[2], num_styles, seed,
                                     config=self.config)
    return self.translate_values(images, direction, values)

  def translate_values(self, images: np.ndarray, direction: str,
                       values: np.ndarray) -> np.ndarray:
    """uint8 [B, H, W, 3] -> uint8 [B, S, H, W, 3], style s from `values[s]` (MGUIT: memory
    values [N, Cv]; a row-constant `values[s]`, one item's value repeated, styles every pixel
    alike)."""
    direction = self.resolve_direction(direction)
    images, (h, w) = self._padded(images)
    values = np.asarray(values, np.float32)
    shape = self._impl.style_shape(self.inference)
    if values.ndim != 1 + len(shape) or values.shape[1:] != shape:
      raise ValueError(f"values: expected [S, {', '.join(map(str, shape))}] (styles, then the "
                       f"method's style input), got {list(values.shape)}")
    out = self._translate(self.inference, images, values, direction=direction)
    return samples.to_uint8(jax.device_get(out)[:, :, :h, :w])

  def encode(self, images: np.ndarray, domain: str) -> np.ndarray:
    """uint8 [B, H, W, 3] -> the method's content maps [B, ceil(H/m), ceil(W/m), C], m its
    input multiple (MGUIT: unit-norm content at 1/4 resolution)."""
    if domain not in ("a", "b"):
      raise ValueError(f"domain={domain!r}: expected 'a' or 'b'")
    images, (h, w) = self._padded(images)
    content = self._encode(self.inference, images, domain=domain)
    m = self._multiple
    return np.asarray(jax.device_get(content))[:, :-(-h // m), :-(-w // m)]

  def _padded(self, images) -> tuple[np.ndarray, tuple[int, int]]:
    """Checks a uint8 batch and pads it by reflection to the input multiple; returns (H, W)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"images: expected uint8 [B, H, W, 3], got {images.dtype} "
                       f"{list(images.shape)}")
    h, w = images.shape[1:3]
    if min(h, w) < MIN_SIZE:
      raise ValueError(f"images of {h}x{w} pixels: expected at least {MIN_SIZE} on each side")
    pad = ((0, 0), (0, -h % self._multiple), (0, -w % self._multiple), (0, 0))
    return np.pad(images, pad, mode="reflect"), (h, w)


# ------------------------------------------------------------------------ file batches


@dataclasses.dataclass
class Job:
  """One input image and the PNG files its translations go to (1 + num_styles)."""
  source: Path
  outputs: list[Path]


@dataclasses.dataclass
class Report:
  """What `translate_files` did: images translated, skipped as done, and unreadable (why)."""
  translated: int = 0
  existing: int = 0
  failed: list[tuple[Path, str]] = dataclasses.field(default_factory=list)


def find_images(path: str | Path) -> list[Path]:
  """The image file `path`, or every image under the directory `path` (sorted, recursive)."""
  path = Path(path)
  if path.is_file():
    return [path]
  if not path.is_dir():
    raise FileNotFoundError(f"input {path} does not exist")
  return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def style_outputs(output_dir: Path, relative: Path, num_styles: int,
                  keep_suffix: bool = False, own: str = "memory") -> list[Path]:
  """OUTPUT/<dir>/<stem>_<own>.png, <stem>_style1.png, ... for an input at `relative`.

  `keep_suffix` names them after the whole file name (`x.jpg_memory.png`), for inputs
  whose stems clash (`x.png` and `x.jpg` in one folder).
  """
  base = output_dir / relative.parent
  name = relative.name if keep_suffix else relative.stem
  return [base / f"{name}_{own}.png"] + [
      base / f"{name}_style{k}.png" for k in range(1, num_styles + 1)]


def jobs_for(files: Sequence[Path], root: Path, output_dir: Path, num_styles: int,
             own: str = "memory") -> list[Job]:
  """One Job per input file under `root`, outputs mirrored under `output_dir`."""
  relatives = [p.relative_to(root) for p in files]
  stems = collections.Counter(r.parent / r.stem for r in relatives)
  return [Job(p, style_outputs(output_dir, r, num_styles, stems[r.parent / r.stem] > 1, own))
          for p, r in zip(files, relatives)]


def _image_size(path: Path) -> tuple[int, int]:
  """Upright (height, width) from the header; raises on anything PIL cannot identify."""
  with Image.open(path) as image:
    return transforms.upright_size(image)


def load_image(path: Path) -> np.ndarray:
  """An image file as uint8 [H, W, 3]; ValueError naming the file when it cannot be decoded."""
  return pipeline.decode_png(path.read_bytes(), str(path))


def _batches(jobs: Iterable[Job], batch_size: int, report: Report) -> list[list[Job]]:
  """Jobs grouped by image size into batches; unreadable or too small images go to
  report.failed."""
  groups = collections.defaultdict(list)
  for job in jobs:
    try:
      size = _image_size(job.source)
    except Exception as e:  # PIL raises several types for broken files
      report.failed.append((job.source, f"{type(e).__name__}: {e}"))
      continue
    if min(size) < MIN_SIZE:
      report.failed.append((job.source, f"{size[0]}x{size[1]} pixels: expected at least "
                                        f"{MIN_SIZE} on each side"))
    else:
      groups[size].append(job)
  return [group[i:i + batch_size] for group in groups.values()
          for i in range(0, len(group), batch_size)]


def translate_files(translator: Translator, jobs: Sequence[Job], direction: str, *,
                    batch_size: int = 4, seed: int = 0, skip_existing: bool = False) -> Report:
  """Translates every job's image into its outputs (atomic PNG writes), with a progress bar.

  Batches are filled up to `batch_size` (repeating the last image) so that each image
  size compiles once. With `skip_existing`, jobs whose outputs all exist are skipped.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size={batch_size}: expected >= 1")
  direction = translator.resolve_direction(direction)
  num_outputs = {len(job.outputs) for job in jobs}
  if len(num_outputs) > 1 or 0 in num_outputs:
    raise ValueError(f"jobs have {sorted(num_outputs)} outputs: expected the same number "
                     "(>= 1) for every job")
  num_styles = num_outputs.pop() - 1 if num_outputs else 0
  targets = collections.Counter(p for job in jobs for p in job.outputs)
  if clashes := sorted(str(p) for p, n in targets.items() if n > 1):
    raise ValueError(f"several inputs would write the same output files: {clashes[:5]}")
  report = Report()
  if skip_existing:
    todo = [job for job in jobs if not all(p.exists() for p in job.outputs)]
    report.existing = len(jobs) - len(todo)
    jobs = todo
  batches = _batches(jobs, batch_size, report)
  with tqdm.tqdm(total=sum(map(len, batches)), unit="img", desc=direction,
                 dynamic_ncols=True) as bar:
    for batch in batches:
      loaded = []
      for job in batch:
        try:
          loaded.append((job, load_image(job.source)))
        except Exception as e:  # decoding can fail after a readable header
          report.failed.append((job.source, f"{type(e).__name__}: {e}"))
      if loaded:
        images = [image for _, image in loaded]
        images += images[-1:] * (batch_size - len(images))
        out = translator.translate(np.stack(images), direction, num_styles=num_styles,
                                   seed=seed)
        for (job, _), styles in zip(loaded, out):
          for path, image in zip(job.outputs, styles):
            samples.save_png(image, path)
        report.translated += len(loaded)
      bar.update(len(batch))
  for path, why in report.failed:
    logging.warning("Skipped unreadable input %s (%s)", path, why)
  return report


# ---------------------------------------------------------------------------------- CLI


def define_checkpoint_flags() -> None:
  """--workdir, --checkpoint and --step: where a command-line tool's model comes from."""
  flags.DEFINE_string("workdir", None, "Training workdir; its latest checkpoint is used.")
  flags.DEFINE_string("checkpoint", None, "A checkpoint step directory, e.g. RUN/checkpoints/1000.")
  flags.DEFINE_integer("step", None, "With --workdir: this step instead of the latest.")


def translator_from_flags() -> Translator:
  """The Translator named by exactly one of --workdir (latest or --step) and --checkpoint."""
  f = flags.FLAGS
  if (f.workdir is None) == (f.checkpoint is None):
    raise app.UsageError("give exactly one of --workdir and --checkpoint")
  logging.set_verbosity(logging.WARNING)  # the checkpoint library logs every read at INFO
  if f.checkpoint is not None:
    return Translator.from_checkpoint(f.checkpoint)
  return Translator.from_workdir(f.workdir, f.step)


def _define_flags() -> None:
  define_checkpoint_flags()
  flags.DEFINE_string("input", None, "An image file or a directory of images.", required=True)
  flags.DEFINE_string("output", None, "Directory for the translated PNGs.", required=True)
  flags.DEFINE_string("direction", "a2b", "a2b or b2a (or with the domain names, e.g. "
                      "sunny2night).")
  flags.DEFINE_integer("num_styles", 0, "Random styles per image, besides the method's own "
                       "translation (MGUIT: the memory's stored style); 0 for UNIT.")
  flags.DEFINE_integer("batch_size", 4, "Images of equal size translated together.")
  flags.DEFINE_integer("seed", 0, "Seed of the random styles.")
  flags.DEFINE_bool("skip_existing", False, "Skip inputs whose outputs all exist (resume).")


def main():
  f = flags.FLAGS
  translator = translator_from_flags()
  source, output = Path(f.input), Path(f.output)
  files = find_images(source)
  if not files:
    raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {source}")
  root = source.parent if source.is_file() else source
  jobs = jobs_for(files, root, output, f.num_styles, translator.own_output)
  print(f"Translating {len(jobs)} image(s) {f.direction} with checkpoint step "
        f"{translator.step} into {output}")
  report = translate_files(translator, jobs, f.direction, batch_size=f.batch_size,
                           seed=f.seed, skip_existing=f.skip_existing)
  print(f"Translated {report.translated} image(s) into {output}; "
        f"{report.existing} already done; {len(report.failed)} unreadable input(s) skipped"
        + "".join(f"\n  {path}" for path, _ in report.failed))


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
