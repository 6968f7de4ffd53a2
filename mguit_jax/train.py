"""The training loop: data, mesh, state, jitted steps, logging, samples, checkpoints."""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import signal
from pathlib import Path

from absl import logging
from clu import metric_writers, periodic_actions
import jax
import ml_collections
import numpy as np

from mguit_jax import checkpointing, data, methods, samples, sharding, translate
from mguit_jax import train_state as ts


class NonFiniteLossError(FloatingPointError):
  """A logged loss became NaN or infinite."""


class _StopOnSignal(contextlib.AbstractContextManager):
  """Turns SIGTERM and SIGINT (Ctrl-C) into a flag the loop checks between steps."""

  def __init__(self):
    self.received: int | None = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      with contextlib.suppress(ValueError):  # not the main thread: leave handlers alone
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    self.received = signum
    logging.warning("Received %s: finishing the step, saving a checkpoint, exiting.",
                    signal.Signals(signum).name)

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    return False


# Memory-health measures (memory.health) are NaN for a class absent from a batch: they are
# averaged over the steps that saw the class, and not checked for finiteness.
_HEALTH = "health/"


def _mean_metrics(pending: list[dict[str, jax.Array]]) -> dict[str, float]:
  """Averages each metric over the steps that produced it."""
  pending = jax.device_get(pending)
  keys = sorted({k for m in pending for k in m})
  means = {}
  for k in keys:
    values = np.asarray([m[k] for m in pending if k in m], np.float64)
    if k.startswith(_HEALTH):
      values = values[~np.isnan(values)]
    means[k] = float(np.mean(values)) if values.size else float("nan")
  return means


class _CollapseWatch:
  """Warns when the memory stops addressing anything (each measure and class once)."""

  # (measure, test, what it means)
  RULES = (("read_entropy", lambda v: v > 0.98, "reads weight all items alike"),
           ("key_cosine", lambda v: v > 0.99, "the keys are one vector"),
           ("style_norm", lambda v: v < 1e-3, "the style maps are near zero"))

  def __init__(self):
    self._warned: set[str] = set()

  def __call__(self, metrics: dict[str, float], step: int) -> None:
    for measure, test, meaning in self.RULES:
      hits = {k: v for k, v in metrics.items()
              if k.startswith(f"{_HEALTH}{measure}/") and math.isfinite(v) and test(v)
              and k not in self._warned}
      if hits:
        self._warned.update(hits)
        logging.warning("Memory collapse at step %d: %s (%s). See the README's training "
                        "notes.", step, meaning,
                        ", ".join(f"{k}={v:.4f}" for k, v in sorted(hits.items())))


def _check_finite(metrics: dict[str, float], step: int, last_saved: int | None, ckpt_dir: Path):
  bad = {k: v for k, v in metrics.items() if not math.isfinite(v) and not k.startswith(_HEALTH)}
  if bad:
    where = (f"the last good checkpoint is step {last_saved} in {ckpt_dir}"
             if last_saved is not None else "no checkpoint was written")
    raise NonFiniteLossError(
        f"non-finite loss at step {step}: {bad}; stopping without saving ({where}). "
        "Try a lower config.optim.lr or check the input data.")


def _sample_grid(translator: translate.Translator, pairs, paired: bool, seed: int) -> np.ndarray:
  """Rows per test image: input, translation (stored style), 2 random styles (drawn from
  `seed`; multimodal methods), cycle and, with `paired` truth, the same scene rendered in the
  target domain."""
  rows = []
  for src, tgt in (("a", "b"), ("b", "a")):
    x, truth = samples.to_uint8(pairs[f"image_{src}"]), samples.to_uint8(pairs[f"image_{tgt}"])
    num_styles = 2 if translator.multimodal else 0
    out = translator.translate(x, f"{src}2{tgt}", num_styles=num_styles, seed=seed)
    cycle = translator.translate(out[:, 0], f"{tgt}2{src}")[:, 0]
    cols = [x, *np.moveaxis(out, 1, 0), cycle] + ([truth] if paired else [])
    rows += [[c[i] for c in cols] for i in range(len(x))]
  return samples.grid(rows)


class _LiveTranslator:
  """The one `translate.Translator` of a run (samples and evaluation): compiled once, then
  given the live parameters and memory whenever it is asked for."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config, self._translator = config, None

  def __call__(self, state, step: int) -> translate.Translator:
    if self._translator is not None and self._translator.step == step:
      return self._translator   # samples and evaluation of the same step
    # Host copies: the translator runs on this process's own device (several processes).
    inference = jax.device_get(methods.get(self.config.method).inference_subtree(vars(state)))
    if self._translator is None:
      self._translator = translate.Translator(self.config, inference, step)
    else:
      self._translator.set_state(inference, step)
    return self._translator


class _Evaluator:
  """Runs `mguit_jax.evaluate` on the live state every `train.eval_every` steps and at the end.

  The metrics are `train.eval_metrics` (comma-separated; empty: none). Results go to
  `eval_<step>.json/.md` and TensorBoard, as from the evaluate command.
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir: Path):
    self.config, self.workdir = config, workdir
    self.metrics = [m for m in config.train.eval_metrics.split(",") if m]
    self.every = config.train.eval_every
    if self.metrics:
      self._evaluate = importlib.import_module("mguit_jax.evaluate")
      self._evaluate.check_requirements(config, self.metrics)   # fail before training

  def due(self, step: int, done: bool) -> bool:
    return bool(self.metrics) and (done or (self.every > 0 and step % self.every == 0))

  def __call__(self, translator: translate.Translator) -> dict[str, float]:
    return self._evaluate.evaluate(self.workdir, config=self.config, metrics=self.metrics,
                                   translator=translator, overwrite=True)

  def headline(self, results: dict[str, float], step: int) -> str:
    return self._evaluate.headline(results, step)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path):
  """Trains (or resumes) in `workdir`; returns the final train state."""
  workdir = Path(workdir).absolute()
  methods.check_config(config)   # fields, and what the method needs of the data (crop sizes)
  data.ensure_prepared(config)  # fails at once when a dataset is missing
  devices = jax.devices()
  if config.train.num_devices:
    if not 0 < config.train.num_devices <= len(devices):
      raise ValueError(f"config.train.num_devices={config.train.num_devices}: "
                       f"expected 0 (all) or 1..{len(devices)}")
    devices = devices[:config.train.num_devices]
  mesh = sharding.make_mesh(devices)
  sharding.check_batch_size(config.data.batch_size, mesh)
  replicated = sharding.replicated(mesh)
  logging.info("Devices: %d x %s; %d process(es).", mesh.devices.size,
               devices[0].device_kind, jax.process_count())

  ckpt = checkpointing.Checkpointer(workdir / "checkpoints", max_to_keep=config.train.max_to_keep)
  ckpt.check_compatible(config)
  train_iter = data.make_train_iterator(
      config, process_index=jax.process_index(), process_count=jax.process_count())
  method = methods.get(config.method)
  defs = method.graphdefs(config)
  init_fn = functools.partial(method.init_state, config)
  abstract = checkpointing.abstract_with_sharding(jax.eval_shape(init_fn), replicated)
  last_saved, state = ckpt.restore_latest(abstract, train_iter)
  if last_saved is not None:
    logging.info("Resumed from %s at step %d.", ckpt.directory, last_saved)
  else:
    state = jax.jit(init_fn, out_shardings=replicated)()
  logging.info("Parameters: %s", ts.num_params(state.params))

  run = method.make_runner(config, defs, replicated)
  next_batch = lambda: sharding.put_batch(next(train_iter), mesh)
  pairs = data.load_test_pairs(config, config.train.num_samples)
  evaluator = _Evaluator(config, workdir)
  live_translator = _LiveTranslator(config)

  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  if last_saved is None:
    writer.write_hparams(checkpointing.flatten_dict(config.to_dict()))
  num_steps = config.train.num_steps
  progress = periodic_actions.ReportProgress(num_train_steps=num_steps, writer=writer,
                                             every_steps=config.train.log_every)
  step = int(state.step)
  pending: list[dict[str, jax.Array]] = []
  watch = _CollapseWatch()
  try:
    with _StopOnSignal() as stop:
      while step < num_steps and stop.received is None:
        start = step
        state, metrics, step = run(state, next_batch, step)
        pending += metrics
        for done_step in range(start + 1, step + 1):
          progress(done_step)   # clu's periodic actions expect to see every step
        done = step == num_steps or stop.received is not None
        save = done or step % config.train.checkpoint_every == 0
        if pending and (save or step % config.train.log_every == 0):
          means = _mean_metrics(pending)
          pending = []
          _check_finite(means, step, last_saved, ckpt.directory)
          watch(means, step)
          writer.write_scalars(step, means)
        if done or step % config.train.sample_every == 0:
          with progress.timed("samples"):
            image = _sample_grid(live_translator(state, step), pairs,
                                 data.has_paired_truth(config), seed=config.seed + 1)
            samples.save_png(image, workdir / "samples" / f"step_{step:07d}.png")
            writer.write_images(step, {"samples": image[None]})
        if save:
          with progress.timed("checkpoint"):
            ckpt.save(step, state, train_iter, config)
            last_saved = step
        if evaluator.due(step, step == num_steps):
          with progress.timed("evaluation"):
            results = evaluator(live_translator(state, step))
          if step == num_steps:
            print(evaluator.headline(results, step), flush=True)
  finally:
    writer.flush()
    ckpt.wait()
    ckpt.close()
  logging.info("Stopped at step %d of %d; checkpoints in %s.", step, num_steps, ckpt.directory)
  return state
