r"""Times the official PyTorch MGUIT and mguit_jax in one run, on the same inputs.

  git clone https://github.com/somijeong/MGUIT /tmp/MGUIT     # commit e3bd2bd
  python benchmarks/side_by_side.py --official /tmp/MGUIT --size 360 --steps 2

The official code is imported from its checkout, unmodified. Without CUDA its `.cuda()`
calls are made no-ops, so it runs on the CPU; with CUDA it runs as released on GPU 0.
Both run the official widths and rule (`configs/init.py:preset=official`), float32 (on
GPUs both frameworks use TF32 for float32 products by default), batch `--batch`: the
official `update_D` + `update_EG` against `steps.full_step`, and `update_D_content` against
`steps.content_d_step`, each the median of `--steps` after one warm-up. Then mguit_jax
again with each of `--variants` (`bf16` = model.compute_dtype=bfloat16, `remat` =
model.remat=all, `fused` = one d_iter cycle per program, timed per cycle).

Prints one table: seconds per iteration, images per second, the ratio official / ours
(above 1: mguit_jax is faster), model FLOP utilisation where `--peak_tflops` (the chip's
bf16 peak) is given, and peak device memory (GPU) or the process's peak RSS.
Run it with the same allocator for both (`source launch/env.sh` preloads tcmalloc).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from absl import app, flags
import jax
import numpy as np

from configs import init as init_config
from mguit_jax import data, sharding, steps
from mguit_jax import train_state as ts

_OFFICIAL = flags.DEFINE_string("official", None, "Checkout of somijeong/MGUIT (commit e3bd2bd).")
_SIZE = flags.DEFINE_integer("size", 360, "Crop size (the official content discriminator "
                             "needs at least 216).")
_BATCH = flags.DEFINE_integer("batch", 1, "Batch size of both.")
_STEPS = flags.DEFINE_integer("steps", 2, "Timed iterations of each kind, after one warm-up.")
_VARIANTS = flags.DEFINE_list("variants", ["bf16", "remat", "fused"],
                              "mguit_jax variants timed after float32: bf16, remat, fused.")
_PEAK = flags.DEFINE_float("peak_tflops", 0.0, "The chip's bf16 peak, for model FLOP "
                           "utilisation (e.g. 989 for an H100 SXM); 0: not printed.")
flags.mark_flag_as_required("official")


def _median_seconds(fn, steps_: int) -> float:
  fn()  # warm-up
  times = []
  for _ in range(steps_):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _official_model(path: str, batch):
  """The released model, initialised as its train.py does, and the inputs as torch tensors."""
  import torch
  import torch.nn.functional as F
  if not torch.cuda.is_available():   # run the released code on the CPU
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
  sys.path.insert(0, os.path.abspath(path))
  try:
    import model as official_model   # the checkout's model.py
    from options import TrainOptions
  except ImportError as e:
    raise SystemExit(f"--official={path}: expected a checkout of somijeong/MGUIT "
                     f"(model.py, options.py): {e}") from None
  sys.argv = sys.argv[:1]
  opts = TrainOptions().parse()
  model = official_model.MGUIT(opts)
  model.setgpu(0)
  model.initialize()
  device = "cuda" if torch.cuda.is_available() else "cpu"
  memory = [[F.normalize(torch.randn(n, opts.kdim), dim=1).to(device),
             torch.randn(n, opts.vdim).to(device), torch.randn(n, opts.vdim).to(device)]
            for n in opts.msize]
  to_torch = lambda x, perm: torch.from_numpy(np.ascontiguousarray(x.transpose(perm))).to(device)
  inputs = [to_torch(batch[d]["image"], (0, 3, 1, 2)) for d in "ab"]
  inputs += [to_torch(batch[d]["masks"], (0, 3, 1, 2)) for d in "ab"]
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
  peak = ((lambda: torch.cuda.max_memory_allocated() / 2**30) if device == "cuda" else None)
  return model, memory, inputs, sync, peak


def _time_official(path, batch, steps_):
  """(s per full iteration, s per content-D iteration, peak GPU GiB or None). Run in a
  child process, so that its memory is gone before mguit_jax runs."""
  model, memory, (xa, xb, ma, mb), sync, peak = _official_model(path, batch)
  state = {"memory": memory}

  def full():
    state["memory"] = model.update_D(xa, xb, ma, mb, state["memory"])
    model.update_EG()
    sync()

  def content():
    model.update_D_content(xa, xb)
    sync()

  full_s, content_s = _median_seconds(full, steps_), _median_seconds(content, steps_)
  return full_s, content_s, peak() if peak else None


def _config(variant: str):
  config = init_config.get_config("preset=official")
  config.data.crop_size = _SIZE.value
  config.data.batch_size = _BATCH.value
  if variant == "bf16":
    config.model.compute_dtype = "bfloat16"
  elif variant == "remat":
    config.model.remat = "all"
  elif variant not in ("f32", "fused"):
    raise SystemExit(f"--variants: unknown {variant!r}; expected bf16, remat or fused")
  return config


def _time_ours(variant: str, batch):
  """(s per full iteration, s per content-D iteration, FLOPs of a full iteration)."""
  config = _config(variant)
  mesh = sharding.make_mesh(jax.devices()[:1])
  repl = sharding.replicated(mesh)
  defs = ts.graphdefs(config)
  state = jax.jit(functools.partial(ts.init_state, config), out_shardings=repl)()
  batch = sharding.put_batch(batch, mesh)
  box = {"state": state}

  def runner(fn):
    """(compiled program, a function that runs it once on the current state)."""
    args = (batch,) * config.train.d_iter if fn is steps.schedule_step else batch
    compiled = jax.jit(functools.partial(fn, defs=defs, config=config),
                       donate_argnums=0).lower(box["state"], args).compile()

    def run():
      out = compiled(box["state"], args)
      box["state"] = out[0]
      jax.block_until_ready(out)
    return compiled, run

  compiled, full = runner(steps.full_step)
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  flops = (cost or {}).get("flops", float("nan"))
  if variant == "fused":   # one d_iter cycle per call: its time goes in the "full" column
    _, cycle = runner(steps.schedule_step)
    return _median_seconds(cycle, _STEPS.value), float("nan"), flops
  _, content = runner(steps.content_d_step)
  return _median_seconds(full, _STEPS.value), _median_seconds(content, _STEPS.value), flops


def _rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _peak_memory() -> str:
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return f"{stats['peak_bytes_in_use'] / 2**30:.2f} GiB"
  return f"{_rss_gib():.2f} GiB RSS (process)"


def main(argv):
  del argv
  batch = data.random_batch(_config("f32"), seed=0)
  b = _BATCH.value
  rows = []
  with multiprocessing.get_context("spawn").Pool(1) as pool:
    full, content, torch_peak = pool.apply(_time_official,
                                           (_OFFICIAL.value, batch, _STEPS.value))
    torch_rss = pool.apply(_rss_gib)
  rows.append(("official (PyTorch)", full, content, float("nan"),
               f"{torch_peak:.2f} GiB" if torch_peak else f"{torch_rss:.2f} GiB RSS (process)"))
  d_iter = _config("f32").train.d_iter
  reference = {"full": (full, content), "cycle": (full + (d_iter - 1) * content, content)}
  for variant in ["f32"] + [v for v in _VARIANTS.value if v]:
    full, content, flops = _time_ours(variant, batch)
    rows.append((f"mguit_jax {variant}", full, content, flops, _peak_memory()))

  print(f"backend: {jax.devices()[0].device_kind}; {_SIZE.value}x{_SIZE.value}, batch {b}, "
        f"official widths; median of {_STEPS.value} after a warm-up")
  header = (f"{'':<20}{'full s/it':>10}{'img/s':>8}{'ratio':>7}{'content-D s/it':>16}"
            f"{'ratio':>7}{'MFU':>7}  peak memory")
  print(header)
  for name, full, content, flops, peak in rows:
    ref = reference["cycle" if name.endswith("fused") else "full"]
    ratio = lambda ref, x: "" if name.startswith("official") or not x == x else f"{ref / x:.2f}x"
    mfu = (f"{flops / full / (_PEAK.value * 1e12):.1%}" if _PEAK.value and flops == flops
           else "")
    content_s = f"{content:.3f}" if content == content else "-"
    print(f"{name:<20}{full:>10.3f}{b / full:>8.2f}{ratio(ref[0], full):>7}"
          f"{content_s:>16}{ratio(ref[1], content):>7}{mfu:>7}  {peak}")
  if any(name.endswith("fused") for name, *_ in rows):
    print(f"fused: its full column is one d_iter={d_iter} cycle, against the official full "
          f"iteration plus {d_iter - 1} content-D-only ones (img/s per cycle; MFU counts the "
          "full iteration's FLOPs).")


if __name__ == "__main__":
  app.run(main)
