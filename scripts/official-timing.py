"""Time the OFFICIAL Selftok pipeline (../shared/reference/selftok-official, through
cpu-harness's shims) at full size with random weights, one 256×256 image: encode,
50-step decode, renderer; float32 and bfloat16 autocast; peak memory. The PyTorch side of
`npm run bench:official` (issue #17), run on the GPU machine in the same call:

    python3 scripts/official-timing.py --ref DIR_WITH_selftok-official_AND_cpu-harness [--device cuda] [--json FILE]

`--tiny` builds small models with the same switches instead (a dry run of this script on a CPU).
"""
import argparse, json, os, sys, time
ap = argparse.ArgumentParser()
ap.add_argument('--ref', required=True)
ap.add_argument('--device', default='cuda')
ap.add_argument('--steps', type=int, default=50)
ap.add_argument('--tiny', action='store_true')
ap.add_argument('--json')
args = ap.parse_args()
sys.path.insert(0, os.path.join(args.ref, 'cpu-harness'))
sys.path.append(os.path.join(args.ref, 'site'))   # einops / PyYAML where the machine lacks them
try:
    import timm.models.vision_transformer  # noqa: F401
except ImportError:
    # the official modules import timm's PatchEmbed/Attention/Mlp: Mlp is used on the Selftok
    # path (DualBlock's q_mlp), Attention only by a placeholder ViT stack the Q-Former encoder
    # replaces; the same layers with timm's parameter names
    import types, torch

    class Mlp(torch.nn.Module):
        def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=torch.nn.GELU, drop=0.0, **_):
            super().__init__()
            hidden_features = hidden_features or in_features
            self.fc1 = torch.nn.Linear(in_features, hidden_features)
            self.act = act_layer()
            self.fc2 = torch.nn.Linear(hidden_features, out_features or in_features)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    class Attention(torch.nn.Module):
        def __init__(self, dim, num_heads=8, qkv_bias=False, **_):
            super().__init__()
            self.qkv = torch.nn.Linear(dim, 3 * dim, bias=qkv_bias)
            self.proj = torch.nn.Linear(dim, dim)

    vt = types.ModuleType('timm.models.vision_transformer')
    vt.Mlp, vt.PatchEmbed, vt.Attention = Mlp, object, Attention
    sys.modules.update({'timm': types.ModuleType('timm'), 'timm.models': types.ModuleType('timm.models'), 'timm.models.vision_transformer': vt})
from common import *  # noqa: F401,F403
import torch
from official_vae_shim import AsAutoencoderKL  # scripts/official_vae_shim.py
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
import torch.utils._device as _dev
import mimogpt.infer.SelftokPipeline as P
from mimogpt.models.selftok.sd3.sd3_impls import SDVAE
from mimogpt.models.selftok.sd3.rectified_flow import RectifiedFlow

DEV = torch.device(args.device)
_FORCE = {f for f in _dev._device_constructors() if f.__name__ not in ('tensor', 'as_tensor', 'asarray', 'scalar_tensor')}


class OnDevice(TorchFunctionMode):
    """Build every module on DEV, also where the official code passes device='cpu' (model_zoo.MMDiT_XL)."""
    def __torch_function__(self, func, types, a=(), kw=None):
        kw = dict(kw or {})
        if func in _FORCE:
            kw['device'] = DEV
        return func(*a, **kw)




def sync():
    if DEV.type == 'cuda':
        torch.cuda.synchronize()


def timed(fn, reps=1):
    fn(); sync()
    t = time.perf_counter()
    for _ in range(reps):
        out = fn()
    sync()
    return (time.perf_counter() - t) / reps * 1000, out


@torch.no_grad()
def randomize(m, seed):
    g = torch.Generator(device=DEV).manual_seed(seed)
    for name, p in m.named_parameters():
        if name.endswith('pos_embed'):
            continue
        fan = p[0].numel() if p.dim() >= 2 else 1
        p.copy_(torch.randn(p.shape, generator=g, device=DEV) / max(1.0, fan) ** 0.5 if p.dim() >= 2 else 0.1 * torch.randn(p.shape, generator=g, device=DEV))
    cb = m.encoder.quantizer._codebook
    cb.embed.copy_(F.normalize(torch.randn(cb.embed.shape, generator=g, device=DEV), dim=-1))
    cb.initted.fill_(1.0); cb.tpc_initted.fill_(1.0)
    m.encoder.quantizer.continuous.fill_(0.0)


if args.tiny:
    import mimogpt.models.selftok.model_zoo as zoo
    from mimogpt.models.selftok.models_ours import QformerEncoder
    from mimogpt.models.selftok.sd3.mmdit import MMDiT, MMDiT_Renderer

    def _dit(cls, **kw):
        return cls(pos_embed_scaling_factor=None, pos_embed_offset=None, pos_embed_max_size=24, patch_size=2, depth=2, num_patches=576,
                   adm_in_channels=kw['encoder_hidden_size'], context_embedder_config={'target': 'torch.nn.Linear', 'params': {'in_features': kw['encoder_hidden_size'], 'out_features': 128}},
                   device='cpu', dtype=torch.float, **kw)
    zoo.Enc_models['Enc-Qformer-Uni-XL/2'] = lambda **kw: QformerEncoder(patch_size=2, hidden_size=32, num_heads=2, depth=2, query_dim=128, query_heads=2, bidirectional=False, **kw)
    zoo.DiT_models['MMDiT_XL'] = lambda **kw: _dit(MMDiT, **kw)
    zoo.DiT_models['MMDiT_XL_Renderer'] = lambda **kw: _dit(MMDiT_Renderer, **kw)


def cfg_for(rel):
    cfg = load_cfg(rel)
    if args.tiny:
        p = cfg.tokenizer.params
        p.k, p.quantizer_config.K, p.quantizer_config.codebook_size = 16, 16, 256
        p.k_per_stage = '6,6,2,1,1' if p.stages == '200,400,600,800,1000' else '16'
    return cfg


torch.set_grad_enabled(False)
res = {'torch': torch.__version__, 'device': str(DEV), 'gpu': torch.cuda.get_device_name(0) if DEV.type == 'cuda' else 'cpu'}
empty = '/tmp/.selftok-empty.pth'
torch.save({}, empty)
t0 = time.perf_counter()
with OnDevice():
    vae = SDVAE(dtype=torch.float32, device=DEV).eval()
    P.AutoencoderKL.from_pretrained = staticmethod(lambda *a, **kw: AsAutoencoderKL(vae))
    pipe = P.SelftokPipeline(cfg=cfg_for('configs/res256/256-eval.yml'), ckpt_path=empty, sd3_path='-', datasize=256, dtype=torch.float32, device=DEV)
    pipe_r = P.SelftokPipeline(cfg=cfg_for('configs/renderer/renderer-eval.yml'), ckpt_path=empty, sd3_path='-', datasize=256, dtype=torch.float32, device=DEV)
randomize(pipe.model, 1)
randomize(pipe_r.model, 2)
pipe_r.model.encoder.load_state_dict(pipe.model.encoder.state_dict())
if args.steps != 50:
    pipe._steps = args.steps
    pipe.flow = RectifiedFlow(args.steps, pipe.start, pipe.cut_of_k, val_schedule='uniform', shift=1.0, **pipe.cfg.tokenizer.params.noise_schedule_config)
sync()
res['build_s'] = round(time.perf_counter() - t0, 1)
res['parameters'] = {'tokenizer': sum(p.numel() for p in pipe.model.parameters()), 'renderer': sum(p.numel() for p in pipe_r.model.model.parameters()), 'vae': sum(p.numel() for p in vae.parameters())}
img = (torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(DEV)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
for dtype in ('float32', 'bfloat16'):
    if DEV.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    ctx = torch.autocast(DEV.type, dtype=torch.bfloat16) if dtype == 'bfloat16' else torch.autocast(DEV.type, enabled=False)
    with ctx:
        enc_ms, tokens = timed(lambda: pipe.encoding(img, device=DEV), 3)
        idx = tokens.cpu().numpy()
        dec_ms, _ = timed(lambda: pipe.decoding(idx, device=DEV), 1)
        ren_ms, _ = timed(lambda: pipe_r.decoding_with_renderer(idx, device=DEV), 3)
    res[dtype] = {'encode_ms': round(enc_ms, 1), f'decode_{args.steps}steps_ms': round(dec_ms, 1), 'renderer_ms': round(ren_ms, 1),
                  'peak_gib': round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if DEV.type == 'cuda' else None}
print(json.dumps(res))
if args.json:
    json.dump(res, open(args.json, 'w'), indent=1)
