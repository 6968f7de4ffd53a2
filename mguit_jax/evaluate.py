r"""Evaluates a checkpoint: LPIPS diversity, FID, IS, CIS, paired and cycle error (library, CLI).

  python -m mguit_jax.evaluate --workdir runs/demo --config configs/demo.py \
      --config.eval.classifier=runs/classifier/classifier.npz \
      [--metrics lpips,fid,is,cis,paired,cycle]

Without --config the checkpoint's own config is used.

Both directions (a2b, b2a) are evaluated on the first `config.eval.num_inputs` test images
of the source domain, each resized to a short side of `config.data.resize_short` and
centre-cropped to `config.data.crop_size`, as in training. Per input, the translation with
the memory's stored style and `num_styles` random-style translations are made. Results
go to `WORKDIR/eval_<step>.json` and `eval_<step>.md` and to TensorBoard (`eval/...`);
an existing result of the same step is never replaced unless --overwrite is given.
The protocol (what each metric computes, on which images) is in the README.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from absl import flags, logging
from clu import metric_writers
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np

from mguit_jax import cli, data, methods
from mguit_jax.data import synthetic, transforms
from mguit_jax.metrics import classifier as classifier_lib
from mguit_jax.metrics import fid as fid_lib
from mguit_jax.metrics import inception, inception_weights, paired, scores, utils
from mguit_jax.metrics import lpips as lpips_lib
from mguit_jax.translate import Translator

METRICS = ("lpips", "fid", "is", "cis", "paired", "cycle")
# Metrics of the outputs of random styles (not for methods that translate one way).
RANDOM_STYLE_METRICS = ("lpips", "is", "cis")
DIRECTIONS = ("a2b", "b2a")
# Regions of the paired error: the whole image, then the boxes of each synthetic class.
REGIONS = ("all",) + synthetic.CLASS_NAMES[1:]
_PAIRED = ("l1", "psnr", "lpips")


def result_paths(workdir: str | Path, step: int) -> tuple[Path, Path]:
  workdir = Path(workdir)
  return workdir / f"eval_{step}.json", workdir / f"eval_{step}.md"


# ------------------------------------------------------------------------------ data


@dataclasses.dataclass
class EvalImages:
  """Preprocessed test images of one domain, with their boxes in crop coordinates."""
  names: list[str]
  images: np.ndarray            # uint8 [n, S, S, 3]
  boxes: list[np.ndarray]       # float32 [K_i, 4] each
  labels: list[np.ndarray]      # int [K_i] each

  def __len__(self) -> int:
    return len(self.names)


def _crop(config, example: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Short side to resize_short, centre crop crop_size (the pipeline's test transform)."""
  size = config.data.crop_size
  image, boxes = transforms.resize(example["image"], np.asarray(example["boxes"], np.float32),
                                   config.data.resize_short)
  h, w = image.shape[:2]
  x0, y0 = (w - size) // 2, (h - size) // 2
  boxes, labels = transforms.crop_boxes(boxes, np.asarray(example["labels"]), x0, y0, size)
  return image[y0:y0 + size, x0:x0 + size], boxes, labels


def iter_test_images(config, domain: str, limit: int | None = None,
                     batch_size: int = 32) -> Iterator[EvalImages]:
  """Batches of the preprocessed test images of domain 'a' or 'b' (the first `limit`)."""
  examples = data.test_images(config, domain, limit=limit)
  while chunk := list(itertools.islice(examples, batch_size)):
    images, boxes, labels = zip(*(_crop(config, e) for e in chunk))
    yield EvalImages([e["name"] for e in chunk], np.stack(images), list(boxes), list(labels))


def load_test_images(config, domain: str, limit: int | None = None) -> EvalImages:
  """All (or the first `limit`) preprocessed test images of domain 'a' or 'b'."""
  parts = list(iter_test_images(config, domain, limit))
  if not parts:
    raise ValueError(f"dataset {config.data.name!r} has no test images of domain {domain!r}")
  return EvalImages([n for p in parts for n in p.names], np.concatenate([p.images for p in parts]),
                    [b for p in parts for b in p.boxes], [l for p in parts for l in p.labels])


# -------------------------------------------------------------------------- progress


class _Progress:
  """Logs `done / total` with the elapsed time and an ETA, at most every `every` seconds."""

  def __init__(self, what: str, total: int, every: float = 30.0):
    self.what, self.total, self.every = what, total, every
    self.start = self.last = time.monotonic()

  def update(self, done: int) -> None:
    now = time.monotonic()
    if done < self.total and now - self.last < self.every:
      return
    self.last = now
    elapsed = now - self.start
    eta = elapsed / done * (self.total - done) if done else float("nan")
    logging.info("%s: %d/%d (%.0f s, ETA %.0f s)", self.what, done, self.total, elapsed, eta)


# ------------------------------------------------------------------------- networks


@dataclasses.dataclass
class _Networks:
  """The metric networks a run needs (None where not needed or not available)."""
  inception: inception.InceptionV3 | None = None
  inception_meta: dict[str, Any] | None = None
  classifier: classifier_lib.DomainClassifier | None = None
  classifier_meta: dict[str, Any] | None = None

  @property
  def imagenet(self) -> bool:
    """Whether the ImageNet Inception Score can be computed (FID weights with `fc`)."""
    return self.inception is not None and self.inception.fc is not None


def _load_networks(config, metrics: Sequence[str], skipped: dict[str, str]) -> _Networks:
  """Loads what `metrics` need, before any translation: missing weights fail at once."""
  nets = _Networks()
  if "fid" in metrics:
    nets.inception, nets.inception_meta = inception_weights.load_fid_inception(
        config.eval.weights_dir)
  elif "is" in metrics:   # ImageNet IS only when the FID weights are there anyway
    try:
      nets.inception, nets.inception_meta = inception_weights.load_fid_inception(
          config.eval.weights_dir)
    except FileNotFoundError as e:
      skipped["is_imagenet"] = f"no FID Inception weights ({e})"
  if nets.inception is not None and nets.inception.fc is None and "is" in metrics:
    skipped["is_imagenet"] = (
        f"the FID weights {nets.inception_meta['source']} have no ImageNet layer; provide "
        f"{inception_weights.PYTORCH_FID_FILE} in config.eval.weights_dir")
  if "is" in metrics or "cis" in metrics:
    if not config.eval.classifier:
      raise FileNotFoundError(
          "IS and CIS need the domain classifier: train it with `python -m "
          "mguit_jax.train_classifier --config CONFIG --workdir DIR` and pass "
          "--config CONFIG --config.eval.classifier=DIR/classifier.npz (or leave is/cis out "
          "of --metrics)")
    nets.classifier, nets.classifier_meta = classifier_lib.load(config.eval.classifier)
    meta = nets.classifier_meta
    if (meta.get("dataset"), meta.get("domains")) != (config.data.name, config.data.domains):
      raise ValueError(
          f"{config.eval.classifier} classifies dataset {meta.get('dataset')!r} domains "
          f"{meta.get('domains')!r}, but the evaluation is on {config.data.name!r} domains "
          f"{config.data.domains!r}; train a classifier for this dataset")
  if "lpips" in metrics or "paired" in metrics:
    lpips_lib.ensure_available()
  return nets


# ---------------------------------------------------------------------- one direction


def _features(nets: _Networks, images: np.ndarray, config) -> np.ndarray:
  return utils.map_batches(
      lambda x: inception.features(nets.inception, x, config.eval.inception_size),
      images, batch_size=config.eval.metric_batch_size)


def _paired_errors(pred: np.ndarray, truth: np.ndarray, masks: np.ndarray,
                   config) -> dict[str, np.ndarray]:
  """Per image and region [n, R]: L1, PSNR, LPIPS (whole image: LPIPS value; boxes: map mean)."""
  l1, psnr = paired.l1_and_psnr(pred, truth, masks)
  values, maps = lpips_lib.lpips_with_maps(utils.to_signed(pred), utils.to_signed(truth),
                                           batch_size=config.eval.metric_batch_size)
  lp = paired.masked_mean(maps, masks)
  lp[:, 0] = values
  return {"l1": l1, "psnr": psnr, "lpips": lp}


def _score_batch(nets: _Networks, config, metrics: Sequence[str], inputs: np.ndarray,
                 outputs: np.ndarray, truth: np.ndarray | None, masks: np.ndarray | None,
                 cycled: np.ndarray | None) -> dict[str, np.ndarray]:
  """Per-input arrays of one batch: outputs [b, 1 + S, H, W, 3] (memory style, S random);
  `cycled` [b, H, W, 3]: the memory-style output translated back."""
  ev = config.eval
  styled, random = outputs[:, 0], outputs[:, 1:]
  flat_random = random.reshape(-1, *random.shape[2:])
  got = {}
  if cycled is not None:
    whole = np.ones((len(inputs), 1) + inputs.shape[1:3], bool)
    l1, psnr = paired.l1_and_psnr(cycled, inputs, whole)
    got["cycle/l1"], got["cycle/psnr"] = l1[:, 0], psnr[:, 0]
  if "fid" in metrics:
    got["fid_features"] = _features(nets, styled, config)
  if "lpips" in metrics:
    got["lpips"] = lpips_lib.pair_diversity(random, ev.num_pairs, batch_size=ev.metric_batch_size)
  if "is" in metrics or "cis" in metrics:
    size = nets.classifier_meta["inception_size"]
    probs = utils.map_batches(lambda b: classifier_lib.probabilities(nets.classifier, b, size),
                              flat_random, batch_size=ev.metric_batch_size)
    got["class_probs"] = probs.reshape(*random.shape[:2], -1)
  if "is" in metrics and nets.imagenet:
    got["imagenet_probs"] = utils.map_batches(
        lambda f: inception.imagenet_probabilities(nets.inception, f),
        _features(nets, flat_random, config), batch_size=ev.metric_batch_size)
  if truth is not None:
    for kind, pred in (("paired", styled), ("paired_input", inputs)):
      for m, values in _paired_errors(pred, truth, masks, config).items():
        got[f"{kind}/{m}"] = values
  return got


def _summarise(got: dict[str, np.ndarray], nets: _Networks, config, metrics: Sequence[str],
               direction: str, skipped: dict[str, str]) -> tuple[dict[str, float], dict]:
  """(metric values, protocol facts) of one direction from the concatenated batch arrays."""
  ev = config.eval
  results: dict[str, float] = {}
  facts: dict[str, Any] = {}
  if "lpips" in metrics:
    results["lpips"] = float(got["lpips"].mean())
    facts["lpips_pairs_per_input"] = ev.num_pairs
  if "fid" in metrics:
    reals = np.concatenate([_features(nets, b.images, config) for b in iter_test_images(
        config, direction[2], batch_size=ev.metric_batch_size)])
    fakes = got["fid_features"]
    facts["fid_num_real"] = len(reals)
    if min(len(fakes), len(reals)) < 2:
      skipped[f"{direction}/fid"] = (f"needs at least 2 images per set ({len(fakes)} "
                                     f"translated, {len(reals)} real)")
    else:
      results["fid"] = fid_lib.fid(fakes, reals)
  if "is" in metrics:
    probs = got["class_probs"]
    results["is"] = scores.inception_score(probs.reshape(-1, probs.shape[-1]))
    if nets.imagenet:
      results["is_imagenet"] = scores.inception_score(got["imagenet_probs"])
  if "cis" in metrics:
    results["cis"] = scores.conditional_inception_score(got["class_probs"])
  if "cycle" in metrics:
    results["cycle/l1"] = float(got["cycle/l1"].mean())
    results["cycle/psnr"] = float(got["cycle/psnr"].mean())
  if "paired" in metrics:
    for r, region in enumerate(REGIONS):
      present = ~np.isnan(got["paired/l1"][:, r])    # images with a box of this class
      facts[f"paired_images_with/{region}"] = int(present.sum())
      if not present.any():
        skipped[f"{direction}/paired/{region}"] = f"no test image has a {region} box"
        continue
      for kind, m in itertools.product(("paired", "paired_input"), _PAIRED):
        results[f"{kind}/{region}/{m}"] = float(got[f"{kind}/{m}"][present, r].mean())
  return results, facts


def _evaluate_direction(translator, config, nets: _Networks, metrics: Sequence[str],
                        direction: str, skipped: dict[str, str]):
  """(metric values, protocol facts) of one direction, "a2b" or "b2a"."""
  ev = config.eval
  src, tgt = direction[0], direction[2]
  inputs = load_test_images(config, src, ev.num_inputs)
  truth = None
  if "paired" in metrics:
    truth = load_test_images(config, tgt, ev.num_inputs)
    if truth.names != inputs.names:
      raise ValueError(f"the {tgt!r} test images are not the same scenes as the {src!r} ones "
                       f"({truth.names[:3]} vs {inputs.names[:3]}); no paired ground truth")
  num_styles = max([ev.num_styles for m in metrics if m in ("is", "cis")]
                   + [2 * ev.num_pairs for m in metrics if m == "lpips"] + [0])
  collected: dict[str, list[np.ndarray]] = {}
  n = len(inputs)
  progress = _Progress(f"Evaluating {direction}", n)
  for start in range(0, n, ev.batch_size):
    stop = min(start + ev.batch_size, n)
    x = inputs.images[start:stop]
    outputs = utils.map_batches(   # a short last batch is padded: one compilation
        lambda b: translator.translate(b, direction, num_styles=num_styles, seed=ev.seed),
        x, batch_size=ev.batch_size)
    gt = masks = cycled = None
    if "cycle" in metrics:
      back = f"{tgt}2{src}"
      cycled = utils.map_batches(lambda b: translator.translate(b, back)[:, 0], outputs[:, 0],
                                 batch_size=ev.batch_size)
    if truth is not None:
      gt = truth.images[start:stop]
      masks = np.stack([paired.region_masks(b, l, *x.shape[1:3], len(REGIONS))
                        for b, l in zip(inputs.boxes[start:stop], inputs.labels[start:stop])])
    for key, value in _score_batch(nets, config, metrics, x, outputs, gt, masks,
                                   cycled).items():
      collected.setdefault(key, []).append(value)
    progress.update(stop)
  got = {key: np.concatenate(parts) for key, parts in collected.items()}
  results, facts = _summarise(got, nets, config, metrics, direction, skipped)
  return results, {"num_inputs": n, "num_random_styles": num_styles, **facts}


# ---------------------------------------------------------------------------- public


def headline(results: dict[str, float], step: int) -> str:
  """The whole-image paired PSNR, its untranslated floor and the cycle PSNR per direction."""
  columns = (("paired/all/psnr", "translation PSNR"), ("paired_input/all/psnr", "untranslated"),
             ("cycle/psnr", "cycle PSNR"))
  columns = [(k, name) for k, name in columns if f"a2b/{k}" in results]
  if not columns:
    return f"Evaluation of step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in results.items())
  lines = [f"Held-out test scenes, step {step} (eval_{step}.md holds every number):",
           "  direction  " + "".join(f"{name:>18}" for _, name in columns)]
  for d in DIRECTIONS:
    lines.append(f"  {d:<9}  " + "".join(f"{results[f'{d}/{k}']:>15.2f} dB" for k, _ in columns))
  return "\n".join(lines)


def _format(value: float) -> str:
  return f"{value:.4f}" if math.isfinite(value) else str(value)


def markdown(report: dict[str, Any]) -> str:
  """The report as a Markdown table: one row per metric, one column per direction."""
  names = sorted({k.split("/", 1)[1] for k in report["metrics"]})
  lines = [f"# Evaluation of step {report['step']}", "",
           f"{report['workdir']}, dataset {report['dataset']} ({report['domains']}), "
           f"{report['date']}.", "",
           "| metric | a2b | b2a |", "|---|---:|---:|"]
  for name in names:
    cells = [_format(report["metrics"][f"{d}/{name}"]) if f"{d}/{name}" in report["metrics"]
             else "" for d in DIRECTIONS]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  lines += ["", "Protocol:"] + [f"- {k}: {v}" for k, v in report["protocol"].items()]
  if report["skipped"]:
    lines += ["", "Skipped:"] + [f"- {k}: {v}" for k, v in report["skipped"].items()]
  return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str, overwrite: bool) -> None:
  if path.exists() and not overwrite:
    raise FileExistsError(f"{path} exists (written while this evaluation ran); not replacing it")
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  tmp.replace(path)


def _check_request(config, metrics: Sequence[str]) -> tuple[list[str], dict[str, str]]:
  """(the metrics that can run, in METRICS order; {metric: why skipped}); bad fields raise."""
  unknown = sorted(set(metrics) - set(METRICS))
  if unknown or not metrics:
    raise ValueError(f"metrics {list(metrics)}: expected a non-empty subset of {list(METRICS)}")
  if "eval" not in config:
    raise ValueError("the config has no `eval` section (a checkpoint written before evaluation "
                     "existed); pass the run's config file with --config")
  ev = config.eval
  least = {"num_inputs": 1, "batch_size": 1, "metric_batch_size": 1,
           "num_pairs": 1 if "lpips" in metrics else 0,
           "num_styles": 2 if {"is", "cis"} & set(metrics) else 0}
  for field, low in least.items():
    if ev[field] < low:
      raise ValueError(f"config.eval.{field}={ev[field]}: expected at least {low}")
  skipped = {}
  runnable = [m for m in METRICS if m in metrics]
  method = methods.name_of(config)
  if not methods.get(method).MULTIMODAL:
    for m in [m for m in runnable if m in RANDOM_STYLE_METRICS]:
      skipped[m] = (f"method {method!r} translates each image one way: no random styles to "
                    "measure")
      runnable.remove(m)
  if "paired" in runnable and not data.has_paired_truth(config):
    skipped["paired"] = (f"dataset {config.data.name!r} has no paired ground truth (only the "
                         "synthetic street scenes render each test scene in both domains)")
    runnable.remove("paired")
  return runnable, skipped


def check_requirements(config, metrics: Sequence[str]) -> None:
  """Raises now what `evaluate` would raise later for missing weights, classifier or fields."""
  metrics, skipped = _check_request(config, metrics)
  _load_networks(config, metrics, skipped)


def _check_same_data(config, trained) -> None:
  """The evaluation's dataset and domains must be those the checkpoint was trained on."""
  ours = (config.data.name, config.data.domains)
  theirs = (trained.data.name, trained.data.domains)
  if ours != theirs:
    raise ValueError(
        f"--config evaluates dataset {ours[0]!r} domains {ours[1]!r}, but the checkpoint was "
        f"trained on dataset {theirs[0]!r} domains {theirs[1]!r}; pass that run's config "
        "(or set config.data.name and config.data.domains to match)")


def _protocol(config, nets: _Networks) -> dict[str, Any]:
  """What the numbers depend on besides the checkpoint (written into the report)."""
  ev = config.eval
  protocol = {"resolution": config.data.crop_size, "resize_short": config.data.resize_short,
              "seed": ev.seed, "lpips": f"{lpips_lib.PACKAGE}, AlexNet, v0.1 linear layers"}
  if nets.inception_meta:
    protocol.update(fid_weights=nets.inception_meta["source"], inception_size=ev.inception_size)
  if nets.classifier_meta:
    meta = nets.classifier_meta
    protocol["classifier"] = (f"{ev.classifier} (classes {meta['classes']}, Inception at "
                              f"{meta['inception_size']} px, test accuracy "
                              f"{meta.get('test_accuracy')})")
  return protocol


def _earlier_report(json_path: Path, md_path: Path, config, overwrite: bool,
                    merge: bool) -> dict[str, Any] | None:
  """The report of an earlier evaluation of this step to extend (`merge`), or None."""
  if overwrite or not (json_path.exists() or md_path.exists()):
    return None
  if not merge or not json_path.exists():
    raise FileExistsError(f"{json_path} exists: this step was evaluated already; pass "
                          "--overwrite to replace it or --merge to add metrics to it")
  report = json.loads(json_path.read_text())
  if report.get("eval") != config.eval.to_dict():
    raise FileExistsError(f"{json_path} was evaluated with other config.eval settings; pass "
                          "--overwrite to replace it")
  return report


def evaluate(workdir: str | Path, *, config: ml_collections.ConfigDict | None = None,
             metrics: Sequence[str] = METRICS, step: int | None = None,
             overwrite: bool = False, merge: bool = False,
             translator: Translator | None = None) -> dict[str, float]:
  """Evaluates step `step` (default: the latest) of the run in `workdir`.

  `config` supplies the data and `eval` fields (default: the checkpoint's own config);
  `translator` replaces the checkpoint's model (anything with `translate`, `step`).
  Returns {"a2b/lpips": ..., "b2a/fid": ...}; writes eval_<step>.json/.md into `workdir`
  and TensorBoard scalars `eval/...`. Where eval_<step>.json exists: FileExistsError,
  unless `overwrite` (replace it) or `merge` (compute only the metrics it lacks, under the
  same eval settings, and add them to it).
  """
  workdir = Path(workdir).absolute()
  translator = translator or Translator.from_workdir(workdir, step)
  if config is None:
    config = translator.config
  else:
    _check_same_data(config, translator.config)
  requested = sorted(metrics)
  json_path, md_path = result_paths(workdir, translator.step)
  earlier = _earlier_report(json_path, md_path, config, overwrite, merge)
  if earlier is not None:
    if set(requested) <= set(earlier["requested"]):
      return earlier["metrics"]
    metrics = [m for m in metrics if m not in earlier["requested"]]
    requested = sorted(set(requested) | set(earlier["requested"]))
  metrics, skipped = _check_request(config, metrics)
  started = time.monotonic()
  data.ensure_prepared(config)
  nets = _load_networks(config, metrics, skipped)
  results, protocol = {}, _protocol(config, nets)
  for direction in DIRECTIONS if metrics else ():
    values, facts = _evaluate_direction(translator, config, nets, metrics, direction, skipped)
    results.update({f"{direction}/{k}": v for k, v in values.items()})
    protocol.update({f"{direction}/{k}": v for k, v in facts.items()})
  if earlier is not None:
    results = {**earlier["metrics"], **results}
    protocol = {**earlier["protocol"], **protocol}
    skipped = {**earlier["skipped"], **skipped}
  report = {"step": translator.step, "workdir": str(workdir), "dataset": config.data.name,
            "domains": config.data.domains,
            "date": datetime.datetime.now().isoformat(" ", "seconds"),
            "requested": requested, "eval": config.eval.to_dict(),
            "metrics": results, "protocol": protocol, "skipped": skipped,
            "seconds": round(time.monotonic() - started, 1)}
  _write_atomic(json_path, json.dumps(report, indent=2) + "\n", overwrite or merge)
  _write_atomic(md_path, markdown(report), overwrite or merge)
  _write_scalars(workdir, translator.step, results)
  logging.info("Evaluation of step %d written to %s:\n%s", translator.step, json_path,
               markdown(report))
  return results


def _write_scalars(workdir: Path, step: int, results: dict[str, float]) -> None:
  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  writer.write_scalars(step, {f"eval/{k}": v for k, v in results.items()})
  writer.flush()
  writer.close()


# ---------------------------------------------------------------------------------- CLI


def _define_flags() -> None:
  config_flags.DEFINE_config_file(
      "config", None, "Config file for the data and eval fields (default: the checkpoint's own "
      "config); fields can be overridden with --config.<field>=<value>.", lock_config=True)
  flags.DEFINE_string("workdir", None, "Training workdir whose checkpoint is evaluated.",
                      required=True)
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
  flags.DEFINE_list("metrics", list(METRICS), f"Subset of {','.join(METRICS)}.")
  flags.DEFINE_bool("overwrite", False, "Replace an existing eval_<step>.json/.md.")
  flags.DEFINE_bool("merge", False, "Add the metrics an existing eval_<step>.json lacks to it "
                    "(same config.eval settings required).")


def main():
  f = flags.FLAGS
  evaluate(f.workdir, config=f.config, metrics=f.metrics, step=f.step, overwrite=f.overwrite,
           merge=f.merge)


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
