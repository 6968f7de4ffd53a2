r"""Times the training iterations for any config on whatever backend is present.

  python benchmarks/train_step.py --config configs/init.py:preset=official --steps 3
  python benchmarks/train_step.py --config configs/tiny.py --steps 10

Prints compile time, steady-state seconds per full iteration and per
content-discriminator-only iteration (median of --steps runs), images per second,
XLA's FLOP count of one full iteration, and peak memory (device memory where the
backend reports it, else the process's peak RSS).
"""

from __future__ import annotations

import functools
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from absl import app, flags
import jax
from ml_collections import config_flags

from mguit_jax import data, sharding, steps
from mguit_jax import train_state as ts

_CONFIG = config_flags.DEFINE_config_file("config", "configs/init.py:preset=official",
                                          "Config to benchmark.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed iterations of each kind (after one warm-up).")


def _time(fn, state, batch, n):
  times = []
  for _ in range(n):
    start = time.perf_counter()
    state, metrics = fn(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  return state, statistics.median(times)


def main(argv):
  del argv
  config = _CONFIG.value
  mesh = sharding.make_mesh()
  sharding.check_batch_size(config.data.batch_size, mesh)
  repl = sharding.replicated(mesh)
  defs = ts.graphdefs(config)
  state = jax.jit(functools.partial(ts.init_state, config), out_shardings=repl)()
  batch = sharding.put_batch(data.random_batch(config), mesh)
  print(f"backend {jax.default_backend()}: {jax.device_count()} x {jax.devices()[0].device_kind}; "
        f"crop {config.data.crop_size}, global batch {config.data.batch_size}, "
        f"params {sum(ts.num_params(state.params).values()) / 1e6:.2f}M")

  rows = []
  for name, fn in (("full", steps.full_step), ("content-D only", steps.content_d_step)):
    jitted = jax.jit(functools.partial(fn, defs=defs, config=config), donate_argnums=0,
                     out_shardings=(repl, repl))
    start = time.perf_counter()
    compiled = jitted.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    state, _ = _time(compiled, state, batch, 1)  # warm-up
    state, median = _time(compiled, state, batch, _STEPS.value)
    rows.append((name, compile_s, median, config.data.batch_size / median,
                 (cost or {}).get("flops", float("nan")) / 1e12))

  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    peak = f"{stats['peak_bytes_in_use'] / 2**30:.2f} GiB device"
  else:
    peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB host RSS"
  print(f"{'iteration':<16}{'compile s':>11}{'s/iter':>10}{'img/s':>9}{'TFLOP':>9}")
  for name, compile_s, median, ips, tflop in rows:
    print(f"{name:<16}{compile_s:>11.1f}{median:>10.3f}{ips:>9.2f}{tflop:>9.3f}")
  print(f"peak memory: {peak}")


if __name__ == "__main__":
  app.run(main)
