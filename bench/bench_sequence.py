"""The sequel's BetterRnnlm (2-layer LSTM language model with tied embedding) on fastconv.time_layers vs the
NumPy reference vs PyTorch, and a Transformer encoder layer vs torch.nn.TransformerEncoderLayer: one training
step's forward + backward.

Usage:  python bench/bench_sequence.py [--vocab 10000] [--hidden 650] [--batch 20] [--steps 35] [--repeat 2]
            [--rounds 1] [--threads N] [--no-torch] [--no-reference] [--sequel DIR]
            [--no-rnnlm] [--no-transformer] [--d-model 512] [--nhead 8] [--ff 2048]

Transformer row (--batch, --steps as above, the PyTorch tutorial's sizes by default): fastconv's
time_layers.TransformerEncoderLayer against nn.TransformerEncoderLayer(d_model, nhead, ff, dropout=0.1,
batch_first=True), float32, the same weights, both in training mode (dropout on); a step is forward + backward
of a fixed output gradient (no optimizer update). Before timing, outputs and input gradients are compared with
dropout off.

Implementations, float32, all from the same weights:
  fastconv   the model as the sequel's ch06/better_rnnlm.py writes it (TimeEmbedding, TimeDropout, two
             stateful TimeLSTMs, TimeAffine on the embedding's transpose, TimeSoftmaxWithLoss) on
             fastconv.time_layers;
  reference  the same model on fastconv.reference.time_layers (plain NumPy, one step at a time, as the
             sequel);
  sequel     (with --sequel DIR, a checkout of deep-learning-from-scratch-2) the same model on the sequel's
             own common/time_layers.py;
  torch      nn.Embedding + 2-layer nn.LSTM (batch_first) + nn.Linear sharing the embedding's weight, dropout
             between them, F.cross_entropy; a step is zero_grad + forward + backward (no optimizer update on
             any side), the LSTM state carried between steps (detached) as the stateful TimeLSTMs carry
             theirs.
Before timing, the losses of fastconv, the reference, the sequel and torch, and the first LSTM's gradients of
fastconv and the reference, are compared on one batch with dropout off. fastconv and torch run with the same
thread count; the NumPy paths use NumPy's BLAS with its default threads. Blocks of the implementations
alternate (see _timing.py); each keeps its best. Ratios are measured side by side in one run; absolute times
vary with the load of a shared host, so the load average is printed with them.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import sys

import fastconv
import numpy as np
from _timing import interleaved_best, machine_line
from fastconv import time_layers
from fastconv.reference import time_layers as ref_time_layers


class BetterRnnlm:
    """The sequel's BetterRnnlm, written as its ch06/better_rnnlm.py writes it, over the time-layer module
    ``tl``."""

    def __init__(self, tl, params, dropout_ratio):
        embed_W, Wx1, Wh1, b1, Wx2, Wh2, b2, affine_b = (p.copy() for p in params)
        self.layers = [
            tl.TimeEmbedding(embed_W),
            tl.TimeDropout(dropout_ratio),
            tl.TimeLSTM(Wx1, Wh1, b1, stateful=True),
            tl.TimeDropout(dropout_ratio),
            tl.TimeLSTM(Wx2, Wh2, b2, stateful=True),
            tl.TimeDropout(dropout_ratio),
            tl.TimeAffine(embed_W.T, affine_b),  # weight tying
        ]
        self.loss_layer = tl.TimeSoftmaxWithLoss()
        self.lstm_layers = [self.layers[2], self.layers[4]]

    def forward(self, xs, ts):
        for layer in self.layers:
            xs = layer.forward(xs)
        return self.loss_layer.forward(xs, ts)

    def backward(self, dout=1):
        dout = self.loss_layer.backward(dout)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def reset_state(self):
        for layer in self.lstm_layers:
            layer.reset_state()


def init_params(V, H, seed):
    rng = np.random.default_rng(seed)
    rn = rng.standard_normal
    return [
        (rn((V, H)) / 100).astype(np.float32),
        (rn((H, 4 * H)) / np.sqrt(H)).astype(np.float32),
        (rn((H, 4 * H)) / np.sqrt(H)).astype(np.float32),
        np.zeros(4 * H, np.float32),
        (rn((H, 4 * H)) / np.sqrt(H)).astype(np.float32),
        (rn((H, 4 * H)) / np.sqrt(H)).astype(np.float32),
        np.zeros(4 * H, np.float32),
        np.zeros(V, np.float32),
    ]


def torch_model(params, V, H, dropout_ratio):
    import torch
    from torch import nn

    class Lm(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, H)
            self.lstm = nn.LSTM(H, H, num_layers=2, batch_first=True, dropout=dropout_ratio)
            self.drop = nn.Dropout(dropout_ratio)
            self.out = nn.Linear(H, V)
            self.out.weight = self.embed.weight  # tied
            self.state = None

        def forward(self, xs, ts):
            e = self.drop(self.embed(xs))
            y, state = self.lstm(e, self.state)
            self.state = tuple(s.detach() for s in state)
            logits = self.out(self.drop(y))
            return nn.functional.cross_entropy(logits.reshape(-1, V), ts.reshape(-1))

    m = Lm()
    embed_W, Wx1, Wh1, b1, Wx2, Wh2, b2, affine_b = params
    with torch.no_grad():
        m.embed.weight.copy_(torch.from_numpy(embed_W))
        m.out.bias.copy_(torch.from_numpy(affine_b))
        # the sequel's gate columns (f, g, i, o) -> torch's rows (i, f, g, o); torch has two biases, one
        # zeroed
        for layer, (Wx, Wh, b) in enumerate(((Wx1, Wh1, b1), (Wx2, Wh2, b2))):
            order = np.concatenate(
                [np.arange(2 * H, 3 * H), np.arange(0, H), np.arange(H, 2 * H), np.arange(3 * H, 4 * H)]
            )
            getattr(m.lstm, f"weight_ih_l{layer}").copy_(torch.from_numpy(Wx[:, order].T.copy()))
            getattr(m.lstm, f"weight_hh_l{layer}").copy_(torch.from_numpy(Wh[:, order].T.copy()))
            getattr(m.lstm, f"bias_ih_l{layer}").copy_(torch.from_numpy(b[order].copy()))
            getattr(m.lstm, f"bias_hh_l{layer}").zero_()
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", type=int, default=10000)
    ap.add_argument("--hidden", type=int, default=650)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--steps", type=int, default=35)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument(
        "--sequel", default=None, help="a checkout of deep-learning-from-scratch-2, to time its own code"
    )
    ap.add_argument("--no-rnnlm", action="store_true")
    ap.add_argument("--no-transformer", action="store_true")
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--nhead", type=int, default=8)
    ap.add_argument("--ff", type=int, default=2048)
    args = ap.parse_args()
    threads = args.threads or len(os.sched_getaffinity(0))
    fastconv.set_num_threads(threads)
    print(machine_line())
    if not args.no_rnnlm:
        rnnlm_rows(args, threads)
    if not args.no_transformer and not args.no_torch:
        transformer_rows(args, threads)


def rnnlm_rows(args, threads):
    V, H, N, T = args.vocab, args.hidden, args.batch, args.steps
    print(
        f"BetterRnnlm: vocab {V}, {H} units, batch {N}, {T} steps, dropout {args.dropout}; threads {threads}"
    )

    params = init_params(V, H, 0)
    data = np.random.default_rng(1).integers(0, V, size=(N, T + 1))
    xs, ts = data[:, :-1], data[:, 1:]
    modules = {"fastconv": time_layers}
    if not args.no_reference:
        modules["reference"] = ref_time_layers
    if args.sequel:
        sys.path.insert(0, args.sequel)
        modules["sequel"] = importlib.import_module("common.time_layers")

    # check, dropout off, fresh states: the loss and the first LSTM's weight gradients. The sequel's embedding
    # init (randn / 100) makes every logit ~0 and the loss ~log(V) whatever the code computes, so the check
    # uses
    # an embedding of unit scale, where the loss depends on every layer.
    check = [params[0] * 100, *params[1:]]
    losses, grads = {}, {}
    for name, tl in modules.items():
        model = BetterRnnlm(tl, check, 0.0)
        losses[name] = float(model.forward(xs, ts))
        if name in ("fastconv", "reference"):
            model.backward()
            grads[name] = [np.asarray(g, np.float64) for g in model.layers[2].grads]
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            pass
        else:
            with torch.no_grad():
                losses["torch"] = float(
                    torch_model(check, V, H, 0.0)(torch.from_numpy(xs), torch.from_numpy(ts))
                )
    for name, loss in losses.items():
        print(f"  loss (dropout off) {name:10s} {loss:.6f}")
        assert abs(loss - losses["fastconv"]) < 1e-4 * abs(losses["fastconv"]), f"{name} disagrees"
    if "reference" in grads:
        err = max(
            float(np.abs(a - b).max() / np.abs(b).max())
            for a, b in zip(grads["fastconv"], grads["reference"])
        )
        print(
            f"  first LSTM's dWx, dWh, db: fastconv vs reference max error {err:.1e} of the largest element"
        )
        assert err < 1e-4, "gradients disagree"
    print("All results match. Starting benchmarks.")

    def step_of(model):
        def step():
            model.forward(xs, ts)
            model.backward()

        return step

    fns = {name: step_of(BetterRnnlm(tl, params, args.dropout)) for name, tl in modules.items()}
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("torch not importable: skipped")
        else:
            torch.set_num_threads(threads)
            tm = torch_model(params, V, H, args.dropout)
            txs, tts = torch.from_numpy(xs), torch.from_numpy(ts)

            def torch_step():
                tm.zero_grad(set_to_none=True)
                tm(txs, tts).backward()

            fns["torch"] = torch_step
    best = interleaved_best(fns, rounds=args.rounds, repeat=args.repeat)
    print(f"{'impl':10s} | {'fwd+bwd ms':>10s} | fastconv speed-up")
    for name, t in best.items():
        print(f"{name:10s} | {t * 1e3:10.1f} | {t / best['fastconv']:.2f}x")
    print("load average:", " ".join(f"{v:.2f}" for v in os.getloadavg()))


# ======================================================================================================
# a Transformer encoder layer


def transformer_rows(args, threads):
    try:
        import torch
    except ImportError:
        print("torch not importable: the Transformer row is skipped")
        return
    N, T, d, nhead, ff = args.batch, args.steps, args.d_model, args.nhead, args.ff
    print(
        f"TransformerEncoderLayer: d_model {d}, nhead {nhead}, feed-forward {ff}, batch {N}, {T} steps, "
        f"dropout 0.1, float32; threads {threads}"
    )
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tm = torch.nn.TransformerEncoderLayer(d, nhead, dim_feedforward=ff, dropout=0.1, batch_first=True)

    def a(p):
        return np.ascontiguousarray(p.detach().numpy())

    W, b = a(tm.self_attn.in_proj_weight), a(tm.self_attn.in_proj_bias)
    attn = []
    for i in range(3):  # torch stacks the (out, in) matrices of q, k and v
        attn += [np.ascontiguousarray(W[i * d : (i + 1) * d].T), b[i * d : (i + 1) * d].copy()]
    attn += [np.ascontiguousarray(a(tm.self_attn.out_proj.weight).T), a(tm.self_attn.out_proj.bias)]
    rest = [
        np.ascontiguousarray(a(tm.linear1.weight).T),
        a(tm.linear1.bias),
        np.ascontiguousarray(a(tm.linear2.weight).T),
        a(tm.linear2.bias),
        a(tm.norm1.weight),
        a(tm.norm1.bias),
        a(tm.norm2.weight),
        a(tm.norm2.bias),
    ]
    mine = time_layers.TransformerEncoderLayer(attn, *rest, nhead=nhead, dropout=0.1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, T, d)).astype(np.float32)
    g = rng.standard_normal((N, T, d)).astype(np.float32)
    tx, tg = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(g)

    # check, dropout off: output and input gradient of fastconv (float32 and float64) and torch (float32)
    # against torch in float64 (fastconv and torch agree to ~1e-15 there; measured, torch's float32 input
    # gradient is the less accurate of the two float32 results at these sizes, ~4e-3 of its largest element)
    t64 = copy.deepcopy(tm).double().eval()
    x64 = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    y64 = t64(x64)  # with gradients on: torch's plain path, not its fused inference one
    y64.backward(torch.from_numpy(g.astype(np.float64)))
    want = {"output": y64.detach().numpy(), "dx": x64.grad.numpy()}
    tm.eval()
    ty = tm(tx)
    ty.backward(tg)
    got = {"torch float32": (ty.detach().numpy(), tx.grad.numpy())}
    for dt in (np.float32, np.float64):
        m = time_layers.TransformerEncoderLayer(
            [p.astype(dt) for p in attn], *(p.astype(dt) for p in rest), nhead=nhead, dropout=0.1
        )
        m.train_flg = False
        got[f"fastconv {np.dtype(dt).name}"] = (m.forward(x.astype(dt)), m.backward(g.astype(dt)))
    for impl, pair in got.items():
        for (name, w), v in zip(want.items(), pair):
            err = float(np.abs(v - w).max() / np.abs(w).max())
            print(f"  {name:6s} {impl:16s} vs torch float64: max error {err:.1e} of the largest element")
            if impl.startswith("fastconv"):
                assert err < (1e-4 if "32" in impl else 1e-10), f"{impl} {name} disagrees"
    print("All results match. Starting benchmarks.")

    tm.train()
    mine.train_flg = True

    def fastconv_step():
        mine.forward(x)
        mine.backward(g)

    def torch_step():
        tm.zero_grad(set_to_none=True)
        tx.grad = None
        tm(tx).backward(tg)

    best = interleaved_best(
        {"fastconv": fastconv_step, "torch": torch_step}, rounds=args.rounds, repeat=args.repeat
    )
    print(f"{'impl':10s} | {'fwd+bwd ms':>10s} | fastconv speed-up")
    for name, t in best.items():
        print(f"{name:10s} | {t * 1e3:10.1f} | {t / best['fastconv']:.2f}x")
    print("load average:", " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
