#!/usr/bin/python3
"""hf_forward.py: an independent numpy reading of a Hugging Face folder and a numpy
forward of LlamaForCausalLM / Qwen3ForCausalLM, written from transformers'
documented semantics and nothing of our C code, for test/test_hf.sh.

  hf_forward.py compare DIR LOGITS.f32 TOK...   our logits (T x V float32, from
        test/hf_logits) against the numpy forward of DIR; max relative error <= 1e-4
  hf_forward.py random DIR ARCH SEED [options]  a folder of random weights:
        ARCH llama|qwen3; --dtype F32|BF16|F16, --untied, --shards N, --kv N, --vocab N
  hf_forward.py tokenizer DIR TOKENIZER.bin     tokenizer.json against our tokenizer
        file: token and merge counts, the byte-to-unicode mapping, a few tokens
  hf_forward.py mutate DIR OUT KIND   a copy of DIR with one deliberate mistake, for the
        negative controls: KIND gate_up (swap gate and up), rope (q/k rows in
        interleaved-pair order instead of rotate-half), kv (swap k and v)
  hf_forward.py edit DIR OUT JSON [OUT JSON ...]   a copy of DIR (one F32 model.safetensors) changed by
        JSON: {"config": {field: value or null to delete}, "drop": [names],
        "add": {name: [shape]}, "dtype": {name: "I64"}} for the import error tests
  hf_forward.py batch FILE   the commands above, one per line (a line starting with
        '!' is a negative control: it must fail), in one process: numpy loads once
Each command prints one line, "ok ..." or "FAIL ...", and exits 0 or 1.

The forward (fp64 accumulation of fp32 weights):
  RMSNorm(x) = x / sqrt(mean(x^2) + eps) * w
  q, k, v = x Wq^T, x Wk^T, x Wv^T; Qwen3: RMSNorm of each head's q and k over hd
  RoPE rotate-half: inv_freq_i = theta^(-2i/hd), x * cos + rotate_half(x) * sin,
  rotate_half(x) = [-x2, x1], cos/sin of the angles repeated twice along hd
  GQA: kv head j serves query heads j*g .. j*g+g-1 (repeat_kv), g = NH / NKV
  softmax(q k^T / sqrt(hd) + causal) v, then o_proj
  MLP: down(silu(gate(x)) * up(x)); logits = RMSNorm(x) lm_head^T (embed when tied)
"""
import json
import os
import struct
import sys

try:
    import numpy as np
except ImportError:
    print("skip: numpy is not installed (apt-get install -y python3-numpy)")
    sys.exit(77)

DTYPES = {"F32": 4, "F16": 2, "BF16": 2}


class Failure(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def read_safetensors(path):
    data = open(path, "rb").read()
    if len(data) < 8:
        fail("%s: truncated" % path)
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        fail("%s: header length past the end" % path)
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    out = {}
    spans = []
    for name, e in header.items():
        if name == "__metadata__":
            continue
        dt, shape, (b, end) = e["dtype"], e["shape"], e["data_offsets"]
        count = int(np.prod(shape)) if shape else 1
        if dt not in DTYPES or count * DTYPES[dt] != end - b or end > len(body):
            fail("%s: tensor %s has a bad entry" % (path, name))
        raw = body[b:end]
        if dt == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif dt == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        else:
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        out[name] = a.reshape(shape)
        spans.append((b, end))
    spans.sort()
    pos = 0
    for b, end in spans:
        if b != pos:
            fail("%s: tensors do not cover the data contiguously" % path)
        pos = end
    if pos != len(body):
        fail("%s: trailing data" % path)
    return out


def load_folder(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        wm = json.load(open(index))["weight_map"]
        w = {}
        for f in sorted(set(wm.values())):
            w.update(read_safetensors(os.path.join(d, f)))
    else:
        w = read_safetensors(os.path.join(d, "model.safetensors"))
    return cfg, w


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def forward(cfg, w, tokens):
    arch = cfg["architectures"][0]
    if arch not in ("LlamaForCausalLM", "Qwen3ForCausalLM"):
        fail("unsupported architecture " + arch)
    qwen3 = arch == "Qwen3ForCausalLM"
    L, NH = cfg["num_hidden_layers"], cfg["num_attention_heads"]
    NKV = cfg.get("num_key_value_heads", NH)
    C = cfg["hidden_size"]
    hd = cfg.get("head_dim") or C // NH
    eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    W = {k: v.astype(np.float64) for k, v in w.items()}
    T = len(tokens)
    x = W["model.embed_tokens.weight"][np.array(tokens)]
    inv_freq = 1.0 / (theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    ang = np.arange(T, dtype=np.float64)[:, None] * inv_freq[None, :]
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]  # (T, 1, hd)
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    for l in range(L):
        p = "model.layers.%d." % l
        h = rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = (h @ W[p + "self_attn.q_proj.weight"].T).reshape(T, NH, hd)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).reshape(T, NKV, hd)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).reshape(T, NKV, hd)
        if qwen3:
            q = rmsnorm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rmsnorm(k, W[p + "self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        g = NH // NKV
        k = np.repeat(k, g, axis=1)  # repeat_kv: kv head j -> query heads j*g .. j*g+g-1
        v = np.repeat(v, g, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        a = s / s.sum(axis=-1, keepdims=True)
        y = np.einsum("hts,shd->thd", a, v).reshape(T, NH * hd)
        x = x + y @ W[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        gt = h @ W[p + "mlp.gate_proj.weight"].T
        up = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (gt / (1.0 + np.exp(-gt)) * up) @ W[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else W["lm_head.weight"]
    return x @ head.T


def cmd_compare(d, logits_path, toks):
    cfg, w = load_folder(d)
    tokens = [int(t) for t in toks]
    ref = forward(cfg, w, tokens)
    ours = np.fromfile(logits_path, dtype="<f4").astype(np.float64)
    if ours.size != ref.size:
        fail("compare %s: %d logits from C, %d from numpy" % (d, ours.size, ref.size))
    ours = ours.reshape(ref.shape)
    err = np.abs(ours - ref).max()
    rel = err / np.abs(ref).max()
    line = "%s: C forward vs numpy %s forward, %d tokens x %d logits: max abs err %.3g, rel %.3g (tolerance rel 1e-4)" % (
        os.path.basename(d.rstrip("/")), cfg["architectures"][0], ref.shape[0], ref.shape[1], err, rel)
    if not rel <= 1e-4:
        fail(line)
    print("ok   " + line)


def write_safetensors(path, tensors, dtype, override=None):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors:
        a = np.ascontiguousarray(a, dtype=np.float32)
        if override and name in override:  # a dtype the reader must refuse, 8 bytes per element
            raw = a.astype("<f8").tobytes()
            header[name] = {"dtype": override[name], "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
            blobs.append(raw)
            off += len(raw)
            continue
        if dtype == "F32":
            raw = a.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = a.astype("<f2").tobytes()
        else:  # BF16 by truncation: the reader must widen exactly what is stored
            raw = (a.view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def cmd_random(d, arch, seed, opts):
    rng = np.random.default_rng(int(seed))
    dtype, untied, shards, NKV, V = "F32", False, 1, 2, 300
    i = 0
    while i < len(opts):
        if opts[i] == "--dtype":
            dtype = opts[i + 1]; i += 2
        elif opts[i] == "--untied":
            untied = True; i += 1
        elif opts[i] == "--shards":
            shards = int(opts[i + 1]); i += 2
        elif opts[i] == "--kv":
            NKV = int(opts[i + 1]); i += 2
        elif opts[i] == "--vocab":
            V = int(opts[i + 1]); i += 2
        else:
            fail("random: unknown option " + opts[i])
    L, C, NH, F = 2, 64, 4, 96
    hd = C // NH
    qwen3 = arch == "qwen3"
    t = []
    def mat(r, c, std=0.08):
        return rng.normal(0, std, (r, c))
    def vec(n):
        return 1.0 + rng.normal(0, 0.2, n)
    t.append(("model.embed_tokens.weight", mat(V, C, 0.5)))
    for l in range(L):
        p = "model.layers.%d." % l
        t += [(p + "input_layernorm.weight", vec(C)), (p + "self_attn.q_proj.weight", mat(NH * hd, C)),
              (p + "self_attn.k_proj.weight", mat(NKV * hd, C)), (p + "self_attn.v_proj.weight", mat(NKV * hd, C)),
              (p + "self_attn.o_proj.weight", mat(C, NH * hd))]
        if qwen3:
            t += [(p + "self_attn.q_norm.weight", vec(hd)), (p + "self_attn.k_norm.weight", vec(hd))]
        t += [(p + "post_attention_layernorm.weight", vec(C)), (p + "mlp.gate_proj.weight", mat(F, C)),
              (p + "mlp.up_proj.weight", mat(F, C)), (p + "mlp.down_proj.weight", mat(C, F))]
    t.append(("model.norm.weight", vec(C)))
    if untied:
        t.append(("lm_head.weight", mat(V, C, 0.3)))
    rng.shuffle(t)  # file order must not matter to a reader
    os.makedirs(d, exist_ok=True)
    cfg = {"architectures": ["Qwen3ForCausalLM" if qwen3 else "LlamaForCausalLM"], "model_type": arch,
           "vocab_size": V, "hidden_size": C, "intermediate_size": F, "num_hidden_layers": L,
           "num_attention_heads": NH, "num_key_value_heads": NKV, "head_dim": hd,
           "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 500000.0, "rope_scaling": None,
           "tie_word_embeddings": not untied, "hidden_act": "silu", "attention_bias": False,
           "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2}
    if qwen3:
        cfg.update({"use_sliding_window": False, "sliding_window": 4096, "max_window_layers": L})
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), t, dtype)
    else:
        wm = {}
        for s in range(shards):
            name = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
            part = t[s::shards]
            write_safetensors(os.path.join(d, name), part, dtype)
            wm.update({n: name for n, _ in part})
        json.dump({"metadata": {"total_size": 0}, "weight_map": wm},
                  open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=2)
    print("ok   random %s folder %s (%s, %d shard(s), %s)" % (arch, d, dtype, shards, "untied" if untied else "tied"))


def save_folder(d, cfg, tensors, dtypes=None):
    os.makedirs(d, exist_ok=True)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), tensors, "F32", dtypes or {})


def cmd_mutate(d, out, kind):
    cfg, w = load_folder(d)
    NH, C = cfg["num_attention_heads"], cfg["hidden_size"]
    hd = cfg.get("head_dim") or C // NH
    for name in list(w):
        if kind == "gate_up" and name.endswith("mlp.gate_proj.weight"):
            up = name.replace("gate_proj", "up_proj")
            w[name], w[up] = w[up], w[name]
        elif kind == "kv" and name.endswith("self_attn.k_proj.weight"):
            v = name.replace("k_proj", "v_proj")
            w[name], w[v] = w[v], w[name]
        elif kind == "rope" and (name.endswith("q_proj.weight") or name.endswith("k_proj.weight")):
            a = w[name].reshape(-1, hd, C)  # rows (heads, hd): rotate-half order -> pairs (2i, 2i+1)
            perm = np.stack([np.arange(hd // 2), np.arange(hd // 2) + hd // 2], axis=1).reshape(-1)
            w[name] = a[:, perm, :].reshape(-1, C)
    save_folder(out, cfg, sorted(w.items()))
    print("ok   mutated copy %s (%s)" % (out, kind))


def cmd_edit(d, out, spec):
    cfg, w = load_folder(d)
    spec = json.loads(spec)
    for k, v in spec.get("config", {}).items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    for name in spec.get("drop", []):
        del w[name]
    for name, shape in spec.get("add", {}).items():
        w[name] = np.zeros(shape, dtype=np.float32)
    save_folder(out, cfg, sorted(w.items()), spec.get("dtype", {}))
    print("ok   edited copy %s" % out)


def bytes_to_unicode():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    m, n = {}, 0
    for b in range(256):
        if b in keep:
            m[b] = chr(b)
        else:
            m[b] = chr(256 + n)
            n += 1
    return m


def cmd_tokenizer(d, tok_path):
    raw = open(tok_path, "rb").read()
    h = struct.unpack("<256i", raw[:1024])
    V, eot, nmerge = h[2], h[3], h[4]
    pos, toks = 1024, []
    for _ in range(V):
        n = raw[pos]
        toks.append(raw[pos + 1:pos + 1 + n])
        pos += 1 + n
    merges = [struct.unpack("<3i", raw[pos + 12 * i:pos + 12 * i + 12]) for i in range(nmerge)]
    tj = json.load(open(os.path.join(d, "tokenizer.json"), encoding="utf-8"))
    vocab, jm = tj["model"]["vocab"], tj["model"]["merges"]
    b2u = bytes_to_unicode()
    problems = []
    if len(vocab) != V:
        problems.append("vocab has %d tokens, the tokenizer file %d" % (len(vocab), V))
    if len(jm) != len(set((a, b) for a, b, _ in merges)):
        problems.append("%d merges, the tokenizer file %d" % (len(jm), nmerge))
    # the fixed points of GPT-2's map: space -> U+0120, newline -> U+010A, 'A' -> 'A', 0xAD -> U+0143
    for b, cp in ((32, 0x120), (10, 0x10A), (65, 65), (0xAD, 0x143), (0, 0x100), (0x7F, 0x121)):
        if ord(b2u[b]) != cp:
            problems.append("byte %d maps to U+%04X, not U+%04X" % (b, ord(b2u[b]), cp))
    for i in sorted(set([0, 1, 198, 220, 1000, eot, V - 1] + list(range(0, V, max(1, V // 50))))):
        s = "".join(b2u[c] for c in toks[i])
        if vocab.get(s) != i:
            problems.append("token %d (%r) is %r in tokenizer.json" % (i, toks[i], vocab.get(s)))
    inv = {v: k for k, v in vocab.items()}
    for r in (0, 1, len(jm) // 2, len(jm) - 1):
        if r < len(merges) and r < len(jm):
            a, b, _ = merges[r]
            want = inv[a] + " " + inv[b]
            got = jm[r] if isinstance(jm[r], str) else " ".join(jm[r])
            if got != want:
                problems.append("merge %d is %r, expected %r" % (r, got, want))
    added = tj["added_tokens"]
    if len(added) != 1 or added[0]["id"] != eot or added[0]["content"] != "<|endoftext|>" or not added[0]["special"]:
        problems.append("added_tokens is not <|endoftext|> = %d: %r" % (eot, added))
    if tj["pre_tokenizer"].get("type") != "ByteLevel" or tj["pre_tokenizer"].get("use_regex") is not True:
        problems.append("pre_tokenizer is not ByteLevel with use_regex")
    if tj["decoder"].get("type") != "ByteLevel":
        problems.append("decoder is not ByteLevel")
    tc = json.load(open(os.path.join(d, "tokenizer_config.json")))
    if tc.get("eos_token") != "<|endoftext|>":
        problems.append("tokenizer_config.json eos_token")
    line = "tokenizer.json: %d tokens, %d merges, byte map and %d sampled tokens checked" % (len(vocab), len(jm), 50)
    if problems:
        fail(line + ": " + "; ".join(problems[:5]))
    print("ok   " + line)


def run(a):
    if len(a) >= 3 and a[0] == "compare":
        cmd_compare(a[1], a[2], a[3:])
    elif len(a) >= 4 and a[0] == "random":
        cmd_random(a[1], a[2], a[3], a[4:])
    elif len(a) == 4 and a[0] == "mutate":
        cmd_mutate(a[1], a[2], a[3])
    elif len(a) >= 4 and len(a) % 2 == 0 and a[0] == "edit":
        for i in range(2, len(a), 2):
            cmd_edit(a[1], a[i], a[i + 1])
    elif len(a) == 3 and a[0] == "tokenizer":
        cmd_tokenizer(a[1], a[2])
    else:
        raise Failure("bad command: " + " ".join(a))


def cmd_batch(path):
    """one command per line (shell-quoted); a line starting with '!' must fail
    (a negative control); prints one ok/FAIL line per command"""
    import shlex
    bad = 0
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        expect_fail = line.startswith("!")
        a = shlex.split(line.lstrip("!"))
        try:
            run(a)
            if expect_fail:
                print("FAIL negative control %s: the mistake went unnoticed" % " ".join(a[1:2]))
                bad += 1
        except Failure as e:
            if expect_fail:
                import re
                m = re.search(r"max abs err [^,]*, rel \S+", str(e))
                print("ok   negative control %s: detected (%s)" % (os.path.basename(a[1]), m.group(0) if m else str(e)[:80]))
            else:
                print("FAIL " + str(e))
                bad += 1
        except Exception as e:  # a crash in one command must not hide the others
            print("FAIL %s: %s: %s" % (" ".join(a[:2]), type(e).__name__, e))
            bad += 1
        sys.stdout.flush()
    return bad


def main():
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "batch":
        sys.exit(1 if cmd_batch(a[1]) else 0)
    if not a or a[0] not in ("compare", "random", "mutate", "edit", "tokenizer"):
        print(__doc__)
        sys.exit(2)
    try:
        run(a)
    except Failure as e:
        print("FAIL " + str(e))
        sys.exit(1)


if __name__ == "__main__":
    main()
