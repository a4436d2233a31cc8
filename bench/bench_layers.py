"""DeepConvNet and SimpleConvNet (book ch08 / ch07) on fastconv.layers vs the NumPy reference vs PyTorch.

Usage:  python bench/bench_layers.py [--batch 100] [--repeat 7] [--rounds 3] [--threads N] [--no-torch] [--quick]
                                     [--isa avx2|avx512]

--isa caps fastconv (FASTCONV_ISA) and PyTorch (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA) at the same instruction
set in the same run, so each of fastconv's paths is measured against a peer at its level.

Implementations, all built from the same seed with the same weights:
  fastconv float32 / float64   the book's networks on fastconv.layers;
  reference float64 (book)     the book's code path (fastconv.reference.layers) with float64 parameters, the
                               book's default; "x vs reference" is measured against it; reference float32 too;
  torch NCHW / channels_last   (when PyTorch is importable) the same architecture as torch.nn.Sequential
                               (Conv2d, ReLU, MaxPool2d, Flatten, Linear, Dropout), float32, weights copied from
                               the fastconv network; channels_last converts the model and the input with
                               memory_format=torch.channels_last. A training step is zero_grad + forward +
                               F.cross_entropy + backward (the book's gradient(): forward, softmax loss, backward;
                               no optimizer update on either side), dropout included for DeepConvNet; inference is
                               model.eval() under torch.inference_mode(). Neither torch nor fastconv's networks compute
                               the input's gradient (nothing asks for it; fastconv's first Convolution runs
                               backward_params); the book's first Convolution.backward does.
Before timing, gradients of every implementation are checked against the float64 reference (dropout off), and
each DeepConvNet convolution's forward, dx, dW and db against torch. Then:
  1. training step and inference of both networks, batch --batch x 1x28x28;
  2. each DeepConvNet layer's forward and backward on the activations of a step (torch: F.conv2d, and
     torch.autograd.grad for dx, dW and db, for the convolutions); "bwd*" is the first layer's backward as a
     step runs it, dW and db only (the reference: the book's backward, dx included);
  3. each Convolution + Relu pair's forward, fastconv fused (Convolution.forward_relu, what the networks run)
     against the two layers' forwards one after the other, and torch's F.relu(F.conv2d(...)).
torch and fastconv run with the same thread count (--threads, default all cores); the reference runs
as the book's code does, on NumPy's BLAS with its default threads. Measurement blocks of the
implementations alternate (--rounds blocks each, min of --repeat runs after a warm-up, a pause before each
block so other libraries' spinning threads park; see _timing.py) and each keeps its best block, so load changes
on a shared host do not favour one side. Ratios are measured side by side in one run; absolute times vary.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from _timing import ISA_ENV, force_isa, interleaved_best, isa_line, machine_line

ISA = force_isa()  # before fastconv and torch load: they read the ISA caps once

import fastconv  # noqa: E402
from fastconv.models import DeepConvNet, SimpleConvNet  # noqa: E402
from fastconv.reference import layers as ref_layers  # noqa: E402

NETS = {"DeepConvNet": DeepConvNet, "SimpleConvNet": SimpleConvNet}
REF = "reference float64 (book)"
T_NCHW, T_CL = "torch NCHW", "torch channels_last"


def build(cls, dtype, layers, seed=0):
    np.random.seed(seed)
    return cls(dtype=dtype, layers=layers)


def net_layers(net) -> list:
    return list(net.layers.values()) if isinstance(net.layers, dict) else list(net.layers)


def set_dropout(net, ratio):
    for layer in net_layers(net):
        if hasattr(layer, "dropout_ratio"):
            layer.dropout_ratio = ratio


def import_torch(disabled: bool):
    if disabled:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


# ======================================================================================================
# the same networks in PyTorch


def torch_model(torch, net, channels_last: bool):
    """torch.nn.Sequential with the layers and float32 weights of the book network ``net``."""
    nn = torch.nn
    mods, flat = [], False

    def copy(param, value):
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))

    for layer in net_layers(net):
        kind = type(layer).__name__
        if kind == "Convolution":
            FN, C, FH, FW = layer.W.shape
            m = nn.Conv2d(C, FN, (FH, FW), stride=layer.stride, padding=layer.pad)
            copy(m.weight, layer.W)
            copy(m.bias, layer.b)
        elif kind == "Relu":
            m = nn.ReLU()
        elif kind == "Pooling":
            m = nn.MaxPool2d((layer.pool_h, layer.pool_w), stride=layer.stride, padding=layer.pad)
        elif kind == "Affine":
            if not flat:  # the book's Affine flattens (N, C, H, W) to (N, C*H*W), as nn.Flatten does
                mods.append(nn.Flatten())
                flat = True
            m = nn.Linear(layer.W.shape[0], layer.W.shape[1])
            copy(m.weight, layer.W.T)
            copy(m.bias, layer.b)
        elif kind == "Dropout":
            m = nn.Dropout(layer.dropout_ratio)
        else:
            raise TypeError(f"no torch counterpart for layer {kind}")
        mods.append(m)
    model = nn.Sequential(*mods)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def torch_input(torch, x, channels_last: bool):
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return xt.to(memory_format=torch.channels_last) if channels_last else xt


def torch_step(torch, model, xt, tt):
    model.train()
    model.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(xt), tt)
    loss.backward()
    return loss


def torch_infer(torch, model, xt):
    model.eval()
    with torch.inference_mode():
        return model(xt)


def torch_grads(model) -> dict:
    """Gradients named like the book's (W1, b1, ...; Linear weights transposed back to (in, out))."""
    grads, i = {}, 0
    for m in model:
        if hasattr(m, "weight"):
            i += 1
            w = m.weight.grad.detach().contiguous().numpy()
            grads[f"W{i}"] = w.T if w.ndim == 2 else w
            grads[f"b{i}"] = m.bias.grad.detach().numpy()
    return grads


# ======================================================================================================
# verification


def check(name, got: dict, ref: dict, rtol: float) -> None:
    for key in ref:
        scale = np.abs(ref[key]).max()
        err = np.abs(np.asarray(got[key], np.float64) - ref[key]).max() / scale
        if not err <= rtol:
            sys.exit(f"MISMATCH: {name} {key} relative error {err:.2e} > {rtol:.0e}")


def verify(torch, batch=8):
    """Every implementation's gradients against the float64 reference (dropout off); conv layers against torch."""
    rng = np.random.default_rng(1)
    x = rng.random((batch, 1, 28, 28))
    t = rng.integers(0, 10, batch)
    for net_name, cls in NETS.items():
        ref = build(cls, np.float64, ref_layers)
        set_dropout(ref, 0.0)
        g_ref = ref.gradient(x, t)
        for dtype, rtol in ((np.float64, 1e-9), (np.float32, 2e-3)):
            net = build(cls, dtype, None)
            set_dropout(net, 0.0)
            check(f"{net_name} fastconv {np.dtype(dtype).name}", net.gradient(x.astype(dtype), t), g_ref, rtol)
        if torch is not None:
            net = build(cls, np.float32, None)
            set_dropout(net, 0.0)
            for cl in (False, True):
                model = torch_model(torch, net, cl)
                torch_step(torch, model, torch_input(torch, x, cl), torch.from_numpy(t).long())
                check(f"{net_name} {T_CL if cl else T_NCHW}", torch_grads(model), g_ref, 2e-3)
    if torch is not None:  # each DeepConvNet convolution, forward and backward, on the activations of a forward
        net = build(DeepConvNet, np.float32, None)
        h = x.astype(np.float32)
        for i, layer in enumerate(net_layers(net)):
            out = layer.forward(h, False) if hasattr(layer, "dropout_ratio") else layer.forward(h)
            if type(layer).__name__ == "Convolution":
                dout = np.random.default_rng(i).standard_normal(out.shape).astype(np.float32)
                dx = layer.backward(dout)
                for cl in (False, True):
                    y, grads = torch_conv_fwd_bwd(torch, layer, h, dout, cl)
                    exp = {"out": out, "dx": dx, "dW": layer.dW, "db": layer.db}
                    got = {"out": y, "dx": grads[0], "dW": grads[1], "db": grads[2]}
                    check(f"layer {i} Convolution {T_CL if cl else T_NCHW}", got,
                          {k: v.astype(np.float64) for k, v in exp.items()}, 1e-4)
            h = out
    print("All results match. Starting benchmarks.", flush=True)


def torch_conv_fwd_bwd(torch, layer, x, dout, cl):
    F = torch.nn.functional
    xt, Wt, bt = torch_conv_tensors(torch, layer, x, cl)
    y = F.conv2d(xt, Wt, bt, stride=layer.stride, padding=layer.pad)
    grads = torch.autograd.grad(y, (xt, Wt, bt), grad_outputs=torch_input(torch, dout, cl))
    return y.detach().contiguous().numpy(), [g.contiguous().numpy() for g in grads]


def torch_conv_tensors(torch, layer, x, cl):
    xt = torch_input(torch, x, cl).requires_grad_()
    Wt = torch_input(torch, layer.W, cl).requires_grad_()
    bt = torch.from_numpy(np.ascontiguousarray(layer.b, dtype=np.float32)).requires_grad_()
    return xt, Wt, bt


# ======================================================================================================
# timing


def net_rows(torch, cls, x, t, args) -> list:
    """(workload, {implementation: seconds}) for the training step and inference of network ``cls``."""
    impls = {
        "fastconv float32": (build(cls, np.float32, None), x.astype(np.float32)),
        "fastconv float64": (build(cls, np.float64, None), x),
        REF: (build(cls, np.float64, ref_layers), x),
        "reference float32": (build(cls, np.float32, ref_layers), x.astype(np.float32)),
    }
    step = {name: (lambda net=net, xx=xx: net.gradient(xx, t)) for name, (net, xx) in impls.items()}
    infer = {name: (lambda net=net, xx=xx: net.predict(xx, train_flg=False))
             for name, (net, xx) in impls.items() if name != "fastconv float64"}
    if torch is not None:
        src = impls["fastconv float32"][0]
        tt = torch.from_numpy(t).long()
        for name, cl in ((T_NCHW, False), (T_CL, True)):
            model, xt = torch_model(torch, src, cl), torch_input(torch, x, cl)
            step[name] = lambda model=model, xt=xt: torch_step(torch, model, xt, tt)
            infer[name] = lambda model=model, xt=xt: torch_infer(torch, model, xt)
    return [("train step", interleaved_best(step, args.rounds, args.repeat)),
            ("inference", interleaved_best(infer, args.rounds, args.repeat))]


def layer_rows(torch, net_fc, net_ref, x, args) -> list:
    """Each layer's forward and backward on the activations of one step: (layer, input shape, pass, times)."""
    F = torch.nn.functional if torch is not None else None
    rows = []
    h_fc, h_ref = x.astype(np.float32), x.astype(np.float64)
    for i, (lf, lr) in enumerate(zip(net_layers(net_fc), net_layers(net_ref))):
        name = type(lf).__name__
        shape = h_fc.shape
        in_fc, in_ref = h_fc, h_ref
        if hasattr(lf, "dropout_ratio"):
            fwd = {"fastconv": lambda: lf.forward(in_fc, True), REF: lambda: lr.forward(in_ref, True)}
        else:
            fwd = {"fastconv": lambda: lf.forward(in_fc), REF: lambda: lr.forward(in_ref)}
        d_fc = None
        if torch is not None and name == "Convolution":
            out_shape = fwd["fastconv"]().shape
            d_fc = np.random.default_rng(i).standard_normal(out_shape).astype(np.float32)
            bwd_t, bwd_t_params = {}, {}
            for key, cl in ((T_NCHW, False), (T_CL, True)):
                xt, Wt, bt = torch_conv_tensors(torch, lf, in_fc, cl)
                dt = torch_input(torch, d_fc, cl)
                s, p = lf.stride, lf.pad
                fwd[key] = lambda xt=xt, Wt=Wt, bt=bt, s=s, p=p: F.conv2d(xt, Wt, bt, stride=s, padding=p)
                y = fwd[key]()
                bwd_t[key] = lambda y=y, xt=xt, Wt=Wt, bt=bt, dt=dt: torch.autograd.grad(
                    y, (xt, Wt, bt), grad_outputs=dt, retain_graph=True)
                bwd_t_params[key] = lambda y=y, Wt=Wt, bt=bt, dt=dt: torch.autograd.grad(
                    y, (Wt, bt), grad_outputs=dt, retain_graph=True)
        t_fwd = interleaved_best(fwd, args.rounds, args.repeat)
        h_fc, h_ref = fwd["fastconv"](), fwd[REF]()  # leaves each layer holding this forward's state
        if d_fc is None:
            d_fc = np.random.default_rng(i).standard_normal(h_fc.shape).astype(np.float32)
        d_ref = d_fc.astype(np.float64)
        bwd = {"fastconv": lambda: lf.backward(d_fc), REF: lambda: lr.backward(d_ref)}
        if torch is not None and name == "Convolution":
            bwd.update(bwd_t)
        t_bwd = interleaved_best(bwd, args.rounds, args.repeat)
        rows.append((f"{i:2d} {name}", shape, "fwd", t_fwd))
        rows.append((f"{i:2d} {name}", shape, "bwd", t_bwd))
        if i == 0 and name == "Convolution":  # what a step runs for the first layer: dW and db, no dx
            bwd0 = {"fastconv": lambda: lf.backward_params(d_fc), REF: lambda: lr.backward(d_ref)}
            if torch is not None:
                bwd0.update(bwd_t_params)
            rows.append((f"{i:2d} {name}", shape, "bwd*", interleaved_best(bwd0, args.rounds, args.repeat)))
    return rows


def fused_rows(torch, net_fc, x, args) -> list:
    """Each Convolution + Relu pair's forward on the activations of one step: (layers, input shape, times)."""
    rows = []
    layers = net_layers(net_fc)
    h = x.astype(np.float32)
    for i, layer in enumerate(layers):
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if type(layer).__name__ == "Convolution" and type(nxt).__name__ == "Relu":
            fns = {"fused": lambda h=h, conv=layer, relu=nxt: conv.forward_relu(h, relu),
                   "two calls": lambda h=h, conv=layer, relu=nxt: relu.forward(conv.forward(h))}
            if torch is not None:
                F = torch.nn.functional
                for key, cl in ((T_NCHW, False), (T_CL, True)):
                    xt, Wt, bt = (v.detach() for v in torch_conv_tensors(torch, layer, h, cl))
                    s, p = layer.stride, layer.pad
                    fns[key] = lambda xt=xt, Wt=Wt, bt=bt, s=s, p=p: F.relu(
                        F.conv2d(xt, Wt, bt, stride=s, padding=p))
            times = interleaved_best(fns, args.rounds, args.repeat)
            rows.append((f"{i:2d}+{i + 1} Conv+Relu", h.shape, times))
        h = layer.forward(h, False) if hasattr(layer, "dropout_ratio") else layer.forward(h)
    return rows


# ======================================================================================================
# report


def ratio(times: dict, base: str, sec: float) -> str:
    return f"{times[base] / sec:7.2f}x" if base in times else f"{'-':>8s}"


def print_net_table(title, rows):
    print(f"\n{title}")
    print(f"{'workload':10s} | {'implementation':24s} | {'ms':>9s} | {'x vs reference':>14s} | "
          f"{'x vs torch NCHW':>15s} | {'x vs torch channels_last':>24s}")
    for workload, times in rows:
        for name, sec in times.items():
            print(f"{workload:10s} | {name:24s} | {sec * 1e3:9.2f} | {ratio(times, REF, sec):>14s} | "
                  f"{ratio(times, T_NCHW, sec):>15s} | {ratio(times, T_CL, sec):>24s}")


def print_layer_table(rows, batch, args):
    def ms(times, key):
        return f"{times[key] * 1e3:8.2f}" if key in times else f"{'-':>8s}"

    print(f"\nper layer (DeepConvNet): fastconv float32 vs reference float64 vs torch float32 (convolutions), batch "
          f"{batch}, min of {args.repeat} x {args.rounds} blocks (ms; x = other's time / fastconv's)")
    print(f"{'layer':16s} | {'input':18s} | {'pass':4s} | {'fastconv':>8s} | {'ref':>8s} | {'torch':>8s} | "
          f"{'torch CL':>8s} | {'x vs ref':>8s} | {'x vs torch':>10s} | {'x vs torch CL':>13s}")
    for name, shape, kind, times in rows:
        fc = times["fastconv"]
        print(f"{name:16s} | {str(shape):18s} | {kind:4s} | {ms(times, 'fastconv')} | {ms(times, REF)} | "
              f"{ms(times, T_NCHW)} | {ms(times, T_CL)} | {ratio(times, REF, fc):>8s} | "
              f"{ratio(times, T_NCHW, fc):>10s} | {ratio(times, T_CL, fc):>13s}")


def print_fused_table(rows, args):
    print(f"\nConvolution + Relu forward (DeepConvNet), fastconv fused vs two calls vs torch float32, min of "
          f"{args.repeat} x {args.rounds} blocks (ms; x = other's time / fused)")
    print(f"{'layers':16s} | {'input':18s} | {'fused':>8s} | {'2 calls':>8s} | {'torch':>8s} | "
          f"{'torch CL':>8s} | {'x vs 2 calls':>12s} | {'x vs torch':>10s} | {'x vs torch CL':>13s}")
    for name, shape, times in rows:
        fu = times["fused"]

        def ms(key):
            return f"{times[key] * 1e3:8.2f}" if key in times else f"{'-':>8s}"

        print(f"{name:16s} | {str(shape):18s} | {ms('fused')} | {ms('two calls')} | {ms(T_NCHW)} | "
              f"{ms(T_CL)} | {ratio(times, 'two calls', fu):>12s} | {ratio(times, T_NCHW, fu):>10s} | "
              f"{ratio(times, T_CL, fu):>13s}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per block (min is kept)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks per implementation")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for fastconv and torch (default: all cores)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if it is installed")
    parser.add_argument("--no-layers", action="store_true", help="skip the per-layer table")
    parser.add_argument("--quick", action="store_true", help="2 repeats x 1 round (smoke run)")
    parser.add_argument("--isa", choices=sorted(ISA_ENV), help="cap fastconv and torch at this instruction set")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.rounds = 2, 1
    if args.batch < 1 or args.repeat < 1 or args.rounds < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--batch, --repeat, --rounds and --threads must be >= 1")
    threads = args.threads or os.cpu_count() or 1
    fastconv.set_num_threads(threads)
    torch = import_torch(args.no_torch)
    if torch is not None:
        torch.set_num_threads(threads)
    print(machine_line(threads=threads) + (f" | torch threads {torch.get_num_threads()}" if torch else ""))
    print(isa_line(ISA))
    verify(torch)

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 1, 28, 28))
    t = rng.integers(0, 10, args.batch)
    how = f"min of {args.repeat} runs x {args.rounds} alternating blocks"
    for net_name, cls in NETS.items():
        print_net_table(f"{net_name}, batch {args.batch} x 1x28x28, {how}", net_rows(torch, cls, x, t, args))

    if not args.no_layers:
        net_fc, net_ref = build(DeepConvNet, np.float32, None), build(DeepConvNet, np.float64, ref_layers)
        print_layer_table(layer_rows(torch, net_fc, net_ref, x, args), args.batch, args)
        print_fused_table(fused_rows(torch, build(DeepConvNet, np.float32, None), x, args), args)


if __name__ == "__main__":
    main()
