"""A FULL-SIZE random-weight Selftok tokenizer in the official layout, and the official
tokens of two photos, to check that `selftok import` + `selftok encode` give the official
tokens at full size (issue #17). Run by hand (about 9 GB of disk, 12 GB of memory):

    /tmp/offref-venv/bin/python scripts/make-full-size-check.py OUTDIR photo1.png photo2.png

The photos must be 256×256 (both sides then read the same pixels). Writes OUTDIR/tokenizer.pth
(torch.save of ImageTokenizer's state dict, float32, configs/res256/256-eval.yml at full size),
OUTDIR/sd3_vae.safetensors (the SD3 VAE, random, SAI layout) and OUTDIR/tokens.json (the
official SelftokPipeline.encoding of each photo), and prints timings.
"""
import json, os, sys, time
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, '..', '..', 'shared', 'reference', 'cpu-harness')))
from common import *  # noqa: F401,F403
import torch
from official_vae_shim import AsAutoencoderKL  # scripts/official_vae_shim.py
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from mimogpt.models.selftok.sd3.sd3_impls import SDVAE
from mimogpt.models.selftok.sd3.mmdit import get_2d_sincos_pos_embed
import mimogpt.infer.SelftokPipeline as P

out, photos = sys.argv[1], sys.argv[2:]
os.makedirs(out, exist_ok=True)
torch.set_num_threads(1)
T = {}
torch.manual_seed(42)
vae = SDVAE(dtype=torch.float32, device='cpu').eval()
save_file({'first_stage_model.' + k: v.contiguous() for k, v in vae.state_dict().items()}, os.path.join(out, 'sd3_vae.safetensors'))




P.AutoencoderKL.from_pretrained = staticmethod(lambda *a, **kw: AsAutoencoderKL(vae))
empty = os.path.join(out, '.empty.pth')
torch.save({}, empty)   # the pipeline loads with strict=False: an empty dict leaves its init in place
t0 = time.time()
pipe = P.SelftokPipeline(cfg=load_cfg('configs/res256/256-eval.yml'), ckpt_path=empty, sd3_path='<unused>', datasize=256, dtype=torch.float32, device='cpu')
T['build_s'] = round(time.time() - t0, 1)
os.remove(empty)
m = pipe.model
t0 = time.time()
with torch.no_grad():
    g = torch.Generator().manual_seed(1234)
    for name, p in sorted(m.named_parameters(), key=lambda kv: kv[0]):
        if name.endswith('pos_embed'):
            continue
        if p.dim() >= 2:
            p.copy_(torch.randn(p.shape, generator=g) / max(1.0, p[0].numel()) ** 0.5)
        elif 'norm' in name and name.endswith('weight'):
            p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    pe = m.model.pos_embed
    pe.copy_(torch.from_numpy(get_2d_sincos_pos_embed(pe.shape[-1], 192)).float().unsqueeze(0))
    cb = m.encoder.quantizer._codebook
    e = F.normalize(torch.randn(cb.embed.shape, generator=g), dim=-1)
    cb.embed.copy_(e); cb.embed_avg.copy_(e)
    cb.initted.fill_(1.0); cb.tpc_initted.fill_(1.0)
    m.encoder.quantizer.continuous.fill_(0.0)
T['randomize_s'] = round(time.time() - t0, 1)
t0 = time.time()
torch.save(m.state_dict(), os.path.join(out, 'tokenizer.pth'))
T['save_s'] = round(time.time() - t0, 1)
res = {}
for path in photos:
    im = Image.open(path).convert('RGB')
    assert im.size == (256, 256), f'{path}: {im.size}, expected 256×256'
    x = P.NormalizeToTensor()(im).unsqueeze(0)
    t0 = time.time()
    tokens = pipe.encoding(x, device='cpu')
    T[f'encode_{os.path.basename(path)}_s'] = round(time.time() - t0, 1)
    res[os.path.basename(path)] = tokens[0].tolist()
json.dump({'tokens': res, 'times': T, 'torch': torch.__version__}, open(os.path.join(out, 'tokens.json'), 'w'))
print(json.dumps(T))
