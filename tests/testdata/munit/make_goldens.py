#!/usr/bin/env python
"""Produce MUNIT golden tensors from the official NVlabs/MUNIT PyTorch code.

The official code is NOT copied here: it is imported at runtime from a local
checkout given with --official, and a few runtime shims make it run on a CPU-only
torch 2.x without torchvision. See README.md next to this file.

Usage:
    python make_goldens.py --official /tmp/munit_official/MUNIT --out DIR
"""
import argparse
import copy
import json
import linecache
import os
import subprocess
import sys
import types
import warnings

import numpy as np


# ----------------------------------------------------------------------------
# Shims
# ----------------------------------------------------------------------------
def install_shims():
    import torch
    import torch.nn as nn

    # torchvision is not installed; utils.py only needs the names to exist at
    # import time (data loading / image writing are not used here).
    tv = types.ModuleType("torchvision")
    tv_transforms = types.ModuleType("torchvision.transforms")
    tv_utils = types.ModuleType("torchvision.utils")
    tv.transforms = tv_transforms
    tv.utils = tv_utils
    sys.modules.setdefault("torchvision", tv)
    sys.modules.setdefault("torchvision.transforms", tv_transforms)
    sys.modules.setdefault("torchvision.utils", tv_utils)

    # torch.utils.serialization.load_lua was removed in torch 1.0; utils.py
    # imports it at module level (only used for the VGG path, which is off).
    ser = types.ModuleType("torch.utils.serialization")

    def load_lua(*a, **k):  # pragma: no cover - never called (vgg_w = 0)
        raise RuntimeError("load_lua shim: VGG loss is disabled")

    ser.load_lua = load_lua
    sys.modules["torch.utils.serialization"] = ser
    torch.utils.serialization = ser

    # No GPU: .cuda() is the identity.
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self


class RandnRecorder:
    """Wraps torch.randn; records every draw (value + call site) in call order."""

    def __init__(self, orig):
        self.orig = orig
        self.records = []  # (description, np.ndarray)

    def __call__(self, *args, **kwargs):
        out = self.orig(*args, **kwargs)
        fr = sys._getframe(1)
        src = linecache.getline(fr.f_code.co_filename, fr.f_lineno).strip()
        qual = fr.f_code.co_qualname if hasattr(fr.f_code, "co_qualname") else fr.f_code.co_name
        desc = "%s (%s:%d): %s -> shape %s" % (
            qual, os.path.basename(fr.f_code.co_filename), fr.f_lineno, src, tuple(out.shape))
        self.records.append((desc, out.detach().clone().cpu().numpy()))
        return out


def capture_locals(fn, *args, **kwargs):
    """Call fn(*args) and return (result, locals of fn's frame at return)."""
    code = fn.__func__.__code__ if hasattr(fn, "__func__") else fn.__code__
    captured = {}
    prev = sys.getprofile()

    def prof(frame, event, arg):
        if event == "return" and frame.f_code is code:
            captured.update(frame.f_locals)

    sys.setprofile(prof)
    try:
        res = fn(*args, **kwargs)
    finally:
        sys.setprofile(prev)
    return res, captured


def t2n(t):
    import torch
    if isinstance(t, torch.Tensor):
        return t.detach().clone().cpu().numpy()
    return np.asarray(t, dtype=np.float32)


# ----------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------
def load_hparams(official):
    import yaml
    with open(os.path.join(official, "configs", "edges2shoes_folder.yaml")) as f:
        yaml_hp = yaml.safe_load(f)
    hp = copy.deepcopy(yaml_hp)
    # Tiny widths (everything else as in the yaml).
    hp["gen"].update(dim=8, mlp_dim=16, style_dim=4, n_res=2)
    hp["dis"].update(dim=8)
    # Cover the explicit cycle path (yaml: 0) and keep VGG off (yaml: 0).
    hp["recon_x_cyc_w"] = 10
    hp["vgg_w"] = 0
    hp["batch_size"] = 2
    hp["new_size"] = 64
    hp["crop_image_height"] = 64
    hp["crop_image_width"] = 64
    hp["vgg_model_path"] = "."  # train.py sets this; unused since vgg_w == 0
    return yaml_hp, hp


def make_images(batch, ch, size):
    x_a = np.random.default_rng(1001).uniform(-1.0, 1.0, (batch, ch, size, size)).astype(np.float32)
    x_b = np.random.default_rng(2002).uniform(-1.0, 1.0, (batch, ch, size, size)).astype(np.float32)
    style_rand = np.random.default_rng(3003).standard_normal((batch, 4, 1, 1)).astype(np.float32)
    return x_a, x_b, style_rand


# ----------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True, help="path to NVlabs/MUNIT checkout")
    ap.add_argument("--out", required=True, help="output directory")
    args = ap.parse_args()
    official = os.path.abspath(args.official)
    os.makedirs(args.out, exist_ok=True)

    install_shims()
    import torch
    sys.path.insert(0, official)
    import networks  # noqa: F401  (official)
    import trainer as official_trainer  # official
    import utils as official_utils  # official

    commit = subprocess.check_output(["git", "-C", official, "rev-parse", "HEAD"]).decode().strip()

    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    warnings.filterwarnings("ignore")

    yaml_hp, hp = load_hparams(official)
    assert hp["gen"]["style_dim"] == 4
    B, S = hp["batch_size"], 64
    x_a_np, x_b_np, style_rand_np = make_images(B, hp["input_dim_a"], S)
    x_a = torch.from_numpy(x_a_np)
    x_b = torch.from_numpy(x_b_np)
    style_rand = torch.from_numpy(style_rand_np)

    rec = RandnRecorder(torch.randn)
    torch.randn = rec
    torch.manual_seed(0)
    tr = official_trainer.MUNIT_Trainer(hp)
    tr.cuda()  # as train.py (no-op shim)

    nets = {"gen_a": tr.gen_a, "gen_b": tr.gen_b, "dis_a": tr.dis_a, "dis_b": tr.dis_b}
    hp_json = json.dumps({"hparams_used": hp, "yaml_edges2shoes_folder": yaml_hp,
                          "image_rng": "numpy default_rng(1001) -> x_a, (2002) -> x_b, U[-1,1); "
                                       "default_rng(3003).standard_normal -> style_rand",
                          "torch_seed": 0}, sort_keys=True)
    meta_common = {"meta/hparams": np.array(hp_json), "meta/commit": np.array(commit),
                   "meta/torch_version": np.array(torch.__version__),
                   "meta/repo": np.array("https://github.com/NVlabs/MUNIT")}

    # ------------------------------------------------------------------
    # 1. modules.npz
    # ------------------------------------------------------------------
    M = {"x_a": x_a_np, "x_b": x_b_np}
    for nname, net in nets.items():
        for k, v in net.state_dict().items():
            M["%s/%s" % (nname, k)] = t2n(v)

    g = tr.gen_a
    hooks, acts = [], {}

    # Debug activations keep batch element 0 only (size budget). Every generator
    # op is per-sample (IN / LN / AdaIN statistics are per sample), so
    # act[0:1] of a batch-2 forward is exact.
    def add_hook(mod, key):
        def h(m, inp, out):
            acts[key] = t2n(out[:1])
        hooks.append(mod.register_forward_hook(h))

    # (outputs identical to gen_a/content, gen_a/style, gen_a/decoded are not repeated)
    for i, m in enumerate(g.enc_content.model[:-1]):
        add_hook(m, "gen_a/act/enc_content.model.%d_%s" % (i, type(m).__name__))
    add_hook(g.enc_content.model[-1].model[0], "gen_a/act/enc_content.model.%d.model.0_ResBlock"
             % (len(g.enc_content.model) - 1))
    for i, m in enumerate(g.enc_style.model[:-1]):
        add_hook(m, "gen_a/act/enc_style.model.%d_%s" % (i, type(m).__name__))
    for i, m in enumerate(g.dec.model[:-1]):  # last block's output == gen_a/decoded
        if type(m).__name__ != "Upsample":  # nearest x2 of the previous entry
            add_hook(m, "gen_a/act/dec.model.%d_%s" % (i, type(m).__name__))
    add_hook(g.dec.model[0].model[0], "gen_a/act/dec.model.0.model.0_ResBlock")
    # first AdaIN layer output (pre-ReLU), LayerNorm outputs (pre-ReLU)
    add_hook(g.dec.model[0].model[0].model[0].norm, "gen_a/act/dec.model.0.model.0.model.0.norm_AdaIN")
    add_hook(g.dec.model[2].norm, "gen_a/act/dec.model.2.norm_LayerNorm")  # first LayerNorm, pre-ReLU
    add_hook(g.mlp.model[0], "gen_a/act/mlp.model.0")
    add_hook(g.mlp.model[1], "gen_a/act/mlp.model.1")

    with torch.no_grad():
        for nname, x in (("gen_a", x_a), ("gen_b", x_b)):
            gen = nets[nname]
            content, style = gen.encode(x)
            adain = gen.mlp(style)
            decoded = gen.decode(content, style)
            for h in hooks:  # only the first (gen_a, own style) pass is hooked
                h.remove()
            hooks = []
            adain_rand = gen.mlp(style_rand)
            decoded_rand = gen.decode(content, style_rand)
            M["%s/content" % nname] = t2n(content)
            M["%s/style" % nname] = t2n(style)
            M["%s/adain_params" % nname] = t2n(adain)
            M["%s/decoded" % nname] = t2n(decoded)
            M["%s/style_rand" % nname] = style_rand_np
            M["%s/adain_params_rand" % nname] = t2n(adain_rand)
            M["%s/decoded_rand" % nname] = t2n(decoded_rand)
        M.update(acts)
        for nname, x in (("dis_a", x_a), ("dis_b", x_b)):
            dis = nets[nname]
            outs = dis(x)
            for i, o in enumerate(outs):
                M["%s/out/%d" % (nname, i)] = t2n(o)
            xd = x
            for i in range(1, len(outs)):
                xd = dis.downsample(xd)
                M["%s/downsampled_input/%d" % (nname, i)] = t2n(xd)

    M["meta/description"] = np.array([
        "MUNIT module-level goldens from official NVlabs/MUNIT (networks.py), tiny config (see meta/hparams).",
        "x_a, x_b: (2,3,64,64) float32 U[-1,1) inputs (numpy default_rng 1001 / 2002).",
        "<net>/<official state_dict name>: initial weights after MUNIT_Trainer.__init__ (torch.manual_seed(0); "
        "gens kaiming_normal fan_in, dis re-init N(0,0.02), biases 0, LayerNorm gamma U[0,1) beta 0). "
        "Conv OIHW, Linear (out,in). AdaIN running_mean/var are unused dummy buffers.",
        "gen_X/content, gen_X/style: gen_X.encode(x_X); gen_X/adain_params: gen_X.mlp(style) (B, 2*sum C_adain); "
        "gen_X/decoded: gen_X.decode(content, style).",
        "gen_X/style_rand (B,4,1,1, numpy default_rng 3003 normal) -> gen_X/adain_params_rand, gen_X/decoded_rand = decode(content, style_rand).",
        "dis_X/out/k: MsImageDis scale-k output on x_X (k=0 full res); dis_X/downsampled_input/k: input of scale k "
        "(AvgPool2d(3,2,1,count_include_pad=False) applied k times).",
        "gen_a/act/<module path>_<type>: gen_a forward-hook outputs on x_a (encode) and decode(gen_a/content, gen_a/style), "
        "BATCH ELEMENT 0 ONLY (shape (1,...)); norm_* hooks are pre-activation (ReLU applied after); "
        "outputs equal to gen_a/content, gen_a/style, gen_a/decoded are not repeated.",
    ])
    M.update(meta_common)

    # ------------------------------------------------------------------
    # 2. train_step.npz : one train.py iteration
    # ------------------------------------------------------------------
    T = {}  # inputs: x_a / x_b in modules.npz

    def param_names(opt_nets):
        d = {}
        for nname in opt_nets:
            for k, p in nets[nname].named_parameters():
                d[id(p)] = (nname, k, p)
        return d

    dis_params = param_names(["dis_a", "dis_b"])
    gen_params = param_names(["gen_a", "gen_b"])

    # Size budget: Adam moments are stored for gen_a / dis_a parameters only
    # (gen_b / dis_b follow the identical elementwise rule; their grads and
    # updated params are stored).
    def dump_opt(prefix_grad, prefix_after, prefix_adam, opt, params, moments_for):
        missing, steps = [], set()
        for _, (nname, k, p) in params.items():
            if p.grad is None:
                missing.append("%s/%s" % (nname, k))
                T["%s/%s/%s" % (prefix_grad, nname, k)] = np.zeros(tuple(p.shape), np.float32)
            else:
                T["%s/%s/%s" % (prefix_grad, nname, k)] = t2n(p.grad)
            T["%s/%s/%s" % (prefix_after, nname, k)] = t2n(p)
            st = opt.state[p]
            steps.add(float(st["step"]))
            if nname in moments_for:
                T["%s/%s/%s/exp_avg" % (prefix_adam, nname, k)] = t2n(st["exp_avg"])
                T["%s/%s/%s/exp_avg_sq" % (prefix_adam, nname, k)] = t2n(st["exp_avg_sq"])
                T["%s/%s/%s/step" % (prefix_adam, nname, k)] = np.asarray(float(st["step"]), np.float32)
        assert len(steps) == 1, steps
        T["%s/step" % prefix_adam] = np.asarray(steps.pop(), np.float32)
        return missing

    T["lr/gen_before_update_learning_rate"] = np.asarray(tr.gen_opt.param_groups[0]["lr"], np.float64)
    T["lr/dis_before_update_learning_rate"] = np.asarray(tr.dis_opt.param_groups[0]["lr"], np.float64)
    tr.update_learning_rate()  # train.py calls this at the top of every iteration
    T["lr/gen_after_update_learning_rate"] = np.asarray(tr.gen_opt.param_groups[0]["lr"], np.float64)
    T["lr/dis_after_update_learning_rate"] = np.asarray(tr.dis_opt.param_groups[0]["lr"], np.float64)

    # per-scale dis outputs during the updates
    dis_calls = []

    # calc_dis_loss / calc_gen_loss call self.forward() directly (no module hooks
    # fire), so wrap the bound forward on the instance for the duration.
    def wrap_forward(name, dis):
        orig = dis.forward

        def fwd(x):
            out = orig(x)
            dis_calls.append((name, [t2n(o) for o in out]))
            return out
        dis.forward = fwd

    wrap_forward("dis_a", tr.dis_a)
    wrap_forward("dis_b", tr.dis_b)

    # ---- dis_update ----
    _, dl = capture_locals(tr.dis_update, x_a, x_b, hp)
    for k in ("s_a", "s_b", "c_a", "c_b", "x_ba", "x_ab"):
        T["dis/%s" % k] = t2n(dl[k])
    assert [c[0] for c in dis_calls] == ["dis_a", "dis_a", "dis_b", "dis_b"]
    for (name, outs), kind in zip(dis_calls, ["fake", "real", "fake", "real"]):
        for i, o in enumerate(outs):
            T["dis/%s_out_%s/%d" % (name, kind, i)] = o
    dis_calls.clear()
    T["dis/loss_dis_a"] = t2n(tr.loss_dis_a)
    T["dis/loss_dis_b"] = t2n(tr.loss_dis_b)
    T["dis/loss_dis_total"] = t2n(tr.loss_dis_total)
    gen_grads_after_dis = [k for _, (n, k, p) in gen_params.items() if p.grad is not None]
    assert not gen_grads_after_dis, gen_grads_after_dis
    missing_dis = dump_opt("dis_grad", "dis_after", "dis_adam", tr.dis_opt, dis_params, ("dis_a",))

    # ---- gen_update ----
    _, gl = capture_locals(tr.gen_update, x_a, x_b, hp)
    for k in ("s_a", "s_b", "c_a", "s_a_prime", "c_b", "s_b_prime", "x_a_recon", "x_b_recon",
              "x_ba", "x_ab", "c_b_recon", "s_a_recon", "c_a_recon", "s_b_recon", "x_aba", "x_bab"):
        T["gen/%s" % k] = t2n(gl[k])
    assert [c[0] for c in dis_calls] == ["dis_a", "dis_b"]
    for name, outs in dis_calls:
        for i, o in enumerate(outs):
            T["gen/%s_out_fake/%d" % (name, i)] = o
    for k in ("loss_gen_recon_x_a", "loss_gen_recon_x_b", "loss_gen_recon_s_a", "loss_gen_recon_s_b",
              "loss_gen_recon_c_a", "loss_gen_recon_c_b", "loss_gen_cycrecon_x_a", "loss_gen_cycrecon_x_b",
              "loss_gen_adv_a", "loss_gen_adv_b", "loss_gen_vgg_a", "loss_gen_vgg_b", "loss_gen_total"):
        T["gen/%s" % k] = t2n(getattr(tr, k))
    missing_gen = dump_opt("gen_grad", "gen_after", "gen_adam", tr.gen_opt, gen_params, ("gen_a",))
    del tr.dis_a.forward, tr.dis_b.forward  # drop the instance wrappers
    assert not missing_dis and not missing_gen, (missing_dis, missing_gen)

    # ---- random draws ----
    for i, (desc, val) in enumerate(rec.records):
        T["rand/%d" % i] = val
    T["rand_order"] = np.array(["rand/%d: %s" % (i, d) for i, (d, _) in enumerate(rec.records)])

    # ---- learning-rate schedule as train.py sees it (official get_scheduler) ----
    dummy = torch.nn.Parameter(torch.zeros(1))
    dopt = torch.optim.Adam([dummy], lr=hp["lr"])
    sched = official_utils.get_scheduler(dopt, hp)
    step = hp["step_size"]
    probe = sorted({0, 1, step - 2, step - 1, step, 2 * step - 2, 2 * step - 1, 2 * step})
    lrs = {}
    for it in range(max(probe) + 1):
        sched.step()  # update_learning_rate() at the top of iteration `it`
        if it in probe:
            lrs[it] = dopt.param_groups[0]["lr"]
    T["lr_schedule/iteration"] = np.array(probe, np.int64)
    T["lr_schedule/lr_used"] = np.array([lrs[i] for i in probe], np.float64)

    T["meta/description"] = np.array([
        "One official train.py iteration (tiny config, meta/hparams) from the modules.npz initial state: "
        "trainer.update_learning_rate(); trainer.dis_update(x_a, x_b, hp); trainer.gen_update(x_a, x_b, hp).",
        "rand/<k>: every torch.randn draw since torch.manual_seed(0), in call order; rand_order describes each "
        "(rand/0,1 = trainer __init__ display styles s_a,s_b (display_size,style_dim,1,1); rand/2,3 = dis_update s_a,s_b; "
        "rand/4,5 = gen_update s_a,s_b).",
        "lr/*: optimiser lr before/after the single update_learning_rate() call (the lr used by this step is the 'after').",
        "dis/{s_a,s_b,c_a,c_b,x_ba,x_ab}: dis_update locals; dis/dis_X_out_{fake,real}/k: per-scale D outputs "
        "(fake = detached x_ba for dis_a / x_ab for dis_b); dis/loss_dis_a, loss_dis_b, loss_dis_total.",
        "dis_grad/<net>/<name>: grads after dis_update backward (before gen_update adds to them); "
        "dis_after/<net>/<name>: params after dis_opt.step(); dis_adam/dis_a/<name>/{exp_avg,exp_avg_sq,step} "
        "(moments stored for dis_a only, size budget; dis_adam/step = common step count).",
        "gen/<local>: gen_update locals (s_a,s_b random; *_prime encoded; *_recon; x_ba,x_ab; x_aba,x_bab); "
        "gen/dis_X_out_fake/k: D outputs on x_ba / x_ab; gen/loss_*: every loss attribute (vgg ones are 0).",
        "gen_grad/<net>/<name>, gen_after/<net>/<name>: gen_opt (gen_a+gen_b params, one Adam) after gen_update; "
        "gen_adam/gen_a/<name>/{exp_avg,exp_avg_sq,step} (moments for gen_a only, size budget; gen_adam/step common).",
        "Inputs x_a, x_b: see modules.npz (same arrays).",
        "lr_schedule/iteration, lr_schedule/lr_used: lr in effect for 0-based iteration i when "
        "update_learning_rate() is called at the top of each iteration (official get_scheduler, StepLR).",
    ])
    T.update(meta_common)

    np.savez_compressed(os.path.join(args.out, "modules.npz"), **M)
    np.savez_compressed(os.path.join(args.out, "train_step.npz"), **T)
    torch.randn = rec.orig
    print("commit", commit)
    print("modules.npz: %d arrays; train_step.npz: %d arrays" % (len(M), len(T)))
    for k in sorted(T):
        if k.startswith(("dis/loss", "gen/loss", "lr/")):
            print("  %s = %r" % (k, T[k].item()))
    for r in T["rand_order"]:
        print("  " + r)


if __name__ == "__main__":
    main()
