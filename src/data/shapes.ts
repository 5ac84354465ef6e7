// Procedural "shapes" images, deterministic by seed: a background (flat colour or a
// gradient: coarse), 1–4 coloured shapes of varied size and position (mid), and a
// fine texture (stripes, checks or noise). Coarse/mid/fine content makes the token
// order's coarse-to-fine semantics visible (spec §11).
import { Rng } from '../util/rng.ts';

type RGB = [number, number, number];

function colour(rng: Rng): RGB {
  return [rng.uniform(), rng.uniform(), rng.uniform()];
}

/** Render one size×size×3 image (HWC) in [−1, 1]. */
export function renderShapes(seed: number, size: number): Float32Array {
  const rng = new Rng(seed ^ 0x5eed5eed);
  const img = new Float32Array(size * size * 3);
  // background
  const c0 = colour(rng);
  const c1 = rng.uniform() < 0.5 ? c0 : colour(rng);
  const ang = rng.uniform() * Math.PI * 2;
  const gx = Math.cos(ang);
  const gy = Math.sin(ang);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const u = 0.5 + 0.5 * ((x / size - 0.5) * gx + (y / size - 0.5) * gy) * 1.4;
      for (let c = 0; c < 3; c++) img[(y * size + x) * 3 + c] = c0[c] * (1 - u) + c1[c] * u;
    }
  }
  // shapes, 4× supersampled coverage for smooth edges
  const n = rng.int(1, 5);
  for (let s = 0; s < n; s++) {
    const kind = rng.int(0, 4); // 0 disc, 1 rectangle, 2 triangle, 3 ring
    const col = colour(rng);
    const r = (0.1 + rng.uniform() * 0.25) * size;
    const cx = rng.uniform() * size;
    const cy = rng.uniform() * size;
    const rot = rng.uniform() * Math.PI;
    const aspect = 0.5 + rng.uniform();
    const inside = (px: number, py: number): boolean => {
      const dx = px - cx;
      const dy = py - cy;
      const rx = dx * Math.cos(rot) + dy * Math.sin(rot);
      const ry = -dx * Math.sin(rot) + dy * Math.cos(rot);
      switch (kind) {
        case 0:
          return rx * rx + (ry * aspect) ** 2 < r * r;
        case 1:
          return Math.abs(rx) < r && Math.abs(ry) < r * aspect;
        case 2:
          return ry > -r * 0.5 && ry < r && Math.abs(rx) < (r - ry) * 0.6;
        default: {
          const d = Math.hypot(rx, ry);
          return d < r && d > r * 0.55;
        }
      }
    };
    const x0 = Math.max(0, Math.floor(cx - 1.5 * r - 1));
    const x1 = Math.min(size, Math.ceil(cx + 1.5 * r + 1));
    const y0 = Math.max(0, Math.floor(cy - 1.5 * r - 1));
    const y1 = Math.min(size, Math.ceil(cy + 1.5 * r + 1));
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        let cov = 0;
        for (let sy = 0; sy < 2; sy++) for (let sx = 0; sx < 2; sx++) if (inside(x + 0.25 + 0.5 * sx, y + 0.25 + 0.5 * sy)) cov++;
        if (!cov) continue;
        const a = cov / 4;
        for (let c = 0; c < 3; c++) {
          const i = (y * size + x) * 3 + c;
          img[i] = img[i] * (1 - a) + col[c] * a;
        }
      }
    }
  }
  // fine texture
  const tex = rng.int(0, 3);
  const amp = 0.04 + rng.uniform() * 0.08;
  const period = 2 + rng.int(0, 3);
  const tang = rng.uniform() * Math.PI;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let v: number;
      if (tex === 0) v = Math.sin(((x * Math.cos(tang) + y * Math.sin(tang)) * 2 * Math.PI) / period);
      else if (tex === 1) v = (Math.floor(x / period) + Math.floor(y / period)) % 2 ? 1 : -1;
      else v = rng.uniform() * 2 - 1;
      for (let c = 0; c < 3; c++) {
        const i = (y * size + x) * 3 + c;
        img[i] = Math.min(1, Math.max(0, img[i] + amp * v)) * 2 - 1;
      }
    }
  }
  return img;
}
