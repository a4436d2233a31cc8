"""Whole networks: fastconv float32 vs the NumPy reference (float64, the book's path) vs PyTorch, one run.

Usage:  python bench/bench_models.py [--batch 100] [--repeat 10] [--rounds 3] [--ref-repeat 3] [--threads N]
                                     [--models deepconvnet,simpleconvnet,lenet,kerascnn,resnet] [--no-torch]
                                     [--isa avx2|avx512]

For DeepConvNet, SimpleConvNet, LeNet, KerasCNN and ResNet-20 (fastconv.models, input batch x 1x28x28; VGG,
MobileNet and InceptionNet on request: --models vgg,mobilenet,inception):
  train  = one ``gradient(x, t)`` (forward + loss + backward); PyTorch: zero_grad, forward, cross-entropy,
           backward;
  infer  = ``predict(x)`` (inference mode); PyTorch: eval() forward under no_grad;
  infer1 = the same on one image: the latency a user serving the model sees.
The PyTorch peer is built from the fastconv network itself (same layers in the same order, residual and
branch blocks as modules, its float32 weights copied; TensorFlow's asymmetric 'same' padding spelt out with
F.pad for the check, torch's symmetric padding of the same output size for the timing), in NCHW and in
channels_last memory format, with ``torch.set_num_threads`` equal to
fastconv's thread count. PyTorch is optional: without it (or with --no-torch) its rows are left out.
Before timing, every network's fastconv gradients are checked against the reference (float64 to 1e-9,
float32 to 1e-3 of each gradient's scale or twice the PyTorch peer's own float32 error, dropout off; see
verify) and the PyTorch peer's loss against fastconv float32; then "All results match." Each time is the minimum of --repeat runs (--ref-repeat for the
slow reference) after one warm-up run, each block after a pause that lets NumPy's BLAS threads park (see
_timing.py); fastconv's and PyTorch's blocks alternate (--rounds blocks each, A B C then C B A ...) and each keeps
its best, so a load change on a shared host hits every side. --isa caps fastconv (FASTCONV_ISA) and PyTorch
(ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA) at the same instruction set in the same run.
Columns: x vs reference = reference time / time; x vs torch = best PyTorch layout's time / time.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from _timing import ISA_ENV, best_time, force_isa, interleaved_best, isa_line, machine_line

ISA = force_isa()  # before fastconv and torch load: they read the ISA caps once

import fastconv  # noqa: E402
from fastconv import models  # noqa: E402
from fastconv.reference import layers as ref_layers  # noqa: E402

try:
    import torch
except ImportError:  # PyTorch is only a benchmark peer
    torch = None

NAMES = ("deepconvnet", "simpleconvnet", "lenet", "kerascnn", "resnet", "vgg", "mobilenet", "inception")
DEFAULT = NAMES[:5]
DISPLAY = {"deepconvnet": "DeepConvNet", "simpleconvnet": "SimpleConvNet", "lenet": "LeNet",
           "kerascnn": "KerasCNN", "resnet": "ResNet-20", "vgg": "VGG", "mobilenet": "MobileNet",
           "inception": "InceptionNet"}


# ======================================================================================================
# networks


def build(name, dtype, layers=None, seed=0):
    return models.build(name, dtype=dtype, seed=seed, layers=layers)


def layer_list(net):
    return list(net.layers.values()) if isinstance(net.layers, dict) else list(net.layers)


def set_dropout(net, ratio):
    for layer in layer_list(net):
        if hasattr(layer, "dropout_ratio"):
            layer.dropout_ratio = ratio


def torch_sequential(net, dropout=True):
    """An equivalent ``torch.nn.Sequential`` (float32) holding a copy of ``net``'s weights.

    Layers are translated one by one from the fastconv network, so both have the same architecture by
    construction; ``dropout=False`` uses p=0 (the check), otherwise the network's ratio.
    """
    nn = torch.nn
    mods = []
    for layer in layer_list(net):
        kind = type(layer).__name__
        if kind == "Convolution":
            FN, C, FH, FW = layer.W.shape
            m = nn.Conv2d(C, FN, (FH, FW), stride=layer.stride, padding=layer.pad)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.asarray(layer.W, np.float32)))
                m.bias.copy_(torch.from_numpy(np.asarray(layer.b, np.float32)))
            mods.append(m)
        elif kind == "Affine":
            D, M = layer.W.shape
            m = nn.Linear(D, M)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.ascontiguousarray(np.asarray(layer.W, np.float32).T)))
                m.bias.copy_(torch.from_numpy(np.asarray(layer.b, np.float32)))
            mods += [nn.Flatten(), m]  # Flatten is a no-op on (N, D)
        elif kind == "Relu":
            mods.append(nn.ReLU())
        elif kind == "Sigmoid":
            mods.append(nn.Sigmoid())
        elif kind == "Pooling":
            mods.append(nn.MaxPool2d((layer.pool_h, layer.pool_w), stride=layer.stride, padding=layer.pad))
        elif kind == "AvgPooling":
            mods.append(nn.AvgPool2d((layer.pool_h, layer.pool_w), stride=layer.stride, padding=layer.pad))
        elif kind == "Dropout":
            mods.append(nn.Dropout(layer.dropout_ratio if dropout else 0.0))
        else:
            raise NotImplementedError(f"no PyTorch counterpart for {kind}")
    return nn.Sequential(*mods)


def _same_pads(n, k, s, d=1):
    """TensorFlow's 'same' (before, after) padding of a size-n axis: output ceil(n/s), the odd pixel after."""
    total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def _pads4(pad):
    """(top, bottom, left, right) of a numeric ``pad`` of the fastconv layers."""
    if np.isscalar(pad):
        return (int(pad),) * 4
    pad = tuple(int(p) for p in pad)
    return (pad[0], pad[0], pad[1], pad[1]) if len(pad) == 2 else pad


def _graph_module(net, exact, dropout=True):
    """A torch module for a graph network (``models.graph``: Chain, Residual, Branches of fastconv layers), its
    float32 weights copied, and {id(fastconv layer): torch module} for the gradients.

    exact: each 'same' padding spelt out (an F.pad where TensorFlow's rule puts the odd pixel after), for the
    check; otherwise torch's symmetric padding with the same output size and work, for the timing. dropout:
    False uses p=0 (the check), otherwise the network's ratio.
    """
    from fastconv.models.graph import Branches, Chain, Residual

    nn, F = torch.nn, torch.nn.functional
    mods = {}

    def t32(a):
        return torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32)))

    class Conv(nn.Conv2d):
        def __init__(self, layer):
            FN, Cg, FH, FW = layer.W.shape
            s, d = layer.stride, layer.dilation
            sym = (d * (FH - 1) // 2, d * (FW - 1) // 2) if layer.pad == "same" else 0
            if layer.pad not in ("same", "valid"):
                t, b, l, r = _pads4(layer.pad)
                sym = (t, l) if (t, l) == (b, r) else 0
                self.fixed = None if (t, l) == (b, r) else (l, r, t, b)
            else:
                self.fixed = None
            self.same = layer.pad == "same" and exact
            super().__init__(Cg * layer.groups, FN, (FH, FW), stride=s, padding=0 if self.same else sym,
                             dilation=d, groups=layer.groups, bias=layer.b is not None)
            with torch.no_grad():
                self.weight.copy_(t32(layer.W))
                if layer.b is not None:
                    self.bias.copy_(t32(layer.b))

        def forward(self, x):
            if self.same:
                (t, b), (l, r) = (_same_pads(x.shape[i + 2], self.kernel_size[i], self.stride[i], self.dilation[i])
                                  for i in range(2))
                x = F.pad(x, (l, r, t, b))
            elif self.fixed is not None:
                x = F.pad(x, self.fixed)
            return super().forward(x)

    class Res(nn.Module):
        def __init__(self, item):
            super().__init__()
            self.body = walk(item.body)
            self.shortcut = walk(item.shortcut) if item.shortcut is not None else nn.Identity()
            self.post = walk(item.post) if item.post is not None else nn.Identity()

        def forward(self, x):
            return self.post(self.body(x) + self.shortcut(x))

    class Cat(nn.Module):
        def __init__(self, item):
            super().__init__()
            self.branches = nn.ModuleList(walk(b) for b in item.branches)

        def forward(self, x):
            return torch.cat([b(x) for b in self.branches], dim=1)

    def layer_module(layer):
        kind = type(layer).__name__
        if kind == "Convolution":
            return Conv(layer)
        if kind == "SpatialBatchNormalization":
            m = nn.BatchNorm2d(layer.gamma.shape[0], eps=layer.eps, momentum=1.0 - layer.momentum)
            with torch.no_grad():
                m.weight.copy_(t32(layer.gamma))
                m.bias.copy_(t32(layer.beta))
            return m
        if kind == "GlobalAvgPooling":
            return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        if kind == "Affine":
            m = nn.Linear(*layer.W.shape, bias=layer.b is not None)
            with torch.no_grad():
                m.weight.copy_(t32(np.asarray(layer.W).T))
                m.bias.copy_(t32(layer.b))
            return nn.Sequential(nn.Flatten(), m)
        if kind == "Pooling" and np.isscalar(layer.pad):
            return nn.MaxPool2d((layer.pool_h, layer.pool_w), stride=layer.stride, padding=layer.pad)
        if kind == "Relu":
            return nn.ReLU()
        if kind == "Dropout":
            return nn.Dropout(layer.dropout_ratio if dropout else 0.0)
        raise NotImplementedError(f"no PyTorch counterpart for {kind}")

    def walk(item):
        if isinstance(item, Chain):
            return nn.Sequential(*(walk(it) for it in item.items))
        if isinstance(item, Residual):
            return Res(item)
        if isinstance(item, Branches):
            return Cat(item)
        m = layer_module(item)
        mods[id(item)] = m[-1] if isinstance(m, nn.Sequential) else m
        return m

    return walk(net.body), mods


def torch_peer(net):
    """The PyTorch peer of ``net`` for the timing: torch_sequential for the book's networks, _graph_module for
    the graph ones."""
    return _graph_module(net, exact=False)[0] if hasattr(net, "body") else torch_sequential(net)


def torch_grads(net, x, t):
    """Loss and gradients of ``net``'s PyTorch peer (dropout off, padding exact), keyed like ``net.params``."""
    graph = hasattr(net, "body")
    model, mods = _graph_module(net, exact=True, dropout=False) if graph else (torch_sequential(net, False), None)
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(t))
    loss.backward()
    grads = {}
    if graph:
        names = {"W": "weight", "gamma": "weight", "b": "bias", "beta": "bias"}
        for key, (layer, attr) in net._slots.items():
            g = getattr(mods[id(layer)], names[attr]).grad.numpy()
            grads[key] = g.T if type(layer).__name__ == "Affine" and attr == "W" else g
    else:
        params = [m for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        for i, m in enumerate(params):
            dW = m.weight.grad.numpy()
            grads[f"W{i + 1}"] = dW.T if isinstance(m, torch.nn.Linear) else dW
            grads[f"b{i + 1}"] = m.bias.grad.numpy()
    assert grads.keys() == net.params.keys()
    return float(loss.detach()), grads


# ======================================================================================================
# verification


def max_rel_err(g, ref):
    return max(np.abs(np.asarray(g[k], np.float64) - ref[k]).max() / np.abs(ref[k]).max() for k in ref)


def verify(names, use_torch, batch=8):
    """fastconv float64 against the reference to 1e-9; float32 against the reference run in float64 on the same
    float32-rounded input and weights, to 1e-3 of each gradient's scale or, where PyTorch's float32 peer is
    itself further from that float64 answer, to twice PyTorch's error (MobileNet at batch 8: both 10% off in
    the weight gradient of one pointwise layer, so the float32 rounding is amplified there,
    not a kernel's error: fastconv's float64 matches to 1e-10); the PyTorch peer's loss against fastconv's."""
    rng = np.random.default_rng(1)
    x = rng.random((batch, 1, 28, 28)).astype(np.float32).astype(np.float64)
    t = rng.integers(0, 10, batch)
    for name in names:
        ref = build(name, np.float64, ref_layers)
        set_dropout(ref, 0.0)
        net = build(name, np.float64)
        set_dropout(net, 0.0)
        err = max_rel_err(net.gradient(x, t), ref.gradient(x, t))
        if err > 1e-9:
            sys.exit(f"MISMATCH: {name} fastconv float64 vs reference: {err:.2e} > 1e-9")
        net = build(name, np.float32)
        set_dropout(net, 0.0)
        for k in ref.params:  # the reference on the float32 network's weights
            ref.params[k][...] = net.params[k]
        g_ref = ref.gradient(x, t)
        g = net.gradient(x.astype(np.float32), t)
        err, tol = max_rel_err(g, g_ref), 1e-3
        if use_torch:
            loss, g_t = torch_grads(net, x.astype(np.float32), t)
            tol = max(tol, 2 * max_rel_err(g_t, g_ref))
            if abs(loss - float(net.last_layer.loss)) > 1e-4 * abs(loss):
                sys.exit(f"MISMATCH: {name} PyTorch peer vs fastconv: loss {loss} vs {float(net.last_layer.loss)}")
        if err > tol:
            sys.exit(f"MISMATCH: {name} fastconv float32 vs reference: {err:.2e} > {tol:.1e}")
    print("All results match. Starting benchmarks.")


# ======================================================================================================
# timing


MODES = ("train", "infer", "infer1")


def numpy_net_fns(net, x, t, x1):
    return {"train": lambda: net.gradient(x, t), "infer": lambda: net.predict(x), "infer1": lambda: net.predict(x1)}


def torch_fns(model, x, t, x1, channels_last):
    """Callables for each mode; train() / eval() is set inside, as the mode of each block needs."""
    xt, tt, x1t = torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(x1)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        xt = xt.contiguous(memory_format=torch.channels_last)
        x1t = x1t.contiguous(memory_format=torch.channels_last)

    def train_step():
        model.train()
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xt), tt).backward()

    def infer(inp):
        model.eval()
        with torch.no_grad():
            model(inp)

    return {"train": train_step, "infer": lambda: infer(xt), "infer1": lambda: infer(x1t)}


def time_model(name, x, t, x1, args, use_torch):
    """{impl: {mode: seconds}}: fastconv and PyTorch in alternating blocks, the reference on its own."""
    fc = build(name, np.float32)
    ref = build(name, np.float64, ref_layers)
    impls = {"fastconv float32": numpy_net_fns(fc, x.astype(np.float32), t, x1.astype(np.float32))}
    if use_torch:
        impls["torch float32 NCHW"] = torch_fns(torch_peer(fc), x.astype(np.float32), t, x1.astype(np.float32),
                                                False)
        impls["torch float32 ch_last"] = torch_fns(torch_peer(fc), x.astype(np.float32), t,
                                                   x1.astype(np.float32), True)
    times = {impl: {} for impl in impls}
    for mode in MODES:
        best = interleaved_best({impl: fns[mode] for impl, fns in impls.items()}, rounds=args.rounds,
                                repeat=args.repeat)
        for impl, sec in best.items():
            times[impl][mode] = sec
    ref_fns = numpy_net_fns(ref, x, t, x1)
    times["reference float64 (book)"] = {mode: best_time(ref_fns[mode], args.ref_repeat) for mode in MODES}
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=100, help="images per step")
    parser.add_argument("--repeat", type=int, default=10, help="repeats per block for fastconv and PyTorch")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks per implementation")
    parser.add_argument("--ref-repeat", type=int, default=3, help="repeats for the (slow) NumPy reference")
    parser.add_argument("--threads", type=int, default=None, help="fastconv threads (default: all cores)")
    parser.add_argument("--models", default=",".join(DEFAULT), help="comma-separated subset of " + ",".join(NAMES))
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--isa", choices=sorted(ISA_ENV), help="cap fastconv and torch at this instruction set")
    args = parser.parse_args()
    for flag in ("batch", "repeat", "rounds", "ref_repeat", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')}: must be >= 1, got {value}")
    if args.threads is not None and args.threads > fastconv._cpu.thread_limit():
        parser.error(f"--threads: at most {fastconv._cpu.thread_limit()} here, got {args.threads}")
    names = [n.strip().lower() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(names) - set(NAMES))
    if unknown or not names:
        parser.error(f"--models: {'unknown ' + str(unknown) if unknown else 'none given'}; choose from "
                     f"{', '.join(NAMES)}")
    if args.threads:
        fastconv.set_num_threads(args.threads)
    use_torch = torch is not None and not args.no_torch
    print(machine_line())
    print(isa_line(ISA))
    if use_torch:
        torch.set_num_threads(fastconv.get_num_threads())
        print(f"torch {torch.__version__}, threads={torch.get_num_threads()}")
    elif not args.no_torch:
        print("torch not importable: PyTorch rows left out")
    verify(names, use_torch)

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 1, 28, 28))
    t = rng.integers(0, 10, args.batch)
    x1 = x[:1].copy()
    print(f"\nbatch {args.batch} x 1x28x28 (infer1: one image); min of {args.repeat} runs x {args.rounds} "
          f"alternating blocks (reference: {args.ref_repeat} runs); ms")
    print(f"{'model':13s} | {'mode':6s} | {'impl':24s} | {'ms':>9s} | {'x vs reference':>14s} | {'x vs torch':>10s}")
    for name in names:
        times = time_model(name, x, t, x1, args, use_torch)
        for mode in MODES:
            base = times["reference float64 (book)"][mode]
            best_torch = min((v[mode] for k, v in times.items() if k.startswith("torch")), default=None)
            for impl, per_mode in times.items():
                sec = per_mode[mode]
                vs_torch = f"{best_torch / sec:9.2f}x" if best_torch else f"{'-':>10s}"
                print(f"{DISPLAY[name]:13s} | {mode:6s} | {impl:24s} | {sec * 1e3:9.3f} | {base / sec:13.1f}x | "
                      f"{vs_torch}")


if __name__ == "__main__":
    main()
