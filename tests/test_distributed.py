"""Two processes on this machine (`jax.distributed`, gloo collectives between their CPU
devices) train as one process with the whole batch does, and resume from their checkpoint.

Each worker is the real command (`MGUIT_DISTRIBUTED=1 python -m mguit_jax.main`), one CPU
device per process, reading its own shard of the data. The reference runs here on one
device with the two shards concatenated in process order, which is the global batch.
"""

import functools
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from configs import tiny
from mguit_jax import checkpointing, data, sharding, steps
from mguit_jax import train_state as ts
from tests.training_checks import SMALL_CROPS, assert_same_first_iteration

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = {
    **SMALL_CROPS, "data.batch_size": 2, "model.init_std": 0.02,
    "optim.decay_start": 1.0,   # constant lr: the 6- and 9-step runs share compiled steps
    "train.checkpoint_every": 3, "train.log_every": 1, "train.sample_every": 1000,
    "train.eval_metrics": "",
}


def _config(data_dir, num_steps):
  config = tiny.get_config("preset=paper")
  config.update_from_flattened_dict(
      {**OVERRIDES, "data.data_dir": data_dir, "train.num_steps": num_steps})
  return config


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run_workers(workdir, data_dir, num_steps, cache) -> str:
  """Runs both processes to `num_steps`; returns process 0's log."""
  flags = [f"--config.{k}={v}" for k, v in
           {**OVERRIDES, "data.data_dir": data_dir, "train.num_steps": num_steps}.items()]
  port = _free_port()
  procs = []
  for rank in range(2):
    env = {**os.environ, "MGUIT_DISTRIBUTED": "1", "JAX_PLATFORMS": "cpu",
           "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2",
           "JAX_PROCESS_ID": str(rank), "JAX_COMPILATION_CACHE_DIR": str(cache),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5"}
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "mguit_jax.main", "--config", "configs/tiny.py:preset=paper",
         "--workdir", str(workdir), *flags],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  logs = [p.communicate(timeout=900)[0] for p in procs]
  for rank, (p, log) in enumerate(zip(procs, logs)):
    assert p.returncode == 0, f"process {rank} exited {p.returncode}:\n{log[-4000:]}"
  return logs[0]


def _logged_losses(log: str) -> dict[int, dict[str, float]]:
  """The per-step scalars process 0 wrote to its log ("[step] name=value, ...")."""
  out = {}
  for step, body in re.findall(r"\] \[(\d+)\] ((?:[dgm][a-z_]*/\S+=\S+(?:, )?)+)", log):
    for item in body.split(", "):
      name, value = item.split("=")
      out.setdefault(int(step), {})[name] = float(value.rstrip(","))
  return out


def _reference(config, num_steps):
  """One device, the two processes' shards concatenated: (losses per step, states by step)."""
  mesh = sharding.make_mesh(jax.devices()[:1])
  defs = ts.graphdefs(config)
  state = jax.jit(functools.partial(ts.init_state, config))()
  full = jax.jit(functools.partial(steps.full_step, defs=defs, config=config))
  conly = jax.jit(functools.partial(steps.content_d_step, defs=defs, config=config))
  shards = [data.make_train_iterator(config, process_index=i, process_count=2) for i in range(2)]
  losses, states = {}, {}
  for step in range(1, num_steps + 1):
    parts = [next(it) for it in shards]
    batch = jax.tree.map(lambda *x: np.concatenate(x), *parts)
    state, metrics = (full if step % config.train.d_iter == 0 else conly)(
        state, sharding.put_batch(batch, mesh))
    losses[step] = {k: float(v) for k, v in jax.device_get(metrics).items()}
    states[step] = jax.device_get(state)
  return losses, states


def _restore(workdir, config, step):
  mesh = sharding.make_mesh(jax.devices()[:1])
  abstract = checkpointing.abstract_with_sharding(
      jax.eval_shape(functools.partial(ts.init_state, config)), sharding.replicated(mesh))
  ckpt = checkpointing.Checkpointer(Path(workdir) / "checkpoints", max_to_keep=3)
  try:
    return jax.device_get(ckpt.restore(step, abstract, None))
  finally:
    ckpt.close()


@pytest.mark.slow
def test_two_processes_train_and_resume_as_one(tmp_path):
  data_dir, workdir, cache = tmp_path / "tfds", tmp_path / "run", tmp_path / "cache"
  first = _run_workers(workdir, data_dir, 6, cache)
  second = _run_workers(workdir, data_dir, 9, cache)
  assert "Resumed from" in second and "at step 6" in second
  # Process 1 wrote its part of the checkpoints too (its data position).
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == [
      "3", "6", "9"]

  config = _config(str(data_dir), 9)
  want_losses, want_states = _reference(config, 9)
  got_losses = {**_logged_losses(first), **_logged_losses(second)}
  assert sorted(got_losses) == list(range(1, 10))
  for step, want in want_losses.items():
    for name, got in got_losses[step].items():
      # The log prints 6 significant digits; gloo's all-reduce sums in another order.
      assert got == pytest.approx(want[name], rel=1e-4, abs=1e-6), (step, name)

  # The first full iteration (step 3) agrees as the 4-device test in test_steps.py does:
  # memory to float32 rounding, gradients (Adam's first moments) in direction, parameters
  # within Adam's bound of 2 lr (the cycle path amplifies the other summation order of the
  # all-reduce, and Adam's first step moves every weight by ~lr whatever its gradient's size).
  assert_same_first_iteration(_restore(workdir, config, 3), want_states[3],
                              lr=config.optim.lr, memory_atol=1e-6)
  # Later the runs drift as any two runs that differ in rounding do (a pixel's nearest memory
  # item can flip), but every parameter stays within 2 lr per full iteration of the
  # reference, before (step 6) and after (step 9) the resume, and the losses above agree.
  for step in (6, 9):
    got, want = _restore(workdir, config, step), want_states[step]
    assert int(got.step) == step
    for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(want.params)):
      np.testing.assert_allclose(a, b, atol=2 * config.optim.lr * step / 3 * 1.001)
