"""Train the sequel's sequence models on real and generated text with fastconv and, on the same recipe, split
and initial weights, with PyTorch (a benchmark peer; imported only here, in bench/).

Usage:  python bench/train_sequence.py charlm   [--epochs 20] [--hidden 200] [--batch 20] [--steps 35]
        python bench/train_sequence.py addition [--epochs 25] [--hidden 128] [--wordvec 16] [--batch 128]
        python bench/train_sequence.py date     [--epochs 10] [--hidden 256] [--wordvec 16] [--batch 128]
                                                [--train-size N]
        python bench/train_sequence.py classify [--cell rnn|lstm|transformer] [--epochs 10] [--hidden 64]
                                                [--wordvec 32] [--nhead 4] [--layers 1] [--dropout 0.1]
        common options: [--backends fastconv,torch] [--threads 1] [--seed 0]

Tasks:
  charlm    fastconv.models.sequence.BetterRnnlm (2 stateful LSTMs, dropout, tied embedding) as a character
            model of the Tang and Song poems of fortunes-zh (load_fortunes_zh(parts=("tang300", "song100")),
            its fixed 80/10/10 split), truncated BPTT as the sequel's RnnlmTrainer (batch streams, --steps
            time steps), Adam, gradients clipped to norm --clip; reports validation and test perplexity
            (the sequel's eval_perplexity: batch 10, 35 steps, no dropout) and a generated poem.
  addition  PeekySeq2seq on load_addition() (45,000 training / 5,000 test questions, input reversed; the last
            --val training questions held out for validation), the sequel's ch07 recipe (wordvec 16, hidden
            128, batch 128, 25 epochs, Adam, clip 5.0); keeps the parameters of the epoch with the most exact
            validation answers and reports exact answers on the test questions, decoded greedily (and those
            of the last epoch).
  date      AttentionSeq2seq on load_date() (45,000 training / 5,000 test dates, input reversed, --val held
            out as above, --train-size keeps only the first N training questions), the sequel's ch08 recipe
            (wordvec 16, hidden 256, batch 128, 10 epochs, Adam 0.001, clip 5.0); reported as addition.
  classify  RnnClassifier (Embedding + SimpleRNN or LSTM + affine + softmax) on load_fortunes() (four
            categories, 10,000 words, 50 steps), or with --cell transformer TransformerClassifier (token and
            learned position embeddings of size --wordvec, --layers post-norm encoder layers with --nhead heads,
            feed-forward --hidden, --dropout, the mean over the non-padding tokens, affine; no attention mask
            on either side); reports accuracy and macro-F1 on the test split beside the majority-class
            baseline.
The PyTorch models are the same networks in nn.Embedding / nn.LSTM / nn.RNN / nn.Linear /
nn.TransformerEncoderLayer (gate rows permuted from the sequel's (f, g, i, o) to PyTorch's (i, f, g, o), b_hh
zero and frozen; the sequel's attention as bmm + softmax), started from the same weights, fed the
same batches in the same order, updated by the same Adam (the book's, written for tensors here;
--torch-adam torch picks torch.optim.Adam); only dropout masks differ. Both run with --threads threads (default 1: these
models are small, and on a busy 2-core host two OpenMP threads that wait for each other cost more than they
give; measured on the addition model, 243 ms per step with 2 threads, 28 ms with 1).
"""

from __future__ import annotations

import argparse
import math
import time

import fastconv
import numpy as np
from _timing import machine_line
from fastconv import datasets
from fastconv.models.sequence import (
    AttentionSeq2seq,
    BetterRnnlm,
    PeekySeq2seq,
    RnnClassifier,
    TransformerClassifier,
    clip_grads,
    unique_params,
)
from fastconv.optimizer import Adam

# ======================================================================================================
# shared


class ListAdam:
    """fastconv's Adam over the sequel's parameter lists (it updates a dict of the same arrays in place)."""

    def __init__(self, lr):
        self.opt = Adam(lr=lr)

    def update(self, params, grads):
        self.opt.update({str(i): p for i, p in enumerate(params)}, {str(i): g for i, g in enumerate(grads)})


def fastconv_step(model, opt, clip, *batch):
    loss = model.forward(*batch)
    model.backward()
    params, grads = unique_params(model.params, model.grads)
    if clip:
        clip_grads(grads, clip)
    opt.update(params, grads)
    return float(loss)


def torch_lstm_weights(torch, Wx, Wh, b):
    """The sequel's LSTM weights, gate columns (f, g, i, o), as PyTorch's (i, f, g, o) rows."""
    H = Wh.shape[0]

    def perm(a):
        f, g, i, o = (a[..., k * H:(k + 1) * H] for k in range(4))
        return np.concatenate((i, f, g, o), axis=-1)

    t = lambda a: torch.tensor(np.ascontiguousarray(a))
    return t(perm(Wx).T), t(perm(Wh).T), t(perm(b)), torch.zeros(4 * H)


def set_rnn(torch, rnn, Wx, Wh, b, lstm=True):
    if lstm:
        w_ih, w_hh, b_ih, b_hh = torch_lstm_weights(torch, Wx, Wh, b)
    else:
        w_ih, w_hh, b_ih, b_hh = (torch.tensor(np.ascontiguousarray(a)) for a in (Wx.T, Wh.T, b, np.zeros_like(b)))
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(w_ih)
        rnn.weight_hh_l0.copy_(w_hh)
        rnn.bias_ih_l0.copy_(b_ih)
        rnn.bias_hh_l0.copy_(b_hh)
    # The sequel's cells have one bias; PyTorch's second one stays zero and frozen (trained, it would add a
    # second update of the summed bias every step and count its gradient twice in the clipping norm).
    rnn.bias_hh_l0.requires_grad_(False)


class TorchBookAdam:
    """The book's Adam (fastconv.optimizer.Adam's update) on PyTorch tensors: ``lr_t = lr sqrt(1 - beta2^t) /
    (1 - beta1^t)``, ``p -= lr_t m / (sqrt(v) + 1e-7)``. torch.optim.Adam adds its eps after the bias
    correction instead, which moves parameters whose gradients are tiny (embedding rows seen only early in
    a long sequence) by up to the full learning rate; this keeps the two sides on one recipe."""

    def __init__(self, torch, params, lr, beta1=0.9, beta2=0.999):
        self.torch, self.params, self.lr, self.b1, self.b2, self.t = torch, list(params), lr, beta1, beta2, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.t += 1
        lr_t = self.lr * math.sqrt(1 - self.b2**self.t) / (1 - self.b1**self.t)
        with self.torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v):
                g = p.grad if p.grad is not None else self.torch.zeros_like(p)
                m += (1 - self.b1) * (g - m)
                v += (1 - self.b2) * (g * g - v)
                p -= lr_t * m / (v.sqrt() + 1e-7)


def torch_adam(torch, args, params):
    if args.torch_adam == "book":
        return TorchBookAdam(torch, params, args.lr)
    return torch.optim.Adam(params, lr=args.lr, eps=1e-7)


def torch_step(torch, model, opt, clip, loss_fn, *batch):
    opt.zero_grad()
    loss = loss_fn(*batch)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss.item()


# ======================================================================================================
# charlm: BetterRnnlm on the poems of fortunes-zh


def lm_batches(corpus, batch, steps):
    """The sequel's RnnlmTrainer batches: ``batch`` streams starting ``len // batch`` apart, ``steps`` ids at a
    time, each stream carried on (stateful)."""
    xs, ts = corpus[:-1], corpus[1:]
    jump = len(xs) // batch
    xs, ts = xs[: batch * jump].reshape(batch, jump), ts[: batch * jump].reshape(batch, jump)
    for k in range(jump // steps):
        yield xs[:, k * steps:(k + 1) * steps], ts[:, k * steps:(k + 1) * steps]


def charlm(args):
    parts = ("tang300", "song100")
    train, c2i, i2c = datasets.load_fortunes_zh("train", parts)
    val, test = datasets.load_fortunes_zh("val", parts)[0], datasets.load_fortunes_zh("test", parts)[0]
    V, H = len(c2i), args.hidden
    print(f"charlm: fortunes-zh {'+'.join(parts)}, {len(c2i)} characters; {len(train)} / {len(val)} / "
          f"{len(test)} train / val / test ids; hidden {H}, batch {args.batch}, steps {args.steps}, "
          f"{args.epochs} epochs, Adam lr {args.lr}, clip {args.clip}, dropout {args.dropout}")
    init = BetterRnnlm(V, H, H, args.dropout, rng=np.random.default_rng(args.seed))
    init_params = [p.copy() for p in unique_params(init.params, init.grads)[0]]
    results = {}
    if "fastconv" in args.backends:
        model = BetterRnnlm(V, H, H, args.dropout, rng=np.random.default_rng(args.seed))
        opt = ListAdam(args.lr)

        def ppl(corpus):
            model.reset_state()
            losses = [float(model.forward(x, t, train_flg=False)) for x, t in lm_batches(corpus, 10, 35)]
            model.reset_state()
            return math.exp(np.mean(losses))

        t0 = time.perf_counter()
        for ep in range(args.epochs):
            model.reset_state()
            losses = [fastconv_step(model, opt, args.clip, x, t) for x, t in lm_batches(train, args.batch,
                                                                                        args.steps)]
            if ep % 5 == 4 or ep == args.epochs - 1:
                print(f"  fastconv epoch {ep + 1}: train ppl {math.exp(np.mean(losses)):.1f}, val ppl "
                      f"{ppl(val):.1f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        secs = time.perf_counter() - t0
        results["fastconv"] = (ppl(val), ppl(test), secs)
        model.reset_state()
        prime = [c2i[c] for c in args.prime]
        ids = model.generate(prime, skip_ids=[c2i["<eos>"]], sample_size=len(prime) + 60,
                             rng=np.random.default_rng(args.seed))
        print("  fastconv sample:\n" + "".join(i2c[i] for i in ids))
    if "torch" in args.backends:
        import torch

        torch.manual_seed(args.seed)
        nn = torch.nn

        class TorchLM(nn.Module):
            def __init__(self):
                super().__init__()
                embed_W, Wx1, Wh1, b1, Wx2, Wh2, b2, affine_b = init_params
                self.embed = nn.Embedding(V, H)
                self.lstm1, self.lstm2 = nn.LSTM(H, H, batch_first=True), nn.LSTM(H, H, batch_first=True)
                self.drop = nn.Dropout(args.dropout)
                self.bias = nn.Parameter(torch.tensor(affine_b))
                with torch.no_grad():
                    self.embed.weight.copy_(torch.tensor(embed_W))
                set_rnn(torch, self.lstm1, Wx1, Wh1, b1)
                set_rnn(torch, self.lstm2, Wx2, Wh2, b2)
                self.state = [None, None]

            def forward(self, x):
                out = self.drop(self.embed(x))
                for k, lstm in enumerate((self.lstm1, self.lstm2)):
                    out, st = lstm(out, self.state[k])
                    self.state[k] = tuple(s.detach() for s in st)
                    out = self.drop(out)
                return out @ self.embed.weight.T + self.bias  # tied output layer

        tm = TorchLM()
        topt = torch_adam(torch, args, tm.parameters())
        ce = nn.functional.cross_entropy

        def tppl(corpus):
            tm.eval()
            tm.state = [None, None]
            with torch.no_grad():
                losses = [float(ce(tm(torch.from_numpy(x.astype(np.int64))).reshape(-1, V),
                                   torch.from_numpy(t.astype(np.int64)).reshape(-1)))
                          for x, t in lm_batches(corpus, 10, 35)]
            tm.state = [None, None]
            tm.train()
            return math.exp(np.mean(losses))

        t0 = time.perf_counter()
        for ep in range(args.epochs):
            tm.state = [None, None]
            losses = []
            for x, t in lm_batches(train, args.batch, args.steps):
                xt, tt = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(t.astype(np.int64))
                losses.append(torch_step(torch, tm, topt, args.clip,
                                         lambda a, b: ce(tm(a).reshape(-1, V), b.reshape(-1)), xt, tt))
            if ep % 5 == 4 or ep == args.epochs - 1:
                print(f"  torch epoch {ep + 1}: train ppl {math.exp(np.mean(losses)):.1f}, val ppl "
                      f"{tppl(val):.1f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        secs = time.perf_counter() - t0
        results["torch"] = (tppl(val), tppl(test), secs)
    print("| backend | val perplexity | test perplexity | training time (s) |")
    print("|---|---|---|---|")
    for name, (v, t, s) in results.items():
        print(f"| {name} | {v:.1f} | {t:.1f} | {s:.0f} |")


# ======================================================================================================
# addition (PeekySeq2seq) and date (AttentionSeq2seq): reversed input, greedy decoding


def seq2seq(args):
    task = args.task
    load = datasets.load_addition if task == "addition" else datasets.load_date
    (x_train, t_train), (x_test, t_test) = load(seed=args.seed + 1984)
    x_train, x_test = x_train[:, ::-1].copy(), x_test[:, ::-1].copy()  # the sequel's reversed input
    # the last --val training questions pick the epoch whose parameters are kept (never the test questions)
    x_val, t_val = x_train[-args.val:], t_train[-args.val:]
    x_train, t_train = x_train[: -args.val], t_train[: -args.val]
    if args.train_size:
        x_train, t_train = x_train[: args.train_size], t_train[: args.train_size]
    c2i, _ = datasets.sequence_vocab(task)
    V, D, H = len(c2i), args.wordvec, args.hidden
    Model = PeekySeq2seq if task == "addition" else AttentionSeq2seq
    print(f"{task}: {len(x_train)} / {len(x_val)} / {len(x_test)} train / val / test questions, reversed "
          f"input; {Model.__name__} wordvec {D}, hidden {H}, batch {args.batch}, {args.epochs} epochs, Adam lr "
          f"{args.lr}, clip {args.clip}; the epoch with the most exact validation answers is kept")
    start, n_out = c2i["_"], t_test.shape[1] - 1
    init = Model(V, D, H, rng=np.random.default_rng(args.seed))
    orders = [np.random.default_rng(args.seed + 1 + ep).permutation(len(x_train)) for ep in range(args.epochs)]
    results = {}

    def batches(order):
        for i in range(0, len(order) - args.batch + 1, args.batch):
            idx = order[i:i + args.batch]
            yield x_train[idx], t_train[idx]

    def exact(pred, t):
        return float(np.mean(np.all(pred == t[:, 1:], axis=1)))

    def run(name, step, generate, get_params, set_params):
        best, best_ep, kept = -1.0, 0, None
        t0 = time.perf_counter()
        for ep in range(args.epochs):
            losses = [step(x, t) for x, t in batches(orders[ep])]
            val = exact(generate(x_val), t_val)
            if val > best:
                best, best_ep, kept = val, ep + 1, get_params()
            print(f"  {name} epoch {ep + 1}: loss {np.mean(losses):.4f}, val exact {val:.2%} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        secs = time.perf_counter() - t0
        last = exact(generate(x_test), t_test)
        set_params(kept)
        results[name] = (exact(generate(x_test), t_test), best_ep, best, last, secs)

    if "fastconv" in args.backends:
        model = Model(V, D, H, rng=np.random.default_rng(args.seed))
        opt = ListAdam(args.lr)

        def set_params(kept):
            for p, k in zip(model.params, kept):
                p[...] = k

        run("fastconv", lambda x, t: fastconv_step(model, opt, args.clip, x, t),
            lambda x: model.generate(x, start, n_out), lambda: [p.copy() for p in model.params], set_params)
    if "torch" in args.backends:
        import torch

        torch.manual_seed(args.seed)
        nn = torch.nn
        p = [a.copy() for a in init.params]
        peeky = task == "addition"

        class TorchSeq2seq(nn.Module):
            """PeekySeq2seq (peeky) or AttentionSeq2seq: the same parameters in the same order."""

            def __init__(self):
                super().__init__()
                self.enc_embed, self.dec_embed = nn.Embedding(V, D), nn.Embedding(V, D)
                self.enc, self.dec = nn.LSTM(D, H, batch_first=True), nn.LSTM(H + D if peeky else D, H,
                                                                             batch_first=True)
                self.affine = nn.Linear(2 * H, V)
                with torch.no_grad():
                    self.enc_embed.weight.copy_(torch.tensor(p[0]))
                    self.dec_embed.weight.copy_(torch.tensor(p[4]))
                    self.affine.weight.copy_(torch.tensor(p[8].T.copy()))
                    self.affine.bias.copy_(torch.tensor(p[9]))
                set_rnn(torch, self.enc, *p[1:4])
                set_rnn(torch, self.dec, *p[5:8])

            def decode(self, x, enc_hs, state):
                if peeky:
                    hs = enc_hs[:, -1:, :].expand(-1, x.shape[1], -1)
                    out, state = self.dec(torch.cat((hs, self.dec_embed(x)), 2), state)
                    return self.affine(torch.cat((hs, out), 2)), state
                # the sequel's attention: softmax over the encoder steps of <h_enc, h_dec>, no scaling
                out, state = self.dec(self.dec_embed(x), state)
                a = torch.softmax(torch.bmm(out, enc_hs.transpose(1, 2)), dim=2)
                return self.affine(torch.cat((torch.bmm(a, enc_hs), out), 2)), state

            def encode(self, xs):
                enc_hs, (h, _) = self.enc(self.enc_embed(xs))
                return enc_hs, (h, torch.zeros_like(h))

            def forward(self, xs, dec_in):
                enc_hs, state = self.encode(xs)
                return self.decode(dec_in, enc_hs, state)[0]

            @torch.no_grad()
            def generate(self, xs, n):
                enc_hs, state = self.encode(xs)
                x = torch.full((xs.shape[0], 1), start, dtype=torch.int64)
                out = []
                for _ in range(n):
                    score, state = self.decode(x, enc_hs, state)
                    x = score.argmax(2)
                    out.append(x[:, 0])
                return torch.stack(out, 1)

        tm = TorchSeq2seq()
        topt = torch_adam(torch, args, tm.parameters())
        ce = nn.functional.cross_entropy

        def tstep(x, t):
            return torch_step(torch, tm, topt, args.clip,
                              lambda a, b: ce(tm(a, b[:, :-1]).reshape(-1, V), b[:, 1:].reshape(-1)),
                              torch.from_numpy(x), torch.from_numpy(t))

        run("torch", tstep, lambda x: tm.generate(torch.from_numpy(x), n_out).numpy(),
            lambda: {k: v.clone() for k, v in tm.state_dict().items()}, tm.load_state_dict)
    print("| backend | test exact answers (kept epoch) | kept epoch | its val exact | test exact, last epoch "
          "| training time (s) |")
    print("|---|---|---|---|---|---|")
    for name, (a, ep, v, last, s) in results.items():
        print(f"| {name} | {a:.2%} | {ep} | {v:.2%} | {last:.2%} | {s:.0f} |")


# ======================================================================================================
# classify: fortunes categories


def macro_f1(pred, t, k):
    f1 = []
    for c in range(k):
        tp = np.sum((pred == c) & (t == c))
        prec = tp / max(np.sum(pred == c), 1)
        rec = tp / max(np.sum(t == c), 1)
        f1.append(0.0 if tp == 0 else 2 * prec * rec / (prec + rec))
    return float(np.mean(f1))


def torch_encoder_layer(torch, d, nhead, ff, dropout, params):
    """nn.TransformerEncoderLayer (post-norm, ReLU, batch first) holding time_layers.TransformerEncoderLayer's 16
    parameters: torch's in_proj stacks the (out, in) matrices of q, k and v."""
    Wq, bq, Wk, bk, Wv, bv, Wo, bo, W1, b1, W2, b2, g1, be1, g2, be2 = (torch.tensor(a) for a in params)
    layer = torch.nn.TransformerEncoderLayer(d, nhead, dim_feedforward=ff, dropout=dropout, batch_first=True)
    with torch.no_grad():
        for dst, src in ((layer.self_attn.in_proj_weight, torch.cat((Wq.T, Wk.T, Wv.T))),
                         (layer.self_attn.in_proj_bias, torch.cat((bq, bk, bv))),
                         (layer.self_attn.out_proj.weight, Wo.T), (layer.self_attn.out_proj.bias, bo),
                         (layer.linear1.weight, W1.T), (layer.linear1.bias, b1),
                         (layer.linear2.weight, W2.T), (layer.linear2.bias, b2),
                         (layer.norm1.weight, g1), (layer.norm1.bias, be1),
                         (layer.norm2.weight, g2), (layer.norm2.bias, be2)):
            dst.copy_(src)
    return layer


def classify(args):
    cats = ("computers", "science", "politics", "songs-poems")
    (x_train, t_train), _, (x_test, t_test), _ = datasets.load_fortunes(cats, num_words=10000, maxlen=50)
    V, D, H, K, T = 10000, args.wordvec, args.hidden, len(cats), x_train.shape[1]
    major = np.bincount(t_train, minlength=K).argmax()
    base = np.full_like(t_test, major)
    transformer = args.cell == "transformer"
    if transformer:
        desc = (f"transformer: d_model {D} (token + learned position embeddings), {args.layers} encoder "
                f"layer(s), {args.nhead} heads, feed-forward {H}, dropout {args.dropout}, mean over the "
                "non-padding tokens")
    else:
        desc = f"{args.cell}, wordvec {D}, hidden {H}"
    print(f"classify: fortunes {', '.join(cats)}; {len(x_train)} / {len(x_test)} train / test entries; "
          f"{desc}, batch {args.batch}, {args.epochs} epochs, Adam lr {args.lr}, clip {args.clip}, seed "
          f"{args.seed}")
    rows = {"majority baseline": (np.mean(base == t_test), macro_f1(base, t_test, K), 0.0)}
    np.random.seed(args.seed)  # fastconv's dropout masks are keyed from NumPy's global generator

    def build():
        rng = np.random.default_rng(args.seed)
        if transformer:
            return TransformerClassifier(V, D, args.nhead, H, K, args.layers, T, args.dropout, rng=rng)
        return RnnClassifier(V, D, H, K, args.cell, rng=rng)

    init = build()
    orders = [np.random.default_rng(args.seed + 1 + ep).permutation(len(x_train)) for ep in range(args.epochs)]

    def batches(order):
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            yield x_train[idx], t_train[idx]

    if "fastconv" in args.backends:
        model = build()
        opt = ListAdam(args.lr)
        t0 = time.perf_counter()
        for ep in range(args.epochs):
            for x, t in batches(orders[ep]):
                fastconv_step(model, opt, args.clip, x, t)
        secs = time.perf_counter() - t0
        pred = model.predict(x_test).argmax(1)
        rows["fastconv"] = (np.mean(pred == t_test), macro_f1(pred, t_test, K), secs)
    if "torch" in args.backends:
        import torch

        torch.manual_seed(args.seed)  # dropout masks
        nn = torch.nn
        p = [a.copy() for a in init.params]
        lstm = args.cell == "lstm"

        class TorchClassifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(V, D)
                self.rnn = (nn.LSTM if lstm else nn.RNN)(D, H, batch_first=True)
                self.affine = nn.Linear(H, K)
                with torch.no_grad():
                    self.embed.weight.copy_(torch.tensor(p[0]))
                    self.affine.weight.copy_(torch.tensor(p[4].T.copy()))
                    self.affine.bias.copy_(torch.tensor(p[5]))
                set_rnn(torch, self.rnn, *p[1:4], lstm=lstm)

            def forward(self, x):
                return self.affine(self.rnn(self.embed(x))[0][:, -1])

        class TorchTransformer(nn.Module):
            """TransformerClassifier: the same parameters; no attention mask, the mean over non-padding ids."""

            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(V, D)
                self.pos = nn.Parameter(torch.tensor(p[1]))
                self.blocks = nn.ModuleList(
                    torch_encoder_layer(torch, D, args.nhead, H, args.dropout, p[2 + 16 * k: 18 + 16 * k])
                    for k in range(args.layers))
                self.affine = nn.Linear(D, K)
                with torch.no_grad():
                    self.embed.weight.copy_(torch.tensor(p[0]))
                    self.affine.weight.copy_(torch.tensor(p[-2].T.copy()))
                    self.affine.bias.copy_(torch.tensor(p[-1]))

            def forward(self, x):
                h = self.embed(x) + self.pos[: x.shape[1]]
                for block in self.blocks:
                    h = block(h)
                keep = (x != 0).to(h.dtype)
                w = keep / keep.sum(1, keepdim=True).clamp(min=1)
                return self.affine(torch.einsum("nt,ntd->nd", w, h))

        tm = TorchTransformer() if transformer else TorchClassifier()
        topt = torch_adam(torch, args, tm.parameters())
        ce = nn.functional.cross_entropy
        t0 = time.perf_counter()
        for ep in range(args.epochs):
            for x, t in batches(orders[ep]):
                xb, tb = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(t)
                torch_step(torch, tm, topt, args.clip, lambda a, b: ce(tm(a), b), xb, tb)
        secs = time.perf_counter() - t0
        tm.eval()
        with torch.no_grad():
            pred = tm(torch.from_numpy(x_test.astype(np.int64))).argmax(1).numpy()
        rows["torch"] = (np.mean(pred == t_test), macro_f1(pred, t_test, K), secs)
    print("| model | test accuracy | macro-F1 | training time (s) |")
    print("|---|---|---|---|")
    for name, (a, f, s) in rows.items():
        print(f"| {name} | {a:.1%} | {f:.3f} | {s:.0f} |")


# ======================================================================================================


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("task", choices=("charlm", "addition", "date", "classify"))
    ap.add_argument("--backends", default="fastconv,torch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--wordvec", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--steps", type=int, default=35)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--clip", type=float)
    ap.add_argument("--dropout", type=float)
    ap.add_argument("--cell", choices=("rnn", "lstm", "transformer"), default="rnn")
    ap.add_argument("--nhead", type=int, default=4, help="classify --cell transformer: attention heads")
    ap.add_argument("--layers", type=int, default=1, help="classify --cell transformer: encoder layers")
    ap.add_argument("--train-size", type=int, help="addition, date: train on the first N training questions")
    ap.add_argument("--torch-adam", choices=("book", "torch"), default="book",
                    help="PyTorch's optimizer: the book's Adam as fastconv runs it, or torch.optim.Adam")
    ap.add_argument("--val", type=int, default=5000, help="addition: validation questions held out of training")
    ap.add_argument("--prime", default="《春夜》\n作者：李白\n")
    args = ap.parse_args()
    defaults = {
        "charlm": {"epochs": 20, "hidden": 200, "wordvec": 200, "batch": 20, "lr": 0.003, "clip": 1.0,
                   "dropout": 0.5},
        "addition": {"epochs": 25, "hidden": 128, "wordvec": 16, "batch": 128, "lr": 0.001, "clip": 5.0},
        "date": {"epochs": 10, "hidden": 256, "wordvec": 16, "batch": 128, "lr": 0.001, "clip": 5.0},
        "classify": {"epochs": 10, "hidden": 64, "wordvec": 32, "batch": 32, "lr": 0.003, "clip": 5.0,
                     "dropout": 0.1},
    }[args.task]
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.backends = args.backends.split(",")
    fastconv.set_num_threads(args.threads)
    if "torch" in args.backends:
        import torch

        torch.set_num_threads(args.threads)
    print(machine_line())
    {"charlm": charlm, "addition": seq2seq, "date": seq2seq, "classify": classify}[args.task](args)


if __name__ == "__main__":
    main()
