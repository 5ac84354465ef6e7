// Understanding of an AR model on N held-out scenes (issue #18; docs/scenes.md, stops 30–35):
// caption exact match and question accuracy by kind, asked directly and after the model's own
// caption, one JSON line each. The figures of `selftok geneval` without its generation half, so
// that a model trained on understanding alone (or on a tokenizer without a renderer) is measured
// quickly and on more scenes.
//   node --import tsx scripts/understanding.ts AR_DIR [TOKENIZER_DIR] [N=100] [likelihood|decode] [greedy|WIDTH]
// (how relation questions are answered, src/ar/ask.ts, default likelihood; how answers are
// decoded: free greedy words, or a beam of WIDTH within each question's answer set, default 4)
import { startDevice } from '../src/cli/common.ts';
import { loadArPair } from '../src/node/models.ts';
import { understanding } from '../src/ar/evaluate.ts';
import { DEFAULT_BEAM, RELATION_METHODS, type RelationMethod } from '../src/ar/ask.ts';

const [dir, tokenizerDir, n = '100', relations = 'likelihood', decoding = String(DEFAULT_BEAM)] = process.argv.slice(2);
const width = decoding === 'greedy' ? 0 : Number(decoding);
if (!dir || !(RELATION_METHODS as readonly string[]).includes(relations) || !(Number.isInteger(width) && width >= 0)) {
  console.error('usage: node --import tsx scripts/understanding.ts AR_DIR [TOKENIZER_DIR] [N=100] [likelihood|decode] [greedy|WIDTH]');
  process.exit(2);
}
await startDevice('wasm', true);
let loaded: Awaited<ReturnType<typeof loadArPair>>;
try {
  loaded = await loadArPair(dir, tokenizerDir);
} catch (e) {
  // a missing folder or another tokenizer: the library's one-line message, no stack
  console.error(`understanding: ${(e as Error).message}`);
  process.exit(1);
}
const { ar, tokenizer } = loaded;
for (const afterCaption of [false, true]) {
  const u = await understanding(ar, tokenizer, Number(n), { afterCaption, relations: relations as RelationMethod, beam: width });
  const kinds = Object.fromEntries(Object.entries(u.byKind).map(([k, s]) => [k, +s.accuracy.toFixed(3)]));
  console.log(JSON.stringify({ dir, scenes: u.scenes, afterCaption, captions: +u.captionExact.toFixed(3), questions: +u.questionAccuracy.toFixed(3), ...kinds, relationsBy: u.relationsBy, decoding: u.decoding, ...(u.relationDecoded ? { relationDecoded: +u.relationDecoded.accuracy.toFixed(3) } : {}) }));
}
