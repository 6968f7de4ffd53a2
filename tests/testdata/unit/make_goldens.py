#!/usr/bin/env python
"""Produce golden tensors for the UNIT (VAEGen + MsImageDis) parity tests.

The official NVlabs/MUNIT code base (which also holds ``UNIT_Trainer``) is NOT
vendored here: it is imported at run time from a checkout given with
``--official`` and patched in memory only (CPU shims, noise recording).

    python make_goldens.py --official /tmp/unit_official/MUNIT --out .
    # optional cross-check of the embedded yaml values:
    python make_goldens.py --official ... --out ... \
        --unit-yaml /tmp/unit_official/UNIT/configs/unit_edges2shoes_folder.yaml

Writes ``modules.npz`` and ``train_step.npz`` into ``--out``.
See README.md next to this file for the layout of the arrays.
"""
import argparse
import copy
import json
import os
import subprocess
import sys
import types
import warnings

import numpy as np
import torch
import torch.nn as nn

# ----------------------------------------------------------------------------
# Hyper-parameters.
# BASE = the loss / optimiser / model values of the official UNIT yamls
# (mingyuliutw/UNIT configs/unit_edges2shoes_folder.yaml; identical in
# unit_edges2handbags / unit_summer2winter_yosemite256; the gta2city ones only
# differ by vgg_w: 1).  TINY_OVERRIDES = what we shrink for the goldens.
# ----------------------------------------------------------------------------
BASE = {
    'image_save_iter': 10000, 'image_display_iter': 500, 'display_size': 16,
    'snapshot_save_iter': 10000, 'log_iter': 10,
    'max_iter': 1000000, 'batch_size': 1, 'weight_decay': 0.0001,
    'beta1': 0.5, 'beta2': 0.999, 'init': 'kaiming', 'lr': 0.0001,
    'lr_policy': 'step', 'step_size': 100000, 'gamma': 0.5,
    'gan_w': 1, 'recon_x_w': 10, 'recon_h_w': 0, 'recon_kl_w': 0.01,
    'recon_x_cyc_w': 10, 'recon_kl_cyc_w': 0.01, 'vgg_w': 0,
    'gen': {'dim': 64, 'activ': 'relu', 'n_downsample': 2, 'n_res': 4,
            'pad_type': 'reflect'},
    'dis': {'dim': 64, 'norm': 'none', 'activ': 'lrelu', 'n_layer': 4,
            'gan_type': 'lsgan', 'num_scales': 3, 'pad_type': 'reflect'},
    'input_dim_a': 3, 'input_dim_b': 3, 'num_workers': 8, 'new_size': 256,
    'crop_image_height': 256, 'crop_image_width': 256,
}
TINY_OVERRIDES = {
    'batch_size': 2, 'vgg_w': 0, 'new_size': 64,
    'crop_image_height': 64, 'crop_image_width': 64,
    'gen': {'dim': 8, 'n_res': 2},
    'dis': {'dim': 8},
}
BATCH, HW = 2, 64
SEED_TORCH = 0
SEED_X_A, SEED_X_B = 1, 2


def make_hparams():
    hp = copy.deepcopy(BASE)
    for k, v in TINY_OVERRIDES.items():
        if isinstance(v, dict):
            hp[k].update(v)
        else:
            hp[k] = v
    return hp


def check_against_yaml(path):
    import yaml
    with open(path) as f:
        y = yaml.safe_load(f)
    bad = []
    for k, v in BASE.items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                if y.get(k, {}).get(kk) != vv:
                    bad.append((f'{k}.{kk}', vv, y.get(k, {}).get(kk)))
        elif y.get(k) != v:
            bad.append((k, v, y.get(k)))
    print(f'[yaml check] {path}: {"OK" if not bad else bad}')
    return bad


# ----------------------------------------------------------------------------
# Shims so that the official modules import and run on a CPU-only torch 2.x
# ----------------------------------------------------------------------------
def install_shims():
    # torchvision is only used by the data-loader / image-writing helpers.
    tv = types.ModuleType('torchvision')
    tv.transforms = types.ModuleType('torchvision.transforms')
    tv.utils = types.ModuleType('torchvision.utils')
    tv.models = types.ModuleType('torchvision.models')
    sys.modules.setdefault('torchvision', tv)
    sys.modules.setdefault('torchvision.transforms', tv.transforms)
    sys.modules.setdefault('torchvision.utils', tv.utils)
    sys.modules.setdefault('torchvision.models', tv.models)
    # torch.utils.serialization.load_lua was removed in torch 1.0 (VGG only).
    ser = types.ModuleType('torch.utils.serialization')

    def load_lua(*a, **k):
        raise RuntimeError('load_lua stub: VGG loss is disabled (vgg_w=0)')
    ser.load_lua = load_lua
    sys.modules['torch.utils.serialization'] = ser
    # .cuda() -> identity (CPU run).
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self


class NoiseRecorder:
    """Wraps torch.randn and VAEGen.encode to log every noise draw."""

    def __init__(self, networks_mod):
        self.draws = []          # list of dicts
        self.phase = 'init'
        self.ctx = None          # (gen_name, input tensor) inside encode
        self.names = {}          # id(module) -> name
        self._orig_randn = torch.randn
        rec = self

        def randn(*a, **k):
            out = rec._orig_randn(*a, **k)
            rec.draws.append({'phase': rec.phase, 'ctx': rec.ctx,
                              'value': out.detach().clone()})
            return out
        torch.randn = randn

        orig_encode = networks_mod.VAEGen.encode

        def encode(mod, images):
            prev = rec.ctx
            rec.ctx = (rec.names.get(id(mod), '?'), images)
            try:
                return orig_encode(mod, images)
            finally:
                rec.ctx = prev
        networks_mod.VAEGen.encode = encode


class LocalsGrabber:
    """sys.setprofile hook: copies the tensor locals of given functions
    at the moment they return (so we get the official variable names)."""

    def __init__(self, funcs):
        self.codes = {f.__code__: f.__name__ for f in funcs}
        self.captured = {}

    def __call__(self, frame, event, arg):
        if event == 'return' and frame.f_code in self.codes:
            d = {}
            for k, v in frame.f_locals.items():
                if isinstance(v, torch.Tensor):
                    d[k] = v
            self.captured[self.codes[frame.f_code]] = d

    def __enter__(self):
        sys.setprofile(self)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)


def t2n(t):
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy().copy()
    return np.asarray(t, dtype=np.float32)


def sarr(strings):
    return np.array(list(strings), dtype=np.str_)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--official', required=True, help='path to NVlabs/MUNIT checkout')
    ap.add_argument('--out', required=True, help='output directory')
    ap.add_argument('--unit-yaml', default=None,
                    help='optional official UNIT yaml to cross-check BASE against')
    ap.add_argument('--threads', type=int, default=1)
    args = ap.parse_args()

    official = os.path.abspath(args.official)
    os.makedirs(args.out, exist_ok=True)
    warnings.filterwarnings('ignore')
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)

    try:
        commit = subprocess.check_output(['git', '-C', official, 'rev-parse', 'HEAD'],
                                         text=True).strip()
    except Exception:
        commit = 'unknown'
    if args.unit_yaml:
        bad = check_against_yaml(args.unit_yaml)
        assert not bad, bad

    install_shims()
    sys.path.insert(0, official)
    import networks  # noqa: E402  (official)
    import trainer as trainer_mod  # noqa: E402  (official)

    rec = NoiseRecorder(networks)
    hp = make_hparams()

    torch.manual_seed(SEED_TORCH)
    tr = trainer_mod.UNIT_Trainer(hp)
    tr.cuda()   # no-op (as train.py does)
    nets = {'gen_a': tr.gen_a, 'gen_b': tr.gen_b, 'dis_a': tr.dis_a, 'dis_b': tr.dis_b}
    for n, m in nets.items():
        rec.names[id(m)] = n
    assert all(d['phase'] == 'init' for d in rec.draws)
    n_init_draws = len(rec.draws)   # randn during construction (none expected)

    x_a_np = np.random.default_rng(SEED_X_A).uniform(-1, 1, (BATCH, hp['input_dim_a'], HW, HW)).astype(np.float32)
    x_b_np = np.random.default_rng(SEED_X_B).uniform(-1, 1, (BATCH, hp['input_dim_b'], HW, HW)).astype(np.float32)
    x_a = torch.from_numpy(x_a_np.copy())
    x_b = torch.from_numpy(x_b_np.copy())

    meta_common = {
        'meta/hparams': np.array(json.dumps(hp, sort_keys=True)),
        'meta/commit': np.array(commit),
        'meta/repo': np.array('https://github.com/NVlabs/MUNIT'),
        'meta/torch_version': np.array(torch.__version__),
        'meta/seeds': np.array(json.dumps({'torch.manual_seed': SEED_TORCH,
                                           'x_a numpy default_rng': SEED_X_A,
                                           'x_b numpy default_rng': SEED_X_B,
                                           'x distribution': 'uniform[-1,1) float32'})),
    }

    # ------------------------------------------------------------------
    # 1. modules.npz
    # ------------------------------------------------------------------
    M = {'x_a': x_a_np, 'x_b': x_b_np}
    init_state = {}
    for n, m in nets.items():
        for k, v in m.state_dict().items():
            M[f'{n}/{k}'] = t2n(v)
            init_state[f'{n}/{k}'] = t2n(v)

    with torch.no_grad():
        for n, x in (('gen_a', x_a), ('gen_b', x_b)):
            g = nets[n]
            h = g.enc(x)
            with torch.random.fork_rng():
                h2, _ = g.encode(x)   # official API; noise discarded, RNG restored
            assert torch.equal(h, h2)
            M[f'{n}/hiddens'] = t2n(h)
            M[f'{n}/decoded'] = t2n(g.decode(h))
        # the fork_rng'd encode() calls above were only a consistency check: forget their draws
        del rec.draws[n_init_draws:]

        # per-block activations of gen_a (forward hooks, cloned)
        acts = {}
        hooks = []
        g = tr.gen_a
        enc_names = ['enc_conv0_7x7'] + [f'enc_down{i + 1}' for i in range(hp['gen']['n_downsample'])] + ['enc_resblocks']
        for i, name in enumerate(enc_names):
            hooks.append(g.enc.model[i].register_forward_hook(
                lambda mod, inp, out, name=name: acts.__setitem__(name, out.detach().clone())))
        # resblocks individually
        for j, rb in enumerate(g.enc.model[len(enc_names) - 1].model):
            hooks.append(rb.register_forward_hook(
                lambda mod, inp, out, name=f'enc_resblock{j}': acts.__setitem__(name, out.detach().clone())))
        dec_names = ['dec_resblocks']
        for i in range(hp['gen']['n_downsample']):
            dec_names += [f'dec_up{i + 1}_nearest', f'dec_up{i + 1}_conv5x5_ln_relu']
        dec_names += ['dec_out_conv7x7_tanh']
        assert len(dec_names) == len(g.dec.model)
        for i, name in enumerate(dec_names):
            hooks.append(g.dec.model[i].register_forward_hook(
                lambda mod, inp, out, name=name: acts.__setitem__(name, out.detach().clone())))
        for j, rb in enumerate(g.dec.model[0].model):
            hooks.append(rb.register_forward_hook(
                lambda mod, inp, out, name=f'dec_resblock{j}': acts.__setitem__(name, out.detach().clone())))
        # pre-norm conv output of the first LN block (to debug LayerNorm alone)
        hooks.append(g.dec.model[2].conv.register_forward_hook(
            lambda mod, inp, out: acts.__setitem__('dec_up1_conv5x5_preLN', out.detach().clone())))
        hooks.append(g.dec.model[2].norm.register_forward_hook(
            lambda mod, inp, out: acts.__setitem__('dec_up1_LN_out', out.detach().clone())))
        h = g.enc(x_a)
        y = g.dec(h)
        for hk in hooks:
            hk.remove()
        assert torch.equal(acts['enc_resblocks'], h) and torch.equal(acts['dec_out_conv7x7_tanh'], y)
        # size budget: skip the nearest-upsample outputs (pure repeats of the previous
        # array) and the two arrays identical to gen_a/hiddens and gen_a/decoded
        keep = [k for k in enc_names + [f'enc_resblock{j}' for j in range(hp['gen']['n_res'])] +
                dec_names + [f'dec_resblock{j}' for j in range(hp['gen']['n_res'])] +
                ['dec_up1_conv5x5_preLN', 'dec_up1_LN_out']
                if not k.endswith('_nearest') and k not in ('enc_resblocks', 'dec_out_conv7x7_tanh')]
        for k in keep:
            M[f'gen_a/act/{k}'] = t2n(acts[k])

        for n, x in (('dis_a', x_a), ('dis_b', x_b)):
            d = nets[n]
            outs = d(x)
            for s, o in enumerate(outs):
                M[f'{n}/out/{s}'] = t2n(o)
            xs = x
            for s in range(1, hp['dis']['num_scales']):
                xs = d.downsample(xs)
                M[f'{n}/downsampled_input/{s}'] = t2n(xs)

    # train mode vs eval mode must not matter for these nets
    with torch.no_grad():
        tr.eval()
        assert torch.equal(tr.gen_a.decode(tr.gen_a.enc(x_a)), torch.from_numpy(M['gen_a/decoded']))
        assert torch.equal(tr.dis_b(x_b)[2], torch.from_numpy(M['dis_b/out/2']))
        tr.train()

    mod_desc = [
        'UNIT (VAEGen x2 + MsImageDis x2) golden tensors from the official NVlabs/MUNIT UNIT_Trainer, tiny config, CPU float32.',
        'x_a, x_b: inputs (2,3,64,64) NCHW, uniform[-1,1) from numpy default_rng(1) / default_rng(2).',
        '<net>/<state_dict key>: initial parameters of gen_a, gen_b, dis_a, dis_b after UNIT_Trainer.__init__ (kaiming for gens, N(0,0.02) for dis, LayerNorm gamma U[0,1), beta 0, conv bias 0). Conv kernels OIHW.',
        'gen_X/hiddens = gen_X.enc(x_X) (encoder output = mean, no noise); gen_X/decoded = gen_X.dec(hiddens) (no noise).',
        'gen_a/act/*: per-block activations of gen_a on x_a: enc_conv0_7x7, enc_down1, enc_down2, enc_resblock0, enc_resblock1 (= gen_a/hiddens), dec_resblock0, dec_resblock1 (= dec_resblocks), dec_upK_conv5x5_ln_relu (after nearest x2 upsample + conv + LN + ReLU); the final 7x7 tanh output is gen_a/decoded. dec_up1_conv5x5_preLN (conv output) and dec_up1_LN_out (LN output, before ReLU) isolate the first LayerNorm.',
        'dis_X/out/s: MsImageDis outputs on real x_X at scale s (0 = full res); dis_X/downsampled_input/s: the AvgPool2d(3,2,1,count_include_pad=False) input fed to scale s.',
        'All networks have no train/eval-dependent layers (checked: eval() gives identical outputs).',
    ]
    M['meta/description'] = sarr(mod_desc)
    M.update(meta_common)

    # ------------------------------------------------------------------
    # 2. train_step.npz : one iteration as train.py does it
    #    trainer.update_learning_rate(); dis_update(); gen_update()
    # ------------------------------------------------------------------
    T = {}
    param_names = {}
    for n in ('gen_a', 'gen_b', 'dis_a', 'dis_b'):
        for k, p in nets[n].named_parameters():
            param_names[id(p)] = (n, k)
    dis_order = [f'{n}/{k}' for n in ('dis_a', 'dis_b') for k, _ in nets[n].named_parameters()]
    gen_order = [f'{n}/{k}' for n in ('gen_a', 'gen_b') for k, _ in nets[n].named_parameters()]
    assert [param_names[id(p)] for p in tr.dis_opt.param_groups[0]['params']] == \
        [tuple(s.split('/', 1)) for s in dis_order]
    assert [param_names[id(p)] for p in tr.gen_opt.param_groups[0]['params']] == \
        [tuple(s.split('/', 1)) for s in gen_order]
    assert len(tr.dis_opt.param_groups) == 1 and len(tr.gen_opt.param_groups) == 1
    T['dis_opt/param_order'] = sarr(dis_order)
    T['gen_opt/param_order'] = sarr(gen_order)
    grp = {k: v for k, v in tr.gen_opt.param_groups[0].items() if k != 'params'}
    T['meta/gen_opt_group'] = np.array(json.dumps(grp, sort_keys=True, default=str))
    grp = {k: v for k, v in tr.dis_opt.param_groups[0].items() if k != 'params'}
    T['meta/dis_opt_group'] = np.array(json.dumps(grp, sort_keys=True, default=str))

    T['lr/at_construction'] = np.float64(tr.gen_opt.param_groups[0]['lr'])
    T['lr/scheduler_last_epoch_at_construction'] = np.int64(tr.gen_scheduler.last_epoch)
    tr.update_learning_rate()          # train.py calls this at the top of every iteration
    T['lr/used_gen'] = np.float64(tr.gen_opt.param_groups[0]['lr'])
    T['lr/used_dis'] = np.float64(tr.dis_opt.param_groups[0]['lr'])
    T['lr/scheduler_last_epoch_used'] = np.int64(tr.gen_scheduler.last_epoch)

    pre_gen_state = {k: v.clone() for k, v in
                     [(f'{n}/{kk}', p.detach()) for n in ('gen_a', 'gen_b') for kk, p in nets[n].named_parameters()]}

    grab = LocalsGrabber([trainer_mod.UNIT_Trainer.dis_update, trainer_mod.UNIT_Trainer.gen_update])
    n_before = len(rec.draws)
    with grab:
        rec.phase = 'dis_update'
        tr.dis_update(x_a, x_b, hp)
    dis_grads = {f'{n}/{k}': t2n(p.grad) for n in ('dis_a', 'dis_b') for k, p in nets[n].named_parameters()}
    for n in ('gen_a', 'gen_b'):
        for k, p in nets[n].named_parameters():
            assert p.grad is None, 'gen got grads in dis_update?'
    T['dis/loss_dis_a'] = t2n(tr.loss_dis_a)
    T['dis/loss_dis_b'] = t2n(tr.loss_dis_b)
    T['dis/loss_dis_total'] = t2n(tr.loss_dis_total)
    for k, v in grab.captured['dis_update'].items():
        if k in ('x_a', 'x_b') or k.startswith('n_'):
            continue
        if k in ('h_a', 'h_b'):   # = modules.npz gen_X/hiddens (gens not stepped yet); not stored
            assert np.array_equal(t2n(v), M['gen_a/hiddens' if k == 'h_a' else 'gen_b/hiddens'])
            continue
        T[f'dis/{k}'] = t2n(v)
    for k, v in dis_grads.items():
        T[f'dis_grad/{k}'] = v
    for n in ('dis_a', 'dis_b'):
        for k, p in nets[n].named_parameters():
            T[f'dis_after/{n}/{k}'] = t2n(p)
            st = tr.dis_opt.state[p]
            T[f'dis_adam/{n}/{k}/exp_avg'] = t2n(st['exp_avg'])
            T[f'dis_adam/{n}/{k}/exp_avg_sq'] = t2n(st['exp_avg_sq'])
            step_d = float(st['step'])
    T['dis_adam/step'] = np.float32(step_d)
    dis_after_snapshot = {f'{n}/{k}': p.detach().clone() for n in ('dis_a', 'dis_b') for k, p in nets[n].named_parameters()}

    with grab:
        rec.phase = 'gen_update'
        tr.gen_update(x_a, x_b, hp)
    rec.phase = 'done'
    # gen_update must not change dis params (only the gen optimiser steps)
    for n in ('dis_a', 'dis_b'):
        for k, p in nets[n].named_parameters():
            assert torch.equal(p.detach(), dis_after_snapshot[f'{n}/{k}'])

    loss_names = sorted(k for k in vars(tr) if k.startswith('loss_gen_'))
    for k in loss_names:
        T[f'gen/{k}'] = t2n(getattr(tr, k))
    gl = grab.captured['gen_update']
    for k, v in gl.items():
        if k in ('x_a', 'x_b') or k.startswith('n_'):
            continue
        if k in ('h_a', 'h_b'):   # = modules.npz gen_X/hiddens (gens not stepped yet); not stored
            assert np.array_equal(t2n(v), M['gen_a/hiddens' if k == 'h_a' else 'gen_b/hiddens'])
            continue
        T[f'gen/{k}'] = t2n(v)
    for n in ('gen_a', 'gen_b'):
        for k, p in nets[n].named_parameters():
            T[f'gen_grad/{n}/{k}'] = t2n(p.grad)
            T[f'gen_after/{n}/{k}'] = t2n(p)
            st = tr.gen_opt.state[p]
            T[f'gen_adam/{n}/{k}/exp_avg'] = t2n(st['exp_avg'])
            T[f'gen_adam/{n}/{k}/exp_avg_sq'] = t2n(st['exp_avg_sq'])
            step_g = float(st['step'])
    T['gen_adam/step'] = np.float32(step_g)

    # ---- noise draws, in call order -------------------------------------
    draws = rec.draws[n_before:]
    assert all(d['ctx'] is not None for d in draws), 'noise drawn outside VAEGen.encode'
    loc = {'dis_update': grab.captured['dis_update'], 'gen_update': gl}
    order = []
    for i, d in enumerate(draws):
        gname, inp = d['ctx']
        L = loc[d['phase']]
        in_name = next((k for k in ('x_a', 'x_b', 'x_ba', 'x_ab') if k in L and L[k] is inp), '?')
        n_name = next((k for k, v in L.items() if k.startswith('n_') and torch.equal(v, d['value'])), '?')
        assert in_name != '?' and n_name != '?'
        order.append(f'{d["phase"]}: {gname}.encode({in_name}) -> {n_name}  shape={tuple(d["value"].shape)}')
        T[f'noise/{i}'] = t2n(d['value'])
    T['noise_order'] = sarr(order)
    T['noise_count'] = np.int64(len(draws))

    # ---- learning rate after ----------------------------------------------
    tr.update_learning_rate()
    T['lr/after_next_update_learning_rate'] = np.float64(tr.gen_opt.param_groups[0]['lr'])
    # the step schedule as the official get_scheduler builds it
    import utils as official_utils  # noqa: E402
    dummy = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=hp['lr'])
    sch = official_utils.get_scheduler(dummy, hp)
    probe = [0, 1, 2, 99998, 99999, 100000, 100001, 199999, 200000, 300000]
    got = {}
    for e in range(1, max(probe) + 1):
        sch.step()
        if e in probe:
            got[e] = dummy.param_groups[0]['lr']
    got[0] = hp['lr']
    T['lr/schedule_last_epoch'] = np.array(probe, dtype=np.int64)
    T['lr/schedule_lr'] = np.array([got[e] for e in probe], dtype=np.float64)

    # ------------------------------------------------------------------
    # self-checks (independent recomputation from the captured tensors)
    # ------------------------------------------------------------------
    def close(a, b, tol=1e-6):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return np.allclose(a, b, rtol=tol, atol=tol)
    g = {k: v.detach() for k, v in gl.items()}
    xa, xb = x_a, x_b
    mae = lambda u, v: float(torch.mean(torch.abs(u - v)))
    kl = lambda m: float(torch.mean(m ** 2))
    assert close(T['gen/loss_gen_recon_x_a'], mae(g['x_a_recon'], xa))
    assert close(T['gen/loss_gen_recon_x_b'], mae(g['x_b_recon'], xb))
    assert close(T['gen/loss_gen_cyc_x_a'], mae(g['x_aba'], xa))
    assert close(T['gen/loss_gen_cyc_x_b'], mae(g['x_bab'], xb))
    assert close(T['gen/loss_gen_recon_kl_a'], kl(g['h_a']))
    assert close(T['gen/loss_gen_recon_kl_cyc_aba'], kl(g['h_a_recon']))
    assert close(T['gen/loss_gen_recon_kl_cyc_bab'], kl(g['h_b_recon']))
    # h_a_recon comes from gen_b.encode(x_ab): recompute with pre-step gen_b weights
    gb = copy.deepcopy(tr.gen_b)
    with torch.no_grad():
        for k, p in gb.named_parameters():
            p.copy_(pre_gen_state[f'gen_b/{k}'])
        assert torch.allclose(gb.enc(g['x_ab']), g['h_a_recon'], atol=1e-6)
        assert torch.allclose(gb.dec(g['h_a'] + g['n_a']), g['x_ab'], atol=1e-6)
    # Adam (coupled L2 weight decay) one-step check
    b1, b2, eps, wd, lr = hp['beta1'], hp['beta2'], 1e-8, hp['weight_decay'], T['lr/used_gen']
    maxdev = 0.0
    for key in gen_order:
        p0 = pre_gen_state[key].double().numpy()
        gr = T[f'gen_grad/{key}'].astype(np.float64) + wd * p0
        m = (1 - b1) * gr
        v = (1 - b2) * gr * gr
        p1 = p0 - lr * (m / (1 - b1)) / (np.sqrt(v / (1 - b2)) + eps)
        maxdev = max(maxdev, float(np.abs(p1 - T[f'gen_after/{key}']).max()))
        assert close(m, T[f'gen_adam/{key}/exp_avg'], 1e-5)
    print(f'[check] gen Adam closed-form max |dev| = {maxdev:.3e}')
    assert maxdev < 1e-6
    for key in dis_order:
        p0 = init_state[key].astype(np.float64)
        gr = T[f'dis_grad/{key}'].astype(np.float64) + wd * p0
        p1 = p0 - lr * gr / (np.abs(gr) + eps)   # one step: m_hat/sqrt(v_hat) = g/|g|
        assert np.abs(p1 - T[f'dis_after/{key}']).max() < 1e-6
    tot = sum(float(T[f'gen/{k}']) * w for k, w in [
        ('loss_gen_adv_a', hp['gan_w']), ('loss_gen_adv_b', hp['gan_w']),
        ('loss_gen_recon_x_a', hp['recon_x_w']), ('loss_gen_recon_kl_a', hp['recon_kl_w']),
        ('loss_gen_recon_x_b', hp['recon_x_w']), ('loss_gen_recon_kl_b', hp['recon_kl_w']),
        ('loss_gen_cyc_x_a', hp['recon_x_cyc_w']), ('loss_gen_recon_kl_cyc_aba', hp['recon_kl_cyc_w']),
        ('loss_gen_cyc_x_b', hp['recon_x_cyc_w']), ('loss_gen_recon_kl_cyc_bab', hp['recon_kl_cyc_w'])])
    assert close(tot, T['gen/loss_gen_total'], 1e-5)
    print('[check] all self-checks passed')

    step_desc = [
        'One official training iteration (train.py order): trainer.update_learning_rate(); trainer.dis_update(x_a,x_b,hp); trainer.gen_update(x_a,x_b,hp). Starts from modules.npz parameters and x_a/x_b.',
        'noise/<k>: every torch.randn draw during the iteration in call order (all come from VAEGen.encode); noise_order[k] says which encode call and which trainer local it became.',
        'dis/*: dis_update losses and its locals x_ba = gen_a.dec(h_b+n_b), x_ab = gen_b.dec(h_a+n_a) with h_X = modules.npz gen_X/hiddens, n_a = noise/0, n_b = noise/1 (fakes are detached before the dis).',
        'dis_grad/<net>/<name>: raw .grad of dis params after dis_update backward (no weight decay added). dis_after: params after dis_opt.step(). dis_adam: Adam state after the step; dis_adam/step = step count.',
        'gen/loss_gen_*: every loss attribute the trainer sets (vgg ones are 0 since vgg_w=0); gen/loss_gen_total. gen/<local>: gen_update locals (h_a,h_b are not stored: equal to modules.npz gen_X/hiddens; x_a_recon,x_b_recon,x_ba,x_ab,h_b_recon=gen_a.enc(x_ba),h_a_recon=gen_b.enc(x_ab),x_aba,x_bab). gen_update uses the dis AFTER the dis step.',
        'gen_grad/gen_after/gen_adam: as for dis, for gen_a+gen_b (one Adam). gen_opt/param_order and dis_opt/param_order: parameter order inside each single Adam param group.',
        'lr/*: lr at construction, lr used by this iteration (after the first update_learning_rate), lr after the next update_learning_rate, and the StepLR schedule probed at several scheduler epochs (epoch e is used by 0-based iteration e-1).',
    ]
    T['meta/description'] = sarr(step_desc)
    T.update(meta_common)

    for fn, D in (('modules.npz', M), ('train_step.npz', T)):
        path = os.path.join(args.out, fn)
        np.savez_compressed(path, **D)
        print(f'wrote {path}: {len(D)} arrays, {os.path.getsize(path) / 1e6:.2f} MB')
    print('noise order:')
    for s in order:
        print('  ', s)


if __name__ == '__main__':
    main()
