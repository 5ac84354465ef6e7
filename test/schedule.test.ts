import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dropFinestTokens, fineTokenDropAt, samplerTaus, TokenSchedule } from '../src/tokenizer/schedule.ts';
import { Rng } from '../src/util/rng.ts';

const paper = new TokenSchedule(512, { type: 'diti', stages: [200, 400, 600, 800, 1000], perStage: [192, 184, 72, 48, 16] });
/** `tiny`'s schedule (configs/tiny.json). */
const tinySchedule = new TokenSchedule(16, { type: 'diti', stages: [250, 500, 750, 1000], perStage: [6, 5, 3, 2] });

test('K = 512 check values of spec §2.1', () => {
  const table: [number, number][] = [
    [0, 0], [199, 191], [200, 192], [399, 375], [400, 376], [599, 447], [600, 448], [799, 495], [800, 496], [987, 510], [988, 511], [1000, 511],
  ];
  for (const [tau, k] of table) assert.equal(paper.lastVisible(tau), k, `k(${tau})`);
});

test('50-step visible-token counts of spec §2.2', () => {
  const expected = [
    512, 511, 509, 508, 506, 505, 503, 501, 500, 498, 497, 492, 487, 482, 477, 473, 468, 463, 458, 453, 449, 441, 434, 427, 420, 413, 405, 398, 391, 384,
    377, 358, 340, 321, 303, 285, 266, 248, 229, 211, 193, 173, 154, 135, 116, 97, 77, 58, 39, 20,
  ];
  const taus = samplerTaus(50);
  assert.deepEqual(taus.slice(0, 3), [1000, 980, 960]);
  assert.deepEqual(taus.map((t) => paper.visibleCount(t)), expected);
});

test('first-visible times and visible fractions (spec §2.1)', () => {
  assert.equal(paper.firstVisibleTau(0), 0);
  assert.equal(paper.firstVisibleTau(192), 200);
  assert.equal(paper.firstVisibleTau(511), 987.5);
  assert.ok(Math.abs(paper.visibleFraction(511) - 0.0125) < 1e-12);
  assert.ok(Math.abs(paper.visibleFraction(496) - 0.2) < 1e-12);
  // visibility is monotone: more noise never shows fewer tokens
  let prev = 0;
  for (let tau = 0; tau <= 1000; tau += 0.5) {
    const n = paper.visibleCount(tau);
    assert.ok(n >= prev);
    prev = n;
  }
});

test('per-token gradient scale min(max, P^-power) (spec §4.6 check values)', () => {
  const w1 = paper.visibilityGradScale(1e9, 1);
  for (const [k, v] of [[0, 1], [192, 1.25], [376, 1.6667], [448, 2.5], [496, 5], [510, 40], [511, 80]]) assert.ok(Math.abs(w1[k] - v) < 1e-3 * v, `1/P at ${k}: ${w1[k]}`);
  // the reference compounds 1/P_k with K/(K − k): an effective power of 2.4–3.7 on this schedule
  for (const k of [192, 376, 448, 496, 511]) {
    const power = Math.log(w1[k] * (512 / (512 - k))) / Math.log(w1[k]);
    assert.ok(power > 2.4 && power < 3.7, `k ${k}: ${power}`);
  }
  const tiny = tinySchedule;
  const w2 = tiny.visibilityGradScale(8, 2);
  for (let k = 0; k < 16; k++) assert.equal(w2[k], Math.fround(Math.min(8, tiny.visibleFraction(k) ** -2)));
  assert.deepEqual([w2[0], w2[11], w2[14], w2[15]], [1, 4, 8, 8]); // P = 1, 1/2, 1/4 (clipped), 1/8 (clipped)
  assert.deepEqual(Array.from(tiny.visibilityGradScale(8, 0)), Array(16).fill(1));
});

test('small-K tables of spec §11.1: K = 8, 16 steps', () => {
  const s = new TokenSchedule(8, { type: 'diti', stages: [250, 500, 750, 1000], perStage: [3, 3, 1, 1] });
  const taus = samplerTaus(16);
  assert.deepEqual(taus, [1000, 937, 875, 812, 750, 687, 625, 562, 500, 437, 375, 312, 250, 187, 125, 62]);
  assert.deepEqual(taus.map((t) => s.visibleCount(t)), [8, 8, 8, 8, 8, 7, 7, 7, 7, 6, 5, 4, 4, 3, 2, 1]);
  const first = Array.from({ length: 8 }, (_, j) => +(s.firstVisibleTau(j) / 1000).toFixed(3));
  assert.deepEqual(first, [0, 0.083, 0.167, 0.25, 0.333, 0.417, 0.5, 0.75]);
});

test('small-K tables of spec §11.1: K = 32, 25 steps', () => {
  const s = new TokenSchedule(32, { type: 'diti', stages: [200, 400, 600, 800, 1000], perStage: [12, 11, 5, 3, 1] });
  const taus = samplerTaus(25);
  const got = taus.map((t) => [t, s.visibleCount(t)]);
  const expected: [number, number][] = [
    [1000, 32], [960, 32], [920, 32], [880, 32], [840, 32], [800, 32], [760, 31], [720, 30], [680, 30], [640, 29], [600, 29], [560, 28], [520, 27],
    [480, 26], [440, 25], [400, 24], [360, 21], [320, 19], [280, 17], [240, 15], [200, 13], [160, 10], [120, 8], [80, 5], [40, 3],
  ];
  assert.deepEqual(got, expected);
});

test('uniform schedule is k = floor(K·τ/1000), clamped', () => {
  const u = new TokenSchedule(16, { type: 'uniform' });
  for (const tau of [0, 62.4, 62.5, 500, 999, 1000]) assert.equal(u.lastVisible(tau), Math.min(15, Math.floor((16 * tau) / 1000)));
});

test('mask is an inclusive encoder-order prefix AND-ed with keep', () => {
  const m = paper.mask([0, 1000, 500], 450);
  const row = (b: number) => Array.from(m.subarray(b * 512, (b + 1) * 512));
  assert.equal(row(0).reduce((a, v) => a + v, 0), 1); // only token 0 at t = 0
  assert.equal(row(0)[0], 1);
  assert.equal(row(1).reduce((a, v) => a + v, 0), 450); // keep limits the prefix
  assert.equal(row(1)[449], 1);
  assert.equal(row(1)[450], 0);
  assert.equal(row(2).reduce((a, v) => a + v, 0), paper.visibleCount(500));
  assert.equal(row(2)[paper.visibleCount(500) - 1], 1);
  assert.equal(row(2)[paper.visibleCount(500)], 0);
});

test('fine-end token drop hides a random run of the lowest-index visible tokens, never the top one', () => {
  const s = tinySchedule;
  const taus = Array.from({ length: 4000 }, (_, i) => (i * 997) % 1001);
  const before = s.mask(taus);
  // p = 0 leaves the mask alone and draws nothing (so default runs keep their random stream)
  const same = before.slice();
  let draws = 0;
  dropFinestTokens(same, 16, 0, () => (draws++, 0));
  assert.deepEqual(same, before);
  assert.equal(draws, 0);

  const rng = new Rng(7);
  const after = before.slice();
  dropFinestTokens(after, 16, 0.5, () => rng.uniform());
  let dropped = 0;
  let eligible = 0;
  const firstKept = new Set<number>();
  for (let b = 0; b < taus.length; b++) {
    const row = Array.from(after.subarray(b * 16, b * 16 + 16));
    const n = s.visibleCount(taus[b]);
    const j0 = row.indexOf(1);
    // still one contiguous run that ends at the schedule's last visible token k
    assert.ok(j0 >= 0 && j0 < n, `row ${b}: the top visible token was dropped`);
    assert.deepEqual(row, row.map((_, j) => (j >= j0 && j < n ? 1 : 0)));
    if (n >= 2) eligible++;
    if (j0 > 0) {
      dropped++;
      firstKept.add(j0);
    }
  }
  assert.ok(Math.abs(dropped / eligible - 0.5) < 0.03, `dropped ${dropped} of ${eligible}`);
  // every cut point 1 … 15 occurs
  assert.deepEqual([...firstKept].sort((a, b) => a - b), Array.from({ length: 15 }, (_, i) => i + 1));
});

test('fine-end drop probability: constant without an end, linear from start to end over the run', () => {
  assert.equal(fineTokenDropAt(0.2, undefined, 1500, 2000), 0.2);
  assert.equal(fineTokenDropAt(0.3, 0.05, 0, 2000), 0.3);
  assert.ok(Math.abs(fineTokenDropAt(0.3, 0.05, 1999, 2000) - 0.05) < 1e-12);
  assert.ok(Math.abs(fineTokenDropAt(0.3, 0.1, 999.5, 2000) - 0.2) < 1e-12);
  // past the planned end (a resumed run trained further) it stays at the end value
  assert.ok(Math.abs(fineTokenDropAt(0.3, 0.05, 2500, 2000) - 0.05) < 1e-12);
  // no planned length: the start value throughout
  assert.equal(fineTokenDropAt(0.3, 0.05, 700, 0), 0.3);
});

test('bad schedules are rejected', () => {
  assert.throws(() => new TokenSchedule(8, { type: 'diti', stages: [500, 1000], perStage: [3, 3] }), /sums to 6/);
  assert.throws(() => new TokenSchedule(8, { type: 'diti', stages: [500, 900], perStage: [4, 4] }), /τ = 1000/);
  assert.throws(() => new TokenSchedule(8, { type: 'diti', stages: [600, 500, 1000], perStage: [4, 2, 2] }), /increase/);
});
