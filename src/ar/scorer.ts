// The GenEval substitute for scenes (issue #18): find the objects of an image by colour, classify
// their shapes from geometry, and score a prompt as GenEval does: each requirement (presence,
// count, colour, relation) is 0 or 1, and a prompt scores 1 only when all of them hold.
import { COLOURS, PALETTE, holds, withArticle, type Colour, type PromptSpec, type Shape } from './scenes.ts';

export type Detected = { colour: Colour; shape: Shape; cx: number; cy: number; area: number; fill: number; taper: number; corners: number };
export type Requirement = { what: string; ok: boolean };
export type Score = { score: 0 | 1; fraction: number; requirements: Requirement[]; objects: Detected[] };

/** A pixel takes the nearest palette colour if it is within this RGB distance of it; else it is background. */
export const COLOUR_RADIUS = 80;

/**
 * Shape from two geometric features of a component. `taper`: the mean row width of the top
 * third of its bounding box over that of the bottom third; an upward triangle narrows to its
 * apex (about 0.2), a circle or square does not (1). `fill`: the component's area over its
 * bounding box's; a square fills it (1), a circle π/4 ≈ 0.785, but a small pixelated circle
 * can reach 0.88. `corners`: how many of the bounding box's four corner pixels the component
 * holds (a square 4, a circle 0). Thresholds leave room for pixelation and blur.
 */
export function shapeOf(fill: number, taper: number, corners: number): Shape {
  if (taper < 0.6) return 'triangle';
  if (fill >= 0.9 || (fill >= 0.82 && corners >= 3)) return 'square';
  return 'circle';
}

/** The objects of an HWC RGB image (bytes): connected components of each palette colour. */
export function detect(rgb: Uint8Array, size: number): Detected[] {
  const n = size * size;
  const label = new Int8Array(n).fill(-1);
  for (let p = 0; p < n; p++) {
    let best = -1;
    let bestD = COLOUR_RADIUS * COLOUR_RADIUS;
    for (let c = 0; c < COLOURS.length; c++) {
      const ref = PALETTE[COLOURS[c]];
      const d = (rgb[3 * p] - ref[0]) ** 2 + (rgb[3 * p + 1] - ref[1]) ** 2 + (rgb[3 * p + 2] - ref[2]) ** 2;
      if (d < bestD) [best, bestD] = [c, d];
    }
    label[p] = best;
  }
  // the smallest object drawn has r = 0.08·size: a triangle of area ≈ 1.3·r², ~34 px at 64²;
  // a component must have a third of that
  const minArea = Math.max(4, Math.round(0.0028 * n));
  const seen = new Uint8Array(n);
  const out: Detected[] = [];
  const stack: number[] = [];
  for (let s = 0; s < n; s++) {
    if (seen[s] || label[s] < 0) continue;
    const c = label[s];
    let area = 0;
    let sx = 0;
    let sy = 0;
    let [x0, y0, x1, y1] = [size, size, -1, -1];
    const members: number[] = [];
    stack.push(s);
    seen[s] = 1;
    while (stack.length) {
      const p = stack.pop()!;
      members.push(p);
      const x = p % size;
      const y = (p / size) | 0;
      area++;
      sx += x;
      sy += y;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      for (const q of [x > 0 ? p - 1 : -1, x < size - 1 ? p + 1 : -1, y > 0 ? p - size : -1, y < size - 1 ? p + size : -1]) {
        if (q >= 0 && !seen[q] && label[q] === c) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    if (area < minArea) continue;
    const h = y1 - y0 + 1;
    const fill = area / ((x1 - x0 + 1) * h);
    const third = Math.max(1, Math.floor(h / 3));
    let top = 0;
    let bottom = 0;
    for (const p of members) {
      const y = (p / size) | 0;
      if (y < y0 + third) top++;
      if (y > y1 - third) bottom++;
    }
    const taper = top / Math.max(1, bottom);
    const corners = [y0 * size + x0, y0 * size + x1, y1 * size + x0, y1 * size + x1].filter((p) => label[p] === c && seen[p]).length;
    out.push({ colour: COLOURS[c], shape: shapeOf(fill, taper, corners), cx: sx / area + 0.5, cy: sy / area + 0.5, area, fill, taper, corners });
  }
  return out;
}

/** Score one prompt on one image (HWC RGB bytes). */
export function scorePrompt(spec: PromptSpec, rgb: Uint8Array, size: number): Score {
  const objects = detect(rgb, size);
  const matching = (shape: Shape, colour?: Colour) => objects.filter((o) => o.shape === shape && (!colour || o.colour === colour));
  const requirements: Requirement[] = [];
  for (const need of spec.needs) {
    const of = matching(need.shape);
    const named = need.colour ? `${need.colour} ${need.shape}` : need.shape;
    if (spec.exact) {
      requirements.push({ what: `exactly ${need.count} ${named}${need.count > 1 ? 's' : ''}`, ok: matching(need.shape, need.colour).length === need.count });
    } else {
      requirements.push({ what: withArticle(need.shape), ok: of.length > 0 });
      if (need.colour) requirements.push({ what: withArticle(named), ok: matching(need.shape, need.colour).length > 0 });
    }
  }
  if (spec.relation) {
    const [a, b] = spec.needs;
    const as = matching(a.shape, a.colour);
    const bs = matching(b.shape, b.colour);
    // GenEval checks the relation between the detected objects; a clear margin of 1/10 of the
    // image keeps near-ties from counting (scenes are drawn a quarter apart)
    const ok = as.some((p) => bs.some((q) => p !== q && holds(spec.relation!, p, q, size / 10)));
    requirements.push({ what: `${a.colour ? `${a.colour} ` : ''}${a.shape} ${spec.relation} ${b.colour ? `${b.colour} ` : ''}${b.shape}`, ok });
  }
  const passed = requirements.filter((r) => r.ok).length;
  return { score: passed === requirements.length ? 1 : 0, fraction: passed / requirements.length, requirements, objects };
}
