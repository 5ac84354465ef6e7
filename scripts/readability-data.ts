// Data for the token-readability diagnostic of issue #18 (scripts/readability.py, docs/scenes.md
// stop 33): a scenes tokenizer's 32 tokens of each scene with what a reader should find there,
// the 18 colour × shape counts (the caption's content) and the centroid of each shape that
// occurs once (−1 where not).
//   node --import tsx scripts/readability-data.ts --tokenizer models/scenes --pool RUN/pool.safetensors --held 2000 --out read.safetensors
//        the AR pool's image→text scenes (train_*), N held-out scenes of `understanding`
//        (held_*, with their relation questions) and the tokenizer's codebook
//   node --import tsx scripts/readability-data.ts --tokenizer models/scenes --fresh 3000000 --n 80000 --out more.safetensors
//        N more training scenes from seed S on (codes, counts, cent), tokenized here
import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { startDevice } from '../src/cli/common.ts';
import { loadSelftok } from '../src/node/models.ts';
import { readSafetensors } from '../src/node/safetensors-files.ts';
import { encodeSafetensors, type Tensor } from '../src/io/safetensors.ts';
import { COLOURS, RELATIONS, SHAPES, randomScene, type Scene } from '../src/ar/scenes.ts';
import { HELD_OUT_SEED } from '../src/ar/evaluate.ts';
import { tokenizeScenes } from '../src/ar/data.ts';
import { questions, showsHeldOutCombo } from '../src/ar/text.ts';

const o = new Command()
  .requiredOption('--tokenizer <dir>')
  .requiredOption('--out <file>')
  .option('--pool <file>', "an AR run's pool.safetensors (its image→text scenes are the training set)")
  .option('--held <n>', 'held-out scenes', '2000')
  .option('--fresh <seed>', 'tokenize fresh training scenes from this seed instead')
  .option('--n <n>', 'fresh scenes', '80000')
  .parse()
  .opts<{ tokenizer: string; out: string; pool?: string; held: string; fresh?: string; n: string }>();

await startDevice('wasm');
const tok = loadSelftok(o.tokenizer);
const size = tok.cfg.image.size;
const K = tok.cfg.K;

function labels(scenes: Scene[]): { counts: Int32Array; cent: Float32Array } {
  const counts = new Int32Array(scenes.length * 18);
  const cent = new Float32Array(scenes.length * 6).fill(-1);
  scenes.forEach((s, i) =>
    SHAPES.forEach((shape, a) => {
      COLOURS.forEach((colour, b) => (counts[i * 18 + a * 6 + b] = s.objects.filter((x) => x.shape === shape && x.colour === colour).length));
      const only = s.objects.filter((x) => x.shape === shape);
      if (only.length === 1) [cent[i * 6 + a * 2], cent[i * 6 + a * 2 + 1]] = [only[0].cx / size, only[0].cy / size];
    }),
  );
  return { counts, cent };
}

const t = new Map<string, Tensor>();
const put = (name: string, dtype: 'I32' | 'F32', shape: number[], data: Int32Array | Float32Array) => t.set(name, { dtype, shape, data });
if (o.fresh !== undefined) {
  const scenes: Scene[] = [];
  for (let s = Number(o.fresh); scenes.length < Number(o.n); s++) {
    const scene = randomScene(s, size);
    if (!showsHeldOutCombo(scene)) scenes.push(scene); // as the AR pool draws them
  }
  const l = labels(scenes);
  put('codes', 'I32', [scenes.length, K], await tokenizeScenes(tok, scenes));
  put('counts', 'I32', [scenes.length, 18], l.counts);
  put('cent', 'F32', [scenes.length, 6], l.cent);
} else {
  if (!o.pool) throw new Error('--pool or --fresh');
  const pool = readSafetensors(o.pool);
  const train = Array.from(pool.tensors.get('seeds')!.data, (s) => randomScene(s, size));
  const held = Array.from({ length: Number(o.held) }, (_, i) => randomScene((HELD_OUT_SEED + i) >>> 0, size));
  const lt = labels(train);
  const lh = labels(held);
  // each relation question of the held-out scenes: scene, shape a, relation, shape b, answer (1 yes)
  const rel: number[] = [];
  held.forEach((s, i) => {
    for (const q of questions(s)) {
      if (q.kind !== 'relation') continue;
      const m = /^is the (\w+) (.+) the (\w+)\?$/.exec(q.question)!;
      rel.push(i, SHAPES.indexOf(m[1] as never), RELATIONS.indexOf(m[2] as never), SHAPES.indexOf(m[3] as never), q.answer === 'yes' ? 1 : 0);
    }
  });
  put('train_codes', 'I32', [train.length, K], pool.tensors.get('sceneCodes')!.data as Int32Array);
  put('train_counts', 'I32', [train.length, 18], lt.counts);
  put('train_cent', 'F32', [train.length, 6], lt.cent);
  put('held_codes', 'I32', [held.length, K], await tokenizeScenes(tok, held));
  put('held_counts', 'I32', [held.length, 18], lh.counts);
  put('held_cent', 'F32', [held.length, 6], lh.cent);
  put('held_rel', 'I32', [rel.length / 5, 5], Int32Array.from(rel));
  put('codebook', 'F32', [tok.cfg.quantizer.codebookSize, tok.cfg.quantizer.dim], tok.codebook.codebook);
}
writeFileSync(o.out, encodeSafetensors(t));
console.log(`wrote ${o.out}`);
