"""
gpt_ref.py: an independent PyTorch reference for the model of SPEC.md section 1 and the
training step of section 2. It writes binary reference-state files that the C tests load,
so the tests themselves need no PyTorch. Everything is computed in float64 (gradients by
autograd) and stored as float32.

Run (Debian's PyTorch: `apt-get install python3-torch`, then the system python):
    /usr/bin/python3 dev/reference/gpt_ref.py            # writes both test/data files
    /usr/bin/python3 dev/reference/gpt_ref.py --check    # same, then self-checks them
    /usr/bin/python3 dev/reference/gpt_ref.py --preset d2 --out /tmp/r.bin --seed 7 --clip 0.5
With no options it regenerates exactly test/data/ref_d2.bin and test/data/ref_variant.bin.
The file format is described in dev/README.md and in the comment above write_reference().
"""

import argparse
import math
import os
import struct
import sys

import numpy as np
import torch

DTYPE = torch.float64
MAGIC = 20261190
VERSION = 1

# ----------------------------------------------------------------------------
# configuration


def ffn_dim_for(C):
    """SwiGLU hidden width: 128 * ceil((8C/3) / 128), in integers so there is no rounding doubt."""
    return 128 * (-(-8 * C // (3 * 128)))


def padded_vocab_for(V):
    return 128 * (-(-V // 128))


# Gradient clipping thresholds, chosen (from the printed norms) so that the norm is above the
# threshold in the early steps and below it in the late ones, with a margin of several percent
# either way: the files then test both branches, and float32 rounding in the C code cannot flip
# a decision. At the default 1.0 every step of both files would be clipped, and since AdamW is
# nearly blind to a constant gradient scale, a broken clip would then move the losses only by
# about 1e-5; with the switch from clipped to unclipped it moves them by about 1e-3.
CLIP_D2 = 2.0
CLIP_VARIANT = 2.5

# The two files committed into test/data. Every value here can be overridden on the command line.
PRESETS = {
    # d2: the test model of SPEC.md (hd 64 so the GPU kernels run it too), small vocabulary
    "d2": dict(
        out="test/data/ref_d2.bin",
        max_seq_len=64, vocab_size=500, n_layer=2, n_embd=256, n_head=4, n_kv_head=2,
        rope_theta=10000.0, norm_eps=1e-5, logit_softcap=30.0,
        qk_norm=1, tied_embeddings=1, parallel_block=0,
        B=2, T=32,
        clip=CLIP_D2,
    ),
    # variant: the other side of every option: MQA, no QK-norm, untied head, parallel block,
    # soft-cap disabled (hd 64 too, so the GPU test runs it)
    "variant": dict(
        out="test/data/ref_variant.bin",
        max_seq_len=64, vocab_size=300, n_layer=2, n_embd=128, n_head=2, n_kv_head=1,
        rope_theta=10000.0, norm_eps=1e-5, logit_softcap=0.0,
        qk_norm=0, tied_embeddings=0, parallel_block=1,
        B=2, T=24,
        clip=CLIP_VARIANT,
    ),
}

# training settings shared by both presets (clip None: each preset's own threshold above)
TRAIN_DEFAULTS = dict(
    zloss=1e-4, lr=1e-3, warmup=2, nsteps=10, final_frac=0.1,
    weight_decay=0.1, clip=None, beta1=0.9, beta2=0.95, adam_eps=1e-8,
    seed=1337,
)


def param_shapes(cfg):
    """(name, shape) in the order of SPEC.md section 3."""
    L, C, NH, NKV = cfg["n_layer"], cfg["n_embd"], cfg["n_head"], cfg["n_kv_head"]
    hd, F, Vp = C // NH, cfg["ffn_dim"], cfg["padded_vocab_size"]
    shapes = [
        ("wte", (Vp, C)),
        ("ln1_w", (L, C)),
        ("qkv_w", (L, (NH + 2 * NKV) * hd, C)),
        ("q_norm_w", (L, hd)),      # always present; zero gradient when qk_norm == 0
        ("k_norm_w", (L, hd)),      # always present; zero gradient when qk_norm == 0
        ("attn_proj_w", (L, C, NH * hd)),
        ("ln2_w", (L, C)),          # always present; zero gradient when parallel_block == 1
        ("fc_w", (L, 2 * F, C)),
        ("fc_proj_w", (L, C, F)),
        ("lnf_w", (C,)),
    ]
    if not cfg["tied_embeddings"]:
        shapes.append(("lm_w", (Vp, C)))
    return shapes


NORM_WEIGHTS = ("ln1_w", "q_norm_w", "k_norm_w", "ln2_w", "lnf_w")
# weight decay applies to these 2-D matrices only; never to wte (also when it is the tied head)
DECAYED = ("qkv_w", "attn_proj_w", "fc_w", "fc_proj_w", "lm_w")

# ----------------------------------------------------------------------------
# init


def init_params(cfg, gen):
    """Draw every tensor from the seeded generator, in parameter order, then round to float32
    (so the float32 params stored in the file are exactly the ones the reference computes with)."""
    L, V = cfg["n_layer"], cfg["vocab_size"]
    params = {}
    for name, shape in param_shapes(cfg):
        if name in NORM_WEIGHTS:
            # SPEC init is 1; we use 1 + 0.1 N(0,1) so a gradient test also catches a norm
            # weight that is applied to the wrong element (all-ones would hide it)
            p = 1.0 + 0.1 * torch.randn(shape, generator=gen, dtype=DTYPE)
        elif name in ("attn_proj_w", "fc_proj_w"):
            p = torch.randn(shape, generator=gen, dtype=DTYPE) * (0.02 / math.sqrt(2 * L))
        else:
            p = torch.randn(shape, generator=gen, dtype=DTYPE) * 0.02
        if name in ("wte", "lm_w"):
            p[V:] = 0.0  # padded vocabulary rows are zero
        params[name] = p.float().to(DTYPE)
    return params


# ----------------------------------------------------------------------------
# the model


def rmsnorm(v, w, eps):
    """v / sqrt(mean(v^2) + eps) * w over the last dimension."""
    return v / torch.sqrt((v * v).mean(dim=-1, keepdim=True) + eps) * w


def rope(x, theta):
    """Rotate-half RoPE. x: (B, H, T, hd). Element i pairs with i + hd/2 (i < hd/2) and both
    are rotated by angle pos * theta^(-2i/hd), pos = 0..T-1."""
    T, hd = x.shape[-2], x.shape[-1]
    half = hd // 2
    i = torch.arange(half, dtype=DTYPE)
    inv_freq = theta ** (-2.0 * i / hd)                       # (hd/2,)
    pos = torch.arange(T, dtype=DTYPE)
    angle = pos[:, None] * inv_freq[None, :]                  # (T, hd/2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def attention(h, P, l, cfg):
    """Causal GQA self-attention of layer l on the normed input h: (B, T, C) -> (B, T, C)."""
    B, T, C = h.shape
    NH, NKV = cfg["n_head"], cfg["n_kv_head"]
    hd = C // NH
    eps = cfg["norm_eps"]

    qkv = h @ P["qkv_w"][l].T                                 # (B, T, (NH + 2 NKV) hd)
    q = qkv[..., : NH * hd].view(B, T, NH, hd)                # rows: all q heads,
    k = qkv[..., NH * hd : (NH + NKV) * hd].view(B, T, NKV, hd)   # then k heads,
    v = qkv[..., (NH + NKV) * hd :].view(B, T, NKV, hd)           # then v heads
    if cfg["qk_norm"]:
        # one weight vector of size hd, shared by all heads; before RoPE
        q = rmsnorm(q, P["q_norm_w"][l], eps)
        k = rmsnorm(k, P["k_norm_w"][l], eps)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)   # (B, heads, T, hd)
    q, k = rope(q, cfg["rope_theta"]), rope(k, cfg["rope_theta"])

    # GQA: q head j reads kv head j // (NH / NKV); repeat_interleave lays the kv heads out so
    # that index j holds exactly that head
    rep = NH // NKV
    k = k.repeat_interleave(rep, dim=1)                       # (B, NH, T, hd)
    v = v.repeat_interleave(rep, dim=1)

    scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd)        # (B, NH, T, T)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    y = torch.softmax(scores, dim=-1) @ v                     # (B, NH, T, hd)
    y = y.transpose(1, 2).reshape(B, T, NH * hd)
    return y @ P["attn_proj_w"][l].T


def mlp(h, P, l, cfg):
    """SwiGLU: fc_w rows 0..F-1 are the gate, F..2F-1 the up projection."""
    F = cfg["ffn_dim"]
    gu = h @ P["fc_w"][l].T                                   # (B, T, 2F)
    g, u = gu[..., :F], gu[..., F:]
    return (torch.nn.functional.silu(g) * u) @ P["fc_proj_w"][l].T


def forward(P, cfg, x, y, zloss):
    """Returns logits (B, T, Vp) after the soft-cap, and the mean loss."""
    eps, V = cfg["norm_eps"], cfg["vocab_size"]
    h = P["wte"][x]                                           # (B, T, C)
    for l in range(cfg["n_layer"]):
        if cfg["parallel_block"]:
            n = rmsnorm(h, P["ln1_w"][l], eps)                # one norm; ln2_w unused
            h = h + attention(n, P, l, cfg) + mlp(n, P, l, cfg)
        else:
            h = h + attention(rmsnorm(h, P["ln1_w"][l], eps), P, l, cfg)
            h = h + mlp(rmsnorm(h, P["ln2_w"][l], eps), P, l, cfg)
    h = rmsnorm(h, P["lnf_w"], eps)
    lm_w = P["wte"] if cfg["tied_embeddings"] else P["lm_w"]
    z = h @ lm_w.T                                            # (B, T, Vp)
    cap = cfg["logit_softcap"]
    if cap > 0:
        z = cap * torch.tanh(z / cap)
    # padded columns (>= V) are never a prediction: they take no part in the softmax
    zv = z[..., :V]
    lse = torch.logsumexp(zv, dim=-1)                         # (B, T)
    target = zv.gather(-1, y.unsqueeze(-1)).squeeze(-1)       # (B, T)
    loss = (lse - target + zloss * lse * lse).mean()
    return z, loss


# ----------------------------------------------------------------------------
# the training step


def lr_at(s, tc):
    """Linear warmup over `warmup` steps, then cosine from lr down to lr * final_frac."""
    lr, warmup, nsteps, frac = tc["lr"], tc["warmup"], tc["nsteps"], tc["final_frac"]
    if s < warmup:
        return lr * (s + 1) / warmup
    decay = (s - warmup) / (nsteps - warmup)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay))
    return lr * frac + coeff * (lr - lr * frac)


def grads_of(P, cfg, x, y, zloss):
    """Loss, logits and autograd gradients (dict) at params P."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in P.items()}
    z, loss = forward(leaves, cfg, x, y, zloss)
    loss.backward()
    # a parameter the config leaves unused (q/k_norm_w without qk_norm, ln2_w in a parallel
    # block) gets no .grad from autograd; its gradient is zero
    G = {k: (t.grad if t.grad is not None else torch.zeros_like(t)).detach()
         for k, t in leaves.items()}
    return loss.detach(), z.detach(), G


def train(P, cfg, tc, x, y):
    """nsteps of AdamW on the same batch. Returns (losses, norms); P is updated in place."""
    m = {k: torch.zeros_like(v) for k, v in P.items()}
    v2 = {k: torch.zeros_like(v) for k, v in P.items()}
    b1, b2, eps = tc["beta1"], tc["beta2"], tc["adam_eps"]
    losses, norms = [], []
    for s in range(tc["nsteps"]):
        loss, _, G = grads_of(P, cfg, x, y, tc["zloss"])
        # global L2 norm over all gradients, reported before clipping; clip by hand, exactly
        # clip / norm (torch's clip_grad_norm_ adds 1e-6 to the norm)
        norm = math.sqrt(sum(float((g * g).sum()) for g in G.values()))
        if norm > tc["clip"]:
            scale = tc["clip"] / norm
            G = {k: g * scale for k, g in G.items()}
        lr = lr_at(s, tc)
        t = s + 1
        for k in P:
            g = G[k]
            m[k] = b1 * m[k] + (1 - b1) * g
            v2[k] = b2 * v2[k] + (1 - b2) * g * g
            mhat = m[k] / (1 - b1 ** t)
            vhat = v2[k] / (1 - b2 ** t)
            wd = tc["weight_decay"] if k in DECAYED else 0.0
            P[k] = P[k] - lr * (mhat / (torch.sqrt(vhat) + eps) + wd * P[k])
        losses.append(float(loss))
        norms.append(norm)
    return losses, norms


# ----------------------------------------------------------------------------
# the reference-state file
#
# header: 256 int32, zeros where unused (floats as their float32 bit pattern)
#   [0] magic 20261190, [1] version 1, [2] B, [3] T, [4] nsteps,
#   [5..18] config in SPEC order: max_seq_len, vocab_size, padded_vocab_size, n_layer, n_embd,
#           n_head, n_kv_head, ffn_dim, rope_theta (f), norm_eps (f), logit_softcap (f),
#           qk_norm, tied_embeddings, parallel_block,
#   [19] zloss (f), [20] lr (f), [21] warmup, [22] final fraction (f), [23] schedule (0 cosine),
#   [24] weight_decay (f), [25] grad_clip (f), [26] beta1 (f), [27] beta2 (f), [28] eps (f),
#   [29] number of parameters
# body: params f32 | x i32 (B*T) | y i32 (B*T) | logits f32 (B, T, Vp) | loss f32 (1) |
#       grads f32 (params layout, at the initial params) | losses f32 (nsteps) | norms f32 (nsteps)

CONFIG_FIELDS = [  # (name, is_float) in SPEC order, header words 5..18
    ("max_seq_len", False), ("vocab_size", False), ("padded_vocab_size", False),
    ("n_layer", False), ("n_embd", False), ("n_head", False), ("n_kv_head", False),
    ("ffn_dim", False), ("rope_theta", True), ("norm_eps", True), ("logit_softcap", True),
    ("qk_norm", False), ("tied_embeddings", False), ("parallel_block", False),
]
TRAIN_FIELDS = [  # header words 19..28
    ("zloss", True), ("lr", True), ("warmup", False), ("final_frac", True), ("schedule", False),
    ("weight_decay", True), ("clip", True), ("beta1", True), ("beta2", True), ("adam_eps", True),
]


def f32_bits(f):
    return struct.unpack("<i", struct.pack("<f", f))[0]


def bits_f32(i):
    return struct.unpack("<f", struct.pack("<i", i))[0]


def flat32(tensors):
    return torch.cat([t.reshape(-1) for t in tensors]).float()


def write_reference(path, cfg, tc, B, T, params, x, y, logits, loss, grads, losses, norms):
    names = [n for n, _ in param_shapes(cfg)]
    nparams = sum(params[n].numel() for n in names)
    header = [0] * 256
    header[0:5] = [MAGIC, VERSION, B, T, tc["nsteps"]]
    for i, (name, is_float) in enumerate(CONFIG_FIELDS):
        header[5 + i] = f32_bits(cfg[name]) if is_float else int(cfg[name])
    tcs = dict(tc, schedule=0)
    for i, (name, is_float) in enumerate(TRAIN_FIELDS):
        header[19 + i] = f32_bits(tcs[name]) if is_float else int(tcs[name])
    header[29] = nparams
    body = [
        flat32([params[n] for n in names]),
        x.reshape(-1).to(torch.int32),
        y.reshape(-1).to(torch.int32),
        logits.reshape(-1).float(),
        torch.tensor([float(loss)], dtype=torch.float32),
        flat32([grads[n] for n in names]),
        torch.tensor(losses, dtype=torch.float32),
        torch.tensor(norms, dtype=torch.float32),
    ]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<256i", *header))
        for t in body:
            # explicit little-endian dtypes, whatever the machine's byte order
            le = "<f4" if t.dtype == torch.float32 else "<i4"
            f.write(t.contiguous().numpy().astype(le).tobytes())
    os.replace(tmp, path)


def read_reference(path):
    """Parse a reference file back into (cfg, tc, B, T, dict of flat tensors). Validates sizes."""
    with open(path, "rb") as f:
        data = f.read()
    header = struct.unpack("<256i", data[:1024])
    assert header[0] == MAGIC, f"{path}: bad magic {header[0]}"
    assert header[1] == VERSION, f"{path}: bad version {header[1]}"
    B, T, nsteps = header[2:5]
    cfg = {}
    for i, (name, is_float) in enumerate(CONFIG_FIELDS):
        cfg[name] = bits_f32(header[5 + i]) if is_float else header[5 + i]
    tc = {"nsteps": nsteps}
    for i, (name, is_float) in enumerate(TRAIN_FIELDS):
        tc[name] = bits_f32(header[19 + i]) if is_float else header[19 + i]
    nparams = header[29]
    assert nparams == sum(math.prod(s) for _, s in param_shapes(cfg)), "parameter count"
    Vp = cfg["padded_vocab_size"]
    layout = [("params", torch.float32, nparams), ("x", torch.int32, B * T),
              ("y", torch.int32, B * T), ("logits", torch.float32, B * T * Vp),
              ("loss", torch.float32, 1), ("grads", torch.float32, nparams),
              ("losses", torch.float32, nsteps), ("norms", torch.float32, nsteps)]
    expected = 1024 + 4 * sum(n for _, _, n in layout)
    assert len(data) == expected, f"{path}: {len(data)} bytes, expected {expected}"
    out, off = {}, 1024
    for name, dt, n in layout:
        le = "<f4" if dt == torch.float32 else "<i4"
        out[name] = torch.from_numpy(np.frombuffer(data, dtype=le, count=n, offset=off).astype(le[1:]))
        off += 4 * n
    return cfg, tc, B, T, out


def unflatten(flat, cfg):
    P, off = {}, 0
    for name, shape in param_shapes(cfg):
        n = math.prod(shape)
        P[name] = flat[off : off + n].reshape(shape).to(DTYPE)
        off += n
    return P


# ----------------------------------------------------------------------------
# self-checks (--check)


def check_finite_differences(P, cfg, x, y, zloss, grads, gen, per_param=3):
    """Central differences in float64 on a few entries of every parameter; returns the worst
    error relative to max(|fd|, |autograd|, 1e-4). The floor keeps tiny gradients, whose
    finite difference is mostly rounding noise, from failing the check."""
    worst = 0.0
    h = 1e-5
    for name, p in P.items():
        flat_g = grads[name].reshape(-1)
        V = cfg["vocab_size"]
        picks = []
        # the entry with the largest gradient, plus random ones (not in padded vocab rows)
        picks.append(int(flat_g.abs().argmax()))
        for _ in range(per_param - 1):
            idx = int(torch.randint(p.numel(), (1,), generator=gen))
            if name == "wte":
                # an embedding row gets a gradient only from the tokens in x (and, when tied,
                # from the head), so pick a row that x uses
                row = int(x.reshape(-1)[idx % x.numel()])
                idx = row * p.shape[1] + idx % p.shape[1]
            elif name == "lm_w":
                idx = idx % (V * p.shape[1])  # not a padded row: its gradient is zero by design
            picks.append(idx)
        for idx in picks:
            plus = {k: v.clone() for k, v in P.items()}
            minus = {k: v.clone() for k, v in P.items()}
            plus[name].view(-1)[idx] += h
            minus[name].view(-1)[idx] -= h
            with torch.no_grad():
                fd = (float(forward(plus, cfg, x, y, zloss)[1])
                      - float(forward(minus, cfg, x, y, zloss)[1])) / (2 * h)
            ag = float(flat_g[idx])
            rel = abs(fd - ag) / max(abs(fd), abs(ag), 1e-4)
            worst = max(worst, rel)
            print(f"    {name:12s}[{idx:7d}] autograd {ag:+.10e} fd {fd:+.10e} rel {rel:.2e}")
    return worst


def check_file(path, cfg, tc, B, T, params, x, y, logits, loss, grads, losses, norms):
    """The file reads back bit-exactly, and a float64 forward from the stored float32 params
    reproduces the stored loss."""
    rcfg, rtc, rB, rT, R = read_reference(path)
    names = [n for n, _ in param_shapes(cfg)]
    ok = (rB, rT) == (B, T)
    for name, _ in CONFIG_FIELDS:
        ok &= abs(rcfg[name] - cfg[name]) <= 1e-6 * abs(cfg[name])
    ok &= torch.equal(R["params"], flat32([params[n] for n in names]))
    ok &= torch.equal(R["x"], x.reshape(-1).to(torch.int32))
    ok &= torch.equal(R["y"], y.reshape(-1).to(torch.int32))
    ok &= torch.equal(R["logits"], logits.reshape(-1).float())
    ok &= torch.equal(R["grads"], flat32([grads[n] for n in names]))
    ok &= torch.equal(R["losses"], torch.tensor(losses, dtype=torch.float32))
    ok &= torch.equal(R["norms"], torch.tensor(norms, dtype=torch.float32))
    P2 = unflatten(R["params"], rcfg)
    with torch.no_grad():
        _, loss2 = forward(P2, rcfg, R["x"].long().view(B, T), R["y"].long().view(B, T),
                           rtc["zloss"])
    dloss = abs(float(loss2) - float(R["loss"][0]))
    ok &= dloss < 1e-5
    print(f"  read back {path}: {'ok' if ok else 'MISMATCH'} (loss recomputed, diff {dloss:.1e})")
    return bool(ok)


# ----------------------------------------------------------------------------
# main


def generate(cfg, tc, out, check):
    cfg = dict(cfg)
    cfg["padded_vocab_size"] = padded_vocab_for(cfg["vocab_size"])
    cfg["ffn_dim"] = ffn_dim_for(cfg["n_embd"])
    B, T = cfg.pop("B"), cfg.pop("T")
    assert cfg["n_embd"] % cfg["n_head"] == 0 and (cfg["n_embd"] // cfg["n_head"]) % 2 == 0
    assert cfg["n_head"] % cfg["n_kv_head"] == 0 and T <= cfg["max_seq_len"]

    gen = torch.Generator().manual_seed(tc["seed"])
    P0 = init_params(cfg, gen)
    x = torch.randint(0, cfg["vocab_size"], (B, T), generator=gen)
    y = torch.randint(0, cfg["vocab_size"], (B, T), generator=gen)

    loss, logits, grads = grads_of(P0, cfg, x, y, tc["zloss"])
    P = {k: v.clone() for k, v in P0.items()}
    losses, norms = train(P, cfg, tc, x, y)

    write_reference(out, cfg, tc, B, T, P0, x, y, logits, loss, grads, losses, norms)
    nparams = sum(v.numel() for v in P0.values())
    print(f"wrote {out} ({os.path.getsize(out)} bytes): L{cfg['n_layer']} C{cfg['n_embd']} "
          f"NH{cfg['n_head']} NKV{cfg['n_kv_head']} F{cfg['ffn_dim']} V{cfg['vocab_size']}/"
          f"{cfg['padded_vocab_size']} B{B} T{T}, {nparams} params, clip {tc['clip']}")
    print(f"  loss {float(loss):.6f}")
    for s in range(tc["nsteps"]):
        clipped = " (clipped)" if norms[s] > tc["clip"] else ""
        print(f"  step {s:2d} lr {lr_at(s, tc):.6e} loss {losses[s]:.6f} norm {norms[s]:.6f}"
              f"{clipped}")

    if not check:
        return True
    print("  finite differences (float64, h = 1e-5):")
    worst = check_finite_differences(P0, cfg, x, y, tc["zloss"], grads,
                                     torch.Generator().manual_seed(tc["seed"] + 1))
    fd_ok = worst < 1e-5
    print(f"  worst relative error {worst:.2e} ({'ok' if fd_ok else 'FAIL'}, tolerance 1e-5)")
    file_ok = check_file(out, cfg, tc, B, T, P0, x, y, logits, loss, grads, losses, norms)
    return fd_ok and file_ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["all"] + list(PRESETS), default="all",
                    help="which file to write (default: both)")
    ap.add_argument("--out", help="output path (only with a single --preset)")
    ap.add_argument("--check", action="store_true",
                    help="also compare autograd with finite differences and read the file back")
    for name in ["max_seq_len", "vocab_size", "n_layer", "n_embd", "n_head", "n_kv_head",
                 "qk_norm", "tied_embeddings", "parallel_block", "B", "T"]:
        ap.add_argument("--" + name, type=int)
    for name in ["rope_theta", "norm_eps", "logit_softcap"]:
        ap.add_argument("--" + name, type=float)
    for name, default in TRAIN_DEFAULTS.items():
        kind = float if name == "clip" else type(default)
        ap.add_argument("--" + name, type=kind, default=default,
                        help="default: the preset's" if default is None else f"default {default}")
    args = vars(ap.parse_args())

    if args["preset"] == "all" and args["out"]:
        ap.error("--out needs a single --preset")
    names = list(PRESETS) if args["preset"] == "all" else [args["preset"]]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ok = True
    for name in names:
        cfg = {k: v for k, v in PRESETS[name].items() if k not in ("out", "clip")}
        for k in cfg:
            if args.get(k) is not None:
                cfg[k] = args[k]
        tc = {k: args[k] for k in TRAIN_DEFAULTS}
        if tc["clip"] is None:
            tc["clip"] = PRESETS[name]["clip"]
        out = args["out"] or os.path.join(root, PRESETS[name]["out"])
        ok &= generate(cfg, tc, out, args["check"])
    if args["check"]:
        print("check:", "all ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    sys.exit(main())
