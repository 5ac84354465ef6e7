"""Parity fixtures from the OFFICIAL Selftok code (../shared/reference/selftok-official, MIT),
run on the CPU with PyTorch through ../shared/reference/cpu-harness (its shims only stub
imports the models never use; no official file is edited). Run by hand, never by CI; the
tests read what it writes:

    python3 -m venv /tmp/offref-venv
    /tmp/offref-venv/bin/pip install --index-url file:///opt/pypi/simple \\
        --extra-index-url file:///opt/pypi-more/simple torch einops timm numpy safetensors pyyaml pillow
    /tmp/offref-venv/bin/python scripts/make-official-fixtures.py test/fixtures/official

It builds the official architectures with every switch of configs/res256/256-eval.yml and
configs/renderer/renderer-eval.yml and only sizes reduced (through the classes' own size
arguments), gives them deterministic random weights rounded to float16 values (so that the
files can store them as float16 and stay a few MB), and runs the official SelftokPipeline:

  tokenizer.pth          ImageTokenizer state dict (torch.save, float16), the layout the pipeline loads:
                         Enc-Qformer-Uni (dual, Uni, token-aware AdaLN, post-LN) hidden 32 / 2 heads,
                         depth 2, 128-wide queries / 2 heads; K = 16, codebook 256 × 16; MMDiT depth 2
                         (hidden 128, 2 heads, MLP ratio 2, pos_embed_max_size 24)
  renderer.safetensors   MMDiT_XL_Renderer at the same sizes + the frozen encoder (float16)
  vae.safetensors        the SD3 VAE (sd3_impls VAEEncoder/VAEDecoder: ch 32, ch_mult (1, 1, 2, 2),
                         one ResnetBlock per level: ×8 like SD3), SAI layout, float16
  io.safetensors         a 128×128 image and every official output: VAE moments, the scaled
                         latent, tokens, encoder features (pre-quantizer and post-LN), one decoder
                         velocity at t = 0.6 with its DiTi mask, a 3-step decode from recorded
                         noise, the renderer latent and image, the 50-step grid
  facts.json             sizes, schedule, torch version
"""
import json, os, sys, copy
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, '..', '..', 'shared', 'reference', 'cpu-harness')))
from common import *  # noqa: F401,F403  (the harness shims; puts the official code on sys.path)
import numpy as np
import torch
from official_vae_shim import AsAutoencoderKL  # scripts/official_vae_shim.py
import torch.nn.functional as F
from safetensors.torch import save_file

import mimogpt.models.selftok.model_zoo as zoo
from mimogpt.models.selftok.models_ours import QformerEncoder
from mimogpt.models.selftok.sd3.mmdit import MMDiT, MMDiT_Renderer, get_2d_sincos_pos_embed
from mimogpt.models.selftok.sd3.sd3_impls import VAEEncoder, VAEDecoder, SD3LatentFormat
from mimogpt.models.selftok.sd3.rectified_flow import RectifiedFlow
from mimogpt.models.selftok.image_tokenizer import ImageTokenizer
import mimogpt.infer.SelftokPipeline as P

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.set_num_threads(1)
SIZE, K, CODEBOOK, STEPS = 128, 16, 256, 3
ENC = dict(hidden=32, heads=2, depth=2, query=128, query_heads=2)
DIT = dict(depth=2, mlp_ratio=2.0, pos_max=24)
VAE = dict(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1, z_channels=16)
STAGES, PER_STAGE = '200,400,600,800,1000', '6,6,2,1,1'


def enc_small(**kw):
    return QformerEncoder(patch_size=2, hidden_size=ENC['hidden'], num_heads=ENC['heads'], depth=ENC['depth'],
                          query_dim=ENC['query'], query_heads=ENC['query_heads'], bidirectional=False, **kw)


def dit_small(cls, **kw):
    hidden = 64 * DIT['depth']
    return cls(pos_embed_scaling_factor=None, pos_embed_offset=None, pos_embed_max_size=DIT['pos_max'], patch_size=2,
               depth=DIT['depth'], mlp_ratio=DIT['mlp_ratio'], num_patches=DIT['pos_max'] ** 2,
               adm_in_channels=kw['encoder_hidden_size'],
               context_embedder_config={'target': 'torch.nn.Linear', 'params': {'in_features': kw['encoder_hidden_size'], 'out_features': hidden}},
               device='cpu', dtype=torch.float, **kw)


zoo.Enc_models['Enc-Qformer-Uni-XL/2@fixture'] = enc_small
zoo.DiT_models['MMDiT_XL@fixture'] = lambda **kw: dit_small(MMDiT, **kw)
zoo.DiT_models['MMDiT_XL_Renderer@fixture'] = lambda **kw: dit_small(MMDiT_Renderer, **kw)


def small_cfg(rel):
    cfg = load_cfg(rel)
    p = cfg.tokenizer.params
    p.image_size = SIZE
    p.k = K
    p.k_per_stage = PER_STAGE if p.stages == STAGES else str(K)   # the renderer: stages '1000'
    p.enc = 'Enc-Qformer-Uni-XL/2@fixture'
    p.model = p.model + '@fixture'
    p.quantizer_config.codebook_size = CODEBOOK
    p.quantizer_config.K = K
    return cfg


@torch.no_grad()
def randomize(module, seed, keep=()):
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
        if any(name.endswith(k) for k in keep):
            continue
        if p.dim() >= 2:
            p.copy_(torch.randn(p.shape, generator=g) / max(1.0, p[0].numel()) ** 0.5)
        elif 'norm' in name and name.endswith('weight'):
            p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return g


@torch.no_grad()
def round_half(module):
    for p in module.parameters():
        p.copy_(p.half().float())
    for b in module.buffers():
        if b.is_floating_point():
            b.copy_(b.half().float())


@torch.no_grad()
def make_tokenizer(rel, seed):
    tok = ImageTokenizer(**copy.deepcopy(small_cfg(rel).tokenizer.params))
    g = randomize(tok, seed, keep=('pos_embed',))
    if hasattr(tok.model, 'pos_embed'):
        pe = tok.model.pos_embed   # a zero buffer in code; the released checkpoint provides SD3's
        pe.copy_(torch.from_numpy(get_2d_sincos_pos_embed(pe.shape[-1], DIT['pos_max'])).float().unsqueeze(0))
    cb = tok.encoder.quantizer._codebook
    e = F.normalize(torch.randn(cb.embed.shape, generator=g), dim=-1)
    cb.embed.copy_(e); cb.embed_avg.copy_(e)
    cb.initted.fill_(1.0); cb.tpc_initted.fill_(1.0)   # else the first forward runs k-means
    tok.encoder.quantizer.continuous.fill_(0.0)
    round_half(tok)
    return tok


class SmallVAE(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = VAEEncoder(**VAE)
        self.decoder = VAEDecoder(resolution=SIZE, **VAE)




torch.manual_seed(0)
tok = make_tokenizer('configs/res256/256-eval.yml', 1234)
ren = make_tokenizer('configs/renderer/renderer-eval.yml', 5678)
rsd = ren.state_dict()
for k, v in tok.state_dict().items():
    if k.startswith('encoder.'):
        rsd[k] = v   # the renderer's frozen encoder is the tokenizer's (fix_encoder: True)
torch.manual_seed(42)
vae = SmallVAE().eval()
randomize(vae, 99)
round_half(vae)

half = lambda sd: {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
torch.save(half(tok.state_dict()), os.path.join(out, 'tokenizer.pth'))
save_file(half(rsd), os.path.join(out, 'renderer.safetensors'))
save_file(half({'first_stage_model.' + k: v for k, v in vae.state_dict().items()}), os.path.join(out, 'vae.safetensors'))
torch.save(rsd, '/tmp/renderer-fixture.pth')

P.AutoencoderKL.from_pretrained = staticmethod(lambda *a, **kw: AsAutoencoderKL(vae))


def pipeline(rel, ckpt, steps):
    cfg = small_cfg(rel)
    pipe = P.SelftokPipeline(cfg=cfg, ckpt_path=ckpt, sd3_path='<unused>', datasize=SIZE, dtype=torch.float32, device='cpu')
    pipe._steps = steps   # __init__ hard-codes 50 steps; rebuild the flow exactly as it does
    pipe.flow = RectifiedFlow(steps, pipe.start, pipe.cut_of_k, val_schedule='uniform', shift=1.0, **cfg.tokenizer.params.noise_schedule_config)
    return pipe


g = torch.Generator().manual_seed(7)
# a smooth image with some detail (a random field, upsampled), in [-1, 1]
img = F.interpolate(torch.rand(1, 3, 16, 16, generator=g) * 2 - 1, size=(SIZE, SIZE), mode='bilinear', align_corners=False)
img = (img + 0.1 * torch.randn(1, 3, SIZE, SIZE, generator=g)).clamp(-1, 1)
res = {'image': img}
pipe = pipeline('configs/res256/256-eval.yml', os.path.join(out, 'tokenizer.pth'), STEPS)
with torch.no_grad():
    moments = vae.encoder(img)
    latent = SD3LatentFormat().process_in(torch.chunk(moments, 2, dim=1)[0])
    res.update(vae_moments=moments, latent=latent, vae_decoded=vae.decoder(SD3LatentFormat().process_out(latent)))
tokens = pipe.encoding(img, device='cpu')
res['tokens'] = tokens
with torch.no_grad():
    enc = pipe.model.encoder
    hw = latent.shape[-2:]
    x = enc.x_embedder(latent) + enc.cropped_pos_embed(hw)
    res['encoder_features'] = enc.get_encoder_outs(x)                   # B×K×128, before the quantizer
    res['encoder_projected'] = enc.quantizer.project_in(res['encoder_features'])   # B×K×16, before L2 normalisation
    outs_q = enc.quantizer.get_output_from_indices(tokens).reshape(1, -1, 16)
    outs_q = enc.final_layer_norm3(outs_q)
    res['token_embeddings'] = outs_q                                     # post-LN codes, the decoder's input
    t = torch.tensor([0.6])
    k = pipe.diti.to_indices(torch.tensor([600]).long())
    mask = enc.get_encoder_mask(tokens, k)
    x_t = torch.randn(1, 16, SIZE // 8, SIZE // 8, generator=g)
    v, _ = pipe.model.model(x_t, t, encoder_hidden_states=outs_q * mask[..., None], mask=mask, context_see_xt=True)
res.update(dec_x_t=x_t, dec_t=t, dec_mask=mask.float(), dec_v=v)
torch.manual_seed(2024)
noise = torch.randn(1, 16, SIZE // 8, SIZE // 8)   # what decoding() draws next
torch.manual_seed(2024)
res.update(decoding_noise=noise, decoding_recon=pipe.decoding(tokens.numpy(), device='cpu'))
pipe_r = pipeline('configs/renderer/renderer-eval.yml', '/tmp/renderer-fixture.pth', STEPS)
assert torch.equal(pipe_r.encoding(img, device='cpu'), tokens)
res['renderer_recon'] = pipe_r.decoding_with_renderer(tokens.numpy(), device='cpu')
with torch.no_grad():
    e = pipe_r.model.encoder
    res['renderer_latent'] = pipe_r.model.model(y=None, encoder_hidden_states=e.final_layer_norm3(e.quantizer.get_output_from_indices(tokens)))[0]
fl = RectifiedFlow(50, 1.0, None, val_schedule='uniform', shift=1.0, **small_cfg('configs/res256/256-eval.yml').tokenizer.params.noise_schedule_config)
res['flow50_scheduled_t'] = fl.scheduled_t.clone()
res['flow50_scheduled_t_prev'] = fl.scheduled_t_prev.clone()
res['flow50_timestep_map'] = fl.timestep_map.clone()


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous() if t.dim() == 4 else t


io = {k: nhwc(v.detach().float() if v.is_floating_point() else v.detach()).contiguous() for k, v in res.items()}
io['tokens'] = io['tokens'].to(torch.int32)
save_file(io, os.path.join(out, 'io.safetensors'))
json.dump({'size': SIZE, 'K': K, 'codebook': CODEBOOK, 'steps': STEPS, 'stages': [int(s) for s in STAGES.split(',')],
           'per_stage': [int(s) for s in PER_STAGE.split(',')], 'encoder': ENC, 'decoder': DIT,
           'vae': {**VAE, 'ch_mult': list(VAE['ch_mult'])}, 'torch': torch.__version__,
           'tokens': tokens.tolist()}, open(os.path.join(out, 'facts.json'), 'w'), indent=1)
print('wrote', sorted(os.listdir(out)), 'tokens', tokens.tolist())
