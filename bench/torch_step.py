#!/usr/bin/env python3
"""PyTorch mirror of one Selftok training step, for a side-by-side speed ratio.

The same network, shapes and step as the TypeScript trainer (src/tokenizer/encoder.ts,
decoder.ts, quantizer.ts, src/train/loss.ts): dual-stream encoder, cosine VQ with the
straight-through estimator, per-token gradient scale and entropy loss, MMDiT decoder with
the per-sample key mask and condition drop, optional pixel head, x0-prediction with the
velocity loss, AdamW. It is a timing reference only (random init, random images): the
host-side codebook EMA is left out on both sides' timed path (bench.ts times `trainStep`,
which includes it; it is small next to the network).

    python3 bench/torch_step.py --config configs/tiny.json --batch 16 --device cpu --threads 1
    python3 bench/torch_step.py --config configs/small.json --batch 128 --device cuda

Prints one JSON line: config, device, batch, ms per step (median of --steps after --warmup),
images/s, and the step's peak memory: on CUDA the allocator's high-water mark
(torch.cuda.max_memory_allocated: tensors only, as our tracker counts live device buffers);
on the CPU the growth of the process's resident set (its high-water mark, ru_maxrss, minus the
resident set before the model is built: tensors plus allocator slack, without the interpreter
and the torch library).
"""
import argparse
import json
import math
import os
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def sincos(positions, dim):
    half = dim // 2
    omega = 1.0 / (10000 ** (torch.arange(half, dtype=torch.float32) / half))
    out = positions[:, None].float() * omega[None]
    return torch.cat([torch.sin(out), torch.cos(out)], -1)


def sincos2d(g, dim):
    ys, xs = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    return torch.cat([sincos(ys.flatten(), dim // 2), sincos(xs.flatten(), dim // 2)], -1)


def timestep_features(t, dim=256):
    half = dim // 2
    f = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    a = t[:, None].float() * f[None]
    return torch.cat([torch.cos(a), torch.sin(a)], -1)


class TimeEmbedder(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(256, dim), nn.Linear(dim, dim)

    def forward(self, feats):
        return self.fc2(F.silu(self.fc1(feats)))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def ln(x):
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


def modulate(h, shift, scale):
    return h * (1 + scale) + shift


def attention(q, k, v, heads, key_mask=None):
    B, L, D = q.shape
    S = k.shape[1]
    hd = D // heads
    q = q.view(B, L, heads, hd).transpose(1, 2)
    k = k.view(B, S, heads, hd).transpose(1, 2)
    v = v.view(B, S, heads, hd).transpose(1, 2)
    mask = None if key_mask is None else (key_mask > 0.5)[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(B, L, D)


def patchify(x, p):
    B, H, W, C = x.shape
    return x.view(B, H // p, p, W // p, p, C).permute(0, 1, 3, 2, 4, 5).reshape(B, (H // p) * (W // p), p * p * C)


def unpatchify(x, p, H, W, C):
    B = x.shape[0]
    return x.view(B, H // p, W // p, p, p, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        e, im = cfg["encoder"], cfg["image"]
        Di, Dq, depth, r = e["imageWidth"], e["tokenWidth"], e["depth"], e["mlpRatio"]
        self.cfg = cfg
        self.patch = nn.Linear(im["patch"] ** 2 * im["channels"], Di)
        self.queries = nn.Parameter(torch.randn(cfg["K"], Dq) * 0.02)
        self.img = nn.ModuleList(
            [nn.ModuleDict({"qkv": nn.Linear(Di, 3 * Di), "proj": nn.Linear(Di, Di), "mlp": Mlp(Di, r * Di)}) for _ in range(depth - 1)]
        )
        self.tok = nn.ModuleList(
            [
                nn.ModuleDict(
                    {
                        "pos": TimeEmbedder(Dq),
                        "ada": nn.Linear(Dq, 6 * Dq),
                        "imgKv": nn.Linear(Di, 2 * Dq),
                        "qkv": nn.Linear(Dq, 3 * Dq),
                        "proj": nn.Linear(Dq, Dq),
                        "mlp": Mlp(Dq, r * Dq),
                    }
                )
                for _ in range(depth)
            ]
        )
        self.proj_in = nn.Linear(Dq, cfg["quantizer"]["dim"])
        self.post_ln = nn.LayerNorm(cfg["quantizer"]["dim"], eps=1e-6)
        g = im["size"] // im["patch"]
        self.register_buffer("pos2d", sincos2d(g, Di)[None])
        K = cfg["K"]
        self.register_buffer("tokfeat", timestep_features(torch.tensor([1000.0 + 8 * k for k in range(K)])))

    def forward(self, x0):
        e = self.cfg["encoder"]
        B, K = x0.shape[0], self.cfg["K"]
        x = self.patch(patchify(x0, self.cfg["image"]["patch"])) + self.pos2d
        q = self.queries[None].expand(B, -1, -1)
        for l, tb in enumerate(self.tok):
            a = ln(x)
            mods = tb["ada"](F.silu(tb["pos"](self.tokfeat)))[None]
            sh, sc, g1, sh2, sc2, g2 = mods.chunk(6, -1)
            qq, kq, vq = tb["qkv"](modulate(ln(q), sh, sc)).chunk(3, -1)
            ki, vi = tb["imgKv"](a).chunk(2, -1)
            q = q + g1 * tb["proj"](attention(qq, torch.cat([ki, kq], 1), torch.cat([vi, vq], 1), e["tokenHeads"]))
            q = q + g2 * tb["mlp"](modulate(ln(q), sh2, sc2))
            if l < len(self.img):
                ib = self.img[l]
                qi, kk, vv = ib["qkv"](a).chunk(3, -1)
                x = x + ib["proj"](attention(qi, kk, vv, e["imageHeads"]))
                x = x + ib["mlp"](ln(x))
        return self.proj_in(q)


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, im = cfg["decoder"], cfg["image"]
        D, r = d["width"], d["mlpRatio"]
        self.cfg = cfg
        p, C = im["patch"], im["channels"]
        self.x_embed = nn.Linear(p * p * C, D)
        self.t_embed = TimeEmbedder(D)
        self.ctx_embed = nn.Linear(cfg["quantizer"]["dim"], D)

        def stream():
            return nn.ModuleDict({"ada": nn.Linear(D, 6 * D), "qkv": nn.Linear(D, 3 * D), "proj": nn.Linear(D, D), "mlp": Mlp(D, r * D)})

        self.blocks = nn.ModuleList()
        for l in range(d["depth"]):
            last = l == d["depth"] - 1
            ctx = nn.ModuleDict({"ada": nn.Linear(D, 2 * D), "qkv": nn.Linear(D, 3 * D)}) if last else stream()
            if not last:
                ctx["pos"] = TimeEmbedder(D)
            self.blocks.append(nn.ModuleDict({"x": stream(), "ctx": ctx}))
        oc = d.get("outChannels", 0) or C
        self.final_ada = nn.Linear(D, 2 * D)
        self.final_out = nn.Linear(D, p * p * oc)
        self.head = nn.Conv2d(oc, C, 3, padding=1) if d.get("outChannels", 0) else None
        g = im["size"] // p
        self.register_buffer("pos2d", sincos2d(g, D)[None])
        K = cfg["K"]
        self.register_buffer("pos1d", sincos(torch.tensor([1000.0 + 8 * k for k in range(K)]), D)[None])
        self.register_buffer("tokfeat", timestep_features(torch.tensor([1000.0 + 8 * k for k in range(K)])))

    def forward(self, xt, t, tokens, mask, drop):
        d, im = self.cfg["decoder"], self.cfg["image"]
        B, K, heads = xt.shape[0], self.cfg["K"], d["heads"]
        x = self.x_embed(patchify(xt, im["patch"])) + self.pos2d
        N = x.shape[1]
        c = F.silu(self.t_embed(timestep_features(t * 1000)))
        ctx = self.ctx_embed(tokens * mask[..., None]) + self.pos1d
        keep = 1 - drop
        ctx = ctx * keep[:, None, None]
        mask = mask * keep[:, None]
        key_mask = torch.cat([mask, torch.ones(B, N, device=xt.device)], 1)
        for blk in self.blocks:
            xs, cs = blk["x"], blk["ctx"]
            xsh, xsc, xg, xsh2, xsc2, xg2 = xs["ada"](c)[:, None].chunk(6, -1)
            xq, xk, xv = xs["qkv"](modulate(ln(x), xsh, xsc)).chunk(3, -1)
            pre_only = "pos" not in cs
            if pre_only:
                sh, sc = cs["ada"](c)[:, None].chunk(2, -1)
                cq, ck, cv = cs["qkv"](modulate(ln(ctx), sh, sc)).chunk(3, -1)
            else:
                cm = cs["ada"](F.silu(cs["pos"](self.tokfeat)))[None].chunk(6, -1)
                cq, ck, cv = cs["qkv"](modulate(ln(ctx), cm[0], cm[1])).chunk(3, -1)
            k, v = torch.cat([ck, xk], 1), torch.cat([cv, xv], 1)
            x = x + xg * xs["proj"](attention(xq, k, v, heads, key_mask))
            x = x + xg2 * xs["mlp"](modulate(ln(x), xsh2, xsc2))
            if pre_only:
                continue
            ctx = ctx + cm[2] * cs["proj"](attention(cq, k, v, heads, key_mask))
            ctx = ctx + cm[5] * cs["mlp"](modulate(ln(ctx), cm[3], cm[4]))
        sh, sc = self.final_ada(c)[:, None].chunk(2, -1)
        out = self.final_out(modulate(ln(x), sh, sc))
        S, p, C = im["size"], im["patch"], im["channels"]
        if self.head is None:
            return unpatchify(out, p, S, S, C)
        f = unpatchify(out, p, S, S, d["outChannels"]).permute(0, 3, 1, 2)
        return self.head(F.silu(f)).permute(0, 2, 3, 1)


def diti_counts(cfg, t):
    """Visible-token count per sample: the DiTi schedule of spec §2 (stage boundaries, per-stage counts)."""
    s = cfg["schedule"]
    K = cfg["K"]
    if s["type"] != "diti":
        return torch.clamp(torch.ceil(t * K), 1, K).long()
    tt = (t * 1000).long()
    counts = torch.zeros_like(tt)
    lo = 0
    start = 0
    for end, n in zip(s["stages"], s["perStage"]):
        inside = (tt >= lo) & (tt < end)
        frac = (tt - lo).float() / (end - lo)
        counts = torch.where(inside, start + 1 + (frac * n).long().clamp(max=n - 1), counts)
        lo, start = end, start + n
    return torch.where(tt >= lo, torch.full_like(tt, K), counts)


def rss_mb():
    """The process's resident set now (Linux /proc), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb():
    """The process's resident-set high-water mark (ru_maxrss is in KiB on Linux), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = PyTorch default)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = json.load(open(a.config))
    dev = torch.device(a.device)
    rss_before = rss_mb()
    B = a.batch or cfg["train"]["batch"]
    S, C, K = cfg["image"]["size"], cfg["image"]["channels"], cfg["K"]
    qc = cfg["quantizer"]
    enc, dec = Encoder(cfg).to(dev), Decoder(cfg).to(dev)
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.AdamW(params, lr=cfg["train"]["lr"], betas=(cfg["train"]["beta1"], cfg["train"]["beta2"]), weight_decay=0)
    codebook = F.normalize(torch.randn(qc["codebookSize"], qc["dim"], device=dev), dim=-1)
    grad_weight = torch.ones(K, device=dev)
    x0 = torch.rand(B, S, S, C, device=dev) * 2 - 1
    t_min = cfg["train"].get("lossTMin", 0.05)

    def step():
        t = torch.rand(B, device=dev)
        counts = diti_counts(cfg, t)
        mask = (torch.arange(K, device=dev)[None] < counts[:, None]).float()
        drop = (torch.rand(B, device=dev) < cfg["decoder"]["condDrop"]).float()
        z = F.normalize(enc(x0), dim=-1)
        scores = z @ codebook.T
        ids = scores.detach().argmax(-1)
        codes = codebook[ids]
        zq = z + (codes - z).detach()
        wx = zq * grad_weight[None, :, None]
        zq = wx + (zq - wx).detach()
        commit = ((codes - z) ** 2).mean()
        p = F.softmax(scores * qc["diversityTemperature"], -1).reshape(B * K, -1).mean(0)
        entropy = -(p * torch.log(p + 1e-10)).sum()
        h = enc.post_ln(zq)
        eps = torch.randn_like(x0)
        tt = t[:, None, None, None]
        xt = tt * eps + (1 - tt) * x0
        out = dec(xt, t, h, mask, drop)
        v_hat = (xt - out) / torch.clamp(tt, min=t_min)  # x0-prediction → velocity
        fm = ((v_hat - (eps - x0)) ** 2).mean()
        loss = fm + qc["commitWeight"] * commit - qc["diversityWeight"] * entropy
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(a.warmup):
        step()
    sync()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        loss.item()
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    ms = statistics.median(times)
    if dev.type == "cuda":
        peak = {"peakMB": round(torch.cuda.max_memory_allocated() / 2**20, 1), "peakKind": "cuda allocator high-water mark (max_memory_allocated)"}
    else:
        peak = {"peakMB": round(peak_rss_mb() - rss_before, 1), "peakKind": "resident-set growth (ru_maxrss minus the RSS before the model was built)",
                "rssBeforeMB": round(rss_before, 1)}
    print(json.dumps({**peak,"config": cfg["name"], "device": str(dev), "threads": torch.get_num_threads(), "batch": B,
                      "params": sum(p.numel() for p in params), "msPerStep": round(ms, 2), "imagesPerSecond": round(B * 1000 / ms, 1),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
