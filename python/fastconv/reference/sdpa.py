"""Reference scaled dot-product attention (Vaswani et al., "Attention Is All You Need", 2017, eq. 1) of many
independent heads, in plain NumPy from the definition: p = softmax(scale * q k^T) over the keys, out = (p *
mask) v. Follows the input dtype."""

import numpy as np

__all__ = ["sdpa_backward", "sdpa_forward"]


def sdpa_forward(q, k, v, scale, mask=None):
    """Returns (out, p) for q (B, L, E), k (B, S, E), v (B, S, F); mask (B, L, S) multiplies p when given."""
    s = scale * np.einsum("ble,bse->bls", q, k)
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    p = e / e.sum(axis=-1, keepdims=True)
    pm = p if mask is None else p * mask
    return np.einsum("bls,bsf->blf", pm, v), p


def sdpa_backward(q, k, v, p, dout, scale, mask=None):
    """Returns (dq, dk, dv) for the gradient dout (B, L, F) of the output."""
    pm = p if mask is None else p * mask
    dv = np.einsum("bls,blf->bsf", pm, dout)
    dp = np.einsum("blf,bsf->bls", dout, v)
    if mask is not None:
        dp = dp * mask
    # the softmax's Jacobian, row by row: ds = p * (dp - sum_s p dp)
    ds = p * (dp - (p * dp).sum(axis=-1, keepdims=True))
    return scale * np.einsum("bls,bse->ble", ds, k), scale * np.einsum("bls,ble->bse", ds, q), dv
