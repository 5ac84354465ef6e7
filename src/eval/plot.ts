// Line plots as PNG (an SVG drawn by sharp's librsvg): training curves, histograms.
import sharp from 'sharp';

export type Series = { name: string; color: string; xs: number[]; ys: number[] };
export type Panel = { title: string; xlabel?: string; ylabel?: string; series: Series[]; logY?: boolean };

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(+v.toPrecision(6));
  return out;
}

function panelSvg(p: Panel, x0: number, y0: number, w: number, h: number): string {
  const left = 56, right = 12, top = 24, bottom = 36;
  const pw = w - left - right, ph = h - top - bottom;
  const all = p.series.flatMap((s) => s.xs.map((x, i) => [x, p.logY ? Math.log10(Math.max(1e-12, s.ys[i])) : s.ys[i]] as const)).filter(([, y]) => Number.isFinite(y));
  const xmin = Math.min(...all.map((a) => a[0])), xmax = Math.max(...all.map((a) => a[0]));
  let ymin = Math.min(...all.map((a) => a[1])), ymax = Math.max(...all.map((a) => a[1]));
  if (ymax === ymin) { ymin -= 1; ymax += 1; }
  const pad = (ymax - ymin) * 0.05;
  ymin -= pad; ymax += pad;
  const sx = (x: number): number => x0 + left + ((x - xmin) / (xmax - xmin || 1)) * pw;
  const sy = (y: number): number => y0 + top + ph - ((y - ymin) / (ymax - ymin)) * ph;
  let svg = `<rect x="${x0 + left}" y="${y0 + top}" width="${pw}" height="${ph}" fill="white" stroke="#888"/>`;
  svg += `<text x="${x0 + left + pw / 2}" y="${y0 + 16}" font-size="13" text-anchor="middle" font-family="sans-serif">${esc(p.title)}</text>`;
  for (const t of ticks(xmin, xmax)) svg += `<text x="${sx(t)}" y="${y0 + top + ph + 14}" font-size="10" text-anchor="middle" font-family="sans-serif">${t}</text>`;
  for (const t of ticks(ymin, ymax)) {
    svg += `<line x1="${x0 + left}" x2="${x0 + left + pw}" y1="${sy(t)}" y2="${sy(t)}" stroke="#eee"/>`;
    svg += `<text x="${x0 + left - 4}" y="${sy(t) + 3}" font-size="10" text-anchor="end" font-family="sans-serif">${p.logY ? `1e${t}` : t}</text>`;
  }
  if (p.xlabel) svg += `<text x="${x0 + left + pw / 2}" y="${y0 + h - 4}" font-size="11" text-anchor="middle" font-family="sans-serif">${esc(p.xlabel)}</text>`;
  if (p.ylabel) svg += `<text x="${x0 + 12}" y="${y0 + top + ph / 2}" font-size="11" text-anchor="middle" font-family="sans-serif" transform="rotate(-90 ${x0 + 12} ${y0 + top + ph / 2})">${esc(p.ylabel)}</text>`;
  p.series.forEach((s, k) => {
    const pts = s.xs.map((x, i) => [x, p.logY ? Math.log10(Math.max(1e-12, s.ys[i])) : s.ys[i]]).filter(([, y]) => Number.isFinite(y));
    svg += `<polyline fill="none" stroke="${s.color}" stroke-width="1.6" points="${pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`;
    svg += `<text x="${x0 + left + pw - 6}" y="${y0 + top + 14 + 13 * k}" font-size="11" text-anchor="end" fill="${s.color}" font-family="sans-serif">${esc(s.name)}</text>`;
  });
  return svg;
}

/** Panels side by side (cols per row), as PNG bytes. */
export async function plotPng(panels: Panel[], opts: { cols?: number; width?: number; height?: number } = {}): Promise<Uint8Array> {
  const cols = opts.cols ?? panels.length;
  const w = opts.width ?? 420, h = opts.height ?? 280;
  const rows = Math.ceil(panels.length / cols);
  const body = panels.map((p, i) => panelSvg(p, (i % cols) * w, Math.floor(i / cols) * h, w, h)).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${cols * w}" height="${rows * h}"><rect width="100%" height="100%" fill="#fafafa"/>${body}</svg>`;
  return new Uint8Array(await sharp(Buffer.from(svg)).png().toBuffer());
}
