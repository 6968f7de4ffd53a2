"""Float64 reference of the generators' gradients in `train_step.npz` (gen_grads_f64.npz).

The official MUNIT trainer (imported from a checkout, as make_goldens.py does) is loaded with
the goldens' initial generators and the discriminators after their step, converted to
float64, and runs its generator update with the recorded random styles. At these tiny
widths float32 rounding moves the generators' gradients by about 1.4 % RMS (up to 6 % per
tensor, through instance norms of near-constant channels), so parity is judged against this
reference: ours may lie no further from it than the official float32 gradients do.

  python tests/testdata/munit/make_f64_grads.py --official /path/to/MUNIT \
      --goldens tests/testdata/munit
"""

import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_goldens  # noqa: E402  (the shims that let the official code import on CPU)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--official", required=True, help="path to an NVlabs/MUNIT checkout")
  ap.add_argument("--goldens", required=True, help="directory of modules/train_step.npz")
  args = ap.parse_args()
  make_goldens.install_shims()
  import torch  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, os.path.abspath(args.official))
  import trainer as official_trainer  # pylint: disable=import-outside-toplevel
  warnings.filterwarnings("ignore")
  modules = np.load(os.path.join(args.goldens, "modules.npz"))
  step = np.load(os.path.join(args.goldens, "train_step.npz"))
  hp = json.loads(str(modules["meta/hparams"]))["hparams_used"]
  torch.set_default_dtype(torch.float64)
  torch.manual_seed(0)
  trainer = official_trainer.MUNIT_Trainer(hp)
  for name in ("gen_a", "gen_b", "dis_a", "dis_b"):
    net = getattr(trainer, name)
    state = net.state_dict()
    for key in state:
      after = f"dis_after/{name}/{key}"
      source = step[after] if after in step.files else modules[f"{name}/{key}"]
      state[key] = torch.from_numpy(np.asarray(source, np.float64))
    net.load_state_dict(state)
  trainer.double()
  styles = iter([torch.from_numpy(step[f"rand/{k}"]).double() for k in (4, 5)])
  torch.randn = lambda *a, **k: next(styles)   # gen_update's two draws: s_a, s_b
  x_a, x_b = (torch.from_numpy(modules[k]).double() for k in ("x_a", "x_b"))
  trainer.gen_update(x_a, x_b, hp)
  out = {f"gen_grad_f64/{name}/{key}": p.grad.detach().numpy().astype(np.float32)
         for name in ("gen_a", "gen_b") for key, p in getattr(trainer, name).named_parameters()}
  out["meta/description"] = np.array(
      "Generator gradients of one MUNIT gen_update in float64 (stored as float32), from the "
      "goldens' initial generators, discriminators after their step and recorded styles.")
  out["meta/loss_gen_total_f64"] = np.array(float(trainer.loss_gen_total))
  np.savez_compressed(os.path.join(args.goldens, "gen_grads_f64.npz"), **out)


if __name__ == "__main__":
  main()
