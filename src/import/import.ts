// `selftok import`: official checkpoints (tokenizer, renderer, SD3 VAE) → a model directory
// that every command takes. Checks every key and shape before writing anything, then
// streams tensor by tensor (a 2-billion-parameter checkpoint never sits in memory whole).
import { basename, join } from 'node:path';
import { toHalf } from '../io/safetensors.ts';
import { toBfloat16, writeSafetensorsStreamed } from '../node/safetensors-files.ts';
import type { PendingTensor, StreamDType } from '../io/safetensors.ts';
import { type Params } from '../nn/params.ts';
import { validateConfig, type SelftokConfig } from '../tokenizer/config.ts';
import { Selftok, ShapeInit } from '../tokenizer/model.ts';
import { UserError } from '../util/errors.ts';
import { writeFileAtomic } from '../node/fsx.ts';
import { openCheckpoint } from './checkpoint.ts';
import type { CheckpointReader } from '../io/checkpoint.ts';
import { officialConfig, parameterShapes, rendererNameMap, tokenizerNameMap, vaeConfigFrom, vaeNameMap, verifyMap, type NameMap } from './official.ts';

export type ImportDType = 'float32' | 'float16' | 'bfloat16';
export type ImportOptions = {
  tokenizer: string;
  renderer?: string;
  vae: string;
  out: string;
  dtype: ImportDType;
  size: number;
  stages?: number[];
  perStage?: number[];
  log?: (s: string) => void;
};
export type ImportResult = { cfg: SelftokConfig; tensors: number; parameters: number; bytes: number; vaeLayout: 'sai' | 'diffusers' };

const STORE: Record<ImportDType, StreamDType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

function encode(x: Float32Array, dtype: StreamDType): Uint8Array {
  const a = dtype === 'F32' ? x : dtype === 'F16' ? toHalf(x) : toBfloat16(x);
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function runChecks(map: NameMap, reader: CheckpointReader): void {
  for (const c of map.checks) {
    if (!reader.keys().has(c.key)) throw new UserError(`${reader.path}: missing key ${c.key}`);
    const msg = c.check(reader.read(c.key));
    if (msg) throw new UserError(`${reader.path}: ${c.key} ${msg}`);
  }
}

/** The renderer was trained on top of the tokenizer's frozen encoder: its copy must be that one. */
function sameEncoder(tok: CheckpointReader, ren: CheckpointReader): void {
  for (const key of ['encoder.query_tokens', 'encoder.quantizer._codebook.embed', 'encoder.quantizer.project_in.weight']) {
    const a = tok.read(key);
    if (!ren.keys().has(key)) throw new UserError(`${ren.path}: missing key ${key}`);
    const b = ren.read(key);
    if (a.length !== b.length || a.some((v, i) => v !== b[i])) throw new UserError(`${ren.path}: ${key} differs from the tokenizer's: this renderer was trained on another tokenizer`);
  }
}

export async function importOfficial(o: ImportOptions): Promise<ImportResult> {
  const log = o.log ?? (() => {});
  const readers: CheckpointReader[] = [];
  try {
    const tok = openCheckpoint(o.tokenizer);
    readers.push(tok);
    const vae = openCheckpoint(o.vae);
    readers.push(vae);
    const ren = o.renderer ? openCheckpoint(o.renderer) : undefined;
    if (ren) readers.push(ren);

    const v = vaeNameMap(vae.keys(), o.vae);
    const cfg = validateConfig(officialConfig(tok.keys(), { size: o.size, stages: o.stages, perStage: o.perStage, vae: vaeConfigFrom(v.renamed, o.vae) }, o.tokenizer), o.tokenizer);
    const model = Selftok.create(cfg, 0, new ShapeInit());
    if (ren) model.addRenderer(0, new ShapeInit());
    const ours = parameterShapes(model.params as unknown as Params);
    ours.set('quantizer.codebook', [cfg.quantizer.codebookSize, cfg.quantizer.dim]);

    const tmap = tokenizerNameMap(cfg, tok.keys());
    verifyMap(tmap, tok.keys(), ours, o.tokenizer, /^(enc|dec)\.|^quantizer\./);
    runChecks(tmap, tok);
    verifyMap(v.map, vae.keys(), ours, o.vae, /^vae\./);
    let rmap: NameMap | undefined;
    if (ren) {
      rmap = rendererNameMap(cfg, ren.keys());
      verifyMap(rmap, ren.keys(), ours, o.renderer!, /^ren\./);
      runChecks(rmap, ren);
      sameEncoder(tok, ren);
    }
    log(`import: ${o.tokenizer}: K = ${cfg.K} tokens × ${cfg.quantizer.codebookSize} codes, encoder ${cfg.encoder.depth} blocks, decoder ${cfg.decoder.depth} blocks × ${cfg.decoder.width}; VAE (${v.layout} layout) ${cfg.vae!.ch}×[${cfg.vae!.chMult}]${ren ? '; renderer' : ''}`);

    const dtype = STORE[o.dtype];
    const pending = new Map<string, PendingTensor>();
    let parameters = 0;
    let done = 0;
    const sources: [NameMap, CheckpointReader][] = [[tmap, tok], [v.map, vae], ...(rmap && ren ? [[rmap, ren] as [NameMap, CheckpointReader]] : [])];
    const total = sources.reduce((n, [m]) => n + m.tensors.length, 0);
    for (const [map, reader] of sources) {
      for (const m of map.tensors) {
        const shape = ours.get(m.name)!;
        parameters += shape.reduce((a, b) => a * b, 1);
        pending.set(m.name, {
          dtype,
          shape,
          data: () => {
            const x = m.convert(reader.read(m.from));
            if (++done % 100 === 0) log(`import: ${done}/${total} tensors`);
            return encode(x, dtype);
          },
        });
      }
    }
    const path = join(o.out, 'model.safetensors');
    const meta = { format: 'selftok', step: '0', config: cfg.name, source: [o.tokenizer, o.renderer, o.vae].filter(Boolean).map((p) => basename(p!)).join(', ') };
    await writeSafetensorsStreamed(path, pending, meta);
    writeFileAtomic(join(o.out, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
    const bytes = [...pending.values()].reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1) * (dtype === 'F32' ? 4 : 2), 0);
    return { cfg, tensors: pending.size, parameters, bytes, vaeLayout: v.layout };
  } finally {
    for (const r of readers) r.close();
  }
}
