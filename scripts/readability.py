# Token readability (issue #18, docs/scenes.md stop 33): how well does a transformer of the AR
# model's size read a scene's caption content (the 18 colour × shape counts) and the centroid of
# each shape that occurs once from the scenes tokenizer's 32 tokens, when it is trained on those
# directly (dense labels, no text)? Scored on the held-out scenes of `understanding`:
#   captions        all 18 counts right (the caption's exact match)
#   shape_multiset  the number of circles, squares and triangles all right
#   count_q         each of those right (what `how many {shape}s?` asks)
#   objects, colours  the number of objects; the colour multiset
#   relations       the held-out relation questions answered from the predicted centroids
# Data: scripts/readability-data.ts. A research diagnostic in PyTorch (CPU); nothing in the
# project runs it.
#   python3 scripts/readability.py read.safetensors [--more more.safetensors …] [--steps N | --epochs E]
#       [--dim 128] [--depth 4] [--causal] [--json FILE]
import sys, time, json, argparse, torch, torch.nn as nn, torch.nn.functional as F
from safetensors.numpy import load_file
p = argparse.ArgumentParser()
p.add_argument('file'); p.add_argument('--epochs', type=int, default=12); p.add_argument('--dim', type=int, default=128)
p.add_argument('--depth', type=int, default=4); p.add_argument('--causal', action='store_true'); p.add_argument('--lr', type=float, default=2e-3)
p.add_argument('--batch', type=int, default=128); p.add_argument('--n', type=int, default=40000); p.add_argument('--threads', type=int, default=1)
p.add_argument('--json'); p.add_argument('--more', nargs='*', default=[]); p.add_argument('--steps', type=int, default=0)
a = p.parse_args(); torch.manual_seed(0); torch.set_num_threads(a.threads)
d = {k: torch.from_numpy(v) for k, v in load_file(a.file).items()}
Xtr, Ctr, Ptr = d['train_codes'][:a.n].long(), d['train_counts'][:a.n].long(), d['train_cent'][:a.n]
Xh, Ch, Ph, R = d['held_codes'].long(), d['held_counts'].long(), d['held_cent'], d['held_rel']
for f in a.more:
    e = {k: torch.from_numpy(v) for k, v in load_file(f).items()}
    Xtr, Ctr, Ptr = torch.cat([Xtr, e['codes'].long()]), torch.cat([Ctr, e['counts'].long()]), torch.cat([Ptr, e['cent']])
K, C = Xtr.shape[1], d['codebook'].shape[0]
if a.causal:  # AR order (reversed encoder order), read at the last position as the AR model reads at [EOV]
    Xtr, Xh = Xtr.flip(1), Xh.flip(1)
class Reader(nn.Module):
    def __init__(s, D, depth):
        super().__init__()
        s.emb = nn.Embedding(C, D)
        s.pos = nn.Parameter(torch.randn(K + 1, D) * 0.02); s.cls = nn.Parameter(torch.randn(D) * 0.02)
        layer = nn.TransformerEncoderLayer(D, 4, int(D * 2.7), dropout=0.0, batch_first=True, norm_first=True, activation='gelu')
        s.tf = nn.TransformerEncoder(layer, depth); s.norm = nn.LayerNorm(D)
        s.counts = nn.Linear(D, 18 * 5); s.cent = nn.Linear(D, 6)
    def forward(s, x):
        B = x.shape[0]
        h = torch.cat([s.emb(x), s.cls.expand(B, 1, -1)], 1) + s.pos  # read at the last position
        mask = nn.Transformer.generate_square_subsequent_mask(K + 1) if a.causal else None
        h = s.norm(s.tf(h, mask=mask, is_causal=a.causal)[:, -1])
        return s.counts(h).view(B, 18, 5), torch.sigmoid(s.cent(h))
m = Reader(a.dim, a.depth)
nparam = sum(x.numel() for x in m.parameters() if x.requires_grad)
opt = torch.optim.AdamW(m.parameters(), lr=a.lr, weight_decay=0.0, betas=(0.9, 0.98))
steps = a.steps or a.epochs * (len(Xtr) // a.batch); per_epoch = len(Xtr) // a.batch
a.epochs = -(-steps // per_epoch); eval_every = 312
sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=steps, pct_start=0.05, anneal_strategy='linear')
def evaluate():
    m.eval()
    with torch.no_grad():
        lc, pc = m(Xh)
    m.train()
    pred = lc.argmax(-1)
    cap = (pred == Ch).all(1).float().mean().item()
    shape_tot = (pred.view(-1, 3, 6).sum(-1) == Ch.view(-1, 3, 6).sum(-1))
    multiset = shape_tot.all(1).float().mean().item(); count_q = shape_tot.float().mean().item()
    n_obj = (pred.sum(1) == Ch.sum(1)).float().mean().item()
    col = (pred.view(-1, 3, 6).sum(1) == Ch.view(-1, 3, 6).sum(1)).all(1).float().mean().item()
    i, sa, r, sb, ans = R.T
    ax = torch.where(r < 2, 0, 1)
    va, vb = pc[i, sa * 2 + ax], pc[i, sb * 2 + ax]
    holds = torch.where((r == 0) | (r == 2), va < vb, va > vb)
    rel = (holds.long() == ans).float().mean().item()
    return dict(captions=round(cap, 4), shape_multiset=round(multiset, 4), count_q=round(count_q, 4), objects=round(n_obj, 4), colours=round(col, 4), relations=round(rel, 4))
print(f'reader {nparam/1e6:.2f} M params, {len(Xtr)} scenes, causal={a.causal}', flush=True)
t0 = time.time(); step = 0; curve = []
for ep in range(a.epochs):
    perm = torch.randperm(len(Xtr))
    for b in range(per_epoch):
        if step >= steps: break
        idx = perm[b * a.batch:(b + 1) * a.batch]
        lc, pc = m(Xtr[idx])
        loss = F.cross_entropy(lc.reshape(-1, 5), Ctr[idx].clamp(max=4).reshape(-1))
        msk = Ptr[idx] >= 0
        loss = loss + 10 * ((pc - Ptr[idx]) ** 2 * msk).sum() / msk.sum().clamp(min=1)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step(); step += 1
        if step % eval_every == 0 or step == steps:
            e = evaluate(); e.update(epoch=round(step / per_epoch, 2), step=step, seen=step * a.batch, loss=round(loss.item(), 4), s=round(time.time() - t0)); curve.append(e)
            print(json.dumps(e), flush=True)
if a.json: json.dump(dict(args=vars(a), params=nparam, curve=curve), open(a.json, 'w'), indent=1)
