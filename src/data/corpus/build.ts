// Build the photo corpus from unpacked packages (scripts/photo-corpus.sh fetches them):
//   1. candidates: the files each source rule of sources.ts names (inside .rcc/.pk3 archives too)
//   2. automatic checks on a 64×64 thumbnail: big enough, opaque, in colour, enough distinct
//      colours, not flat (line art, icons and flat abstract art fail these)
//   3. duplicates: a 64-bit difference hash (dHash); the larger copy is kept
//   4. caps per source, chosen by a hash of the path (deterministic)
//   5. split by image: ~15% of each source (whole families: files with the same name stem
//      in one package) to validation; sources marked trainOnly never validate
//   6. each image stored once, shorter side ≤ 256 px, as JPEG (q 95), with a manifest that
//      records source package, version, path, licence, copyright and the check figures
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import sharp from 'sharp';
import { unzipSync } from 'fflate';
import { UserError } from '../../util/errors.ts';
import { writeFileAtomic } from '../../node/fsx.ts';
import { licenceOf, parseCopyright, type Stanza } from './copyright.ts';
import { readRcc } from './rcc.ts';
import { RESERVED_PACKAGES, SOURCES, type SourceRule } from './sources.ts';

export const MANIFEST_VERSION = 2;
export const STORE_SIDE = 256;
export const VAL_FRACTION = 0.15;
export const MIN_VAL = 40;

/** Thresholds of the automatic checks (on a 64×64 cover-fit thumbnail, 8-bit levels). */
export const CHECKS = {
  minSide: 200,
  /** mean over pixels of max(R,G,B) − min(R,G,B): below this the image is greyscale */
  minChroma: 10,
  /** distinct colours at 6 bits per channel */
  minColours: 300,
  /** fraction of 4×4 blocks whose range is ≤ 2 levels in every channel */
  maxFlat: 0.25,
  /** dHash Hamming distance at or below which two images are one */
  dupDistance: 5,
};

export type CorpusImage = {
  id: string;
  file: string;
  split: 'train' | 'val';
  source: string;
  package: string;
  packageVersion: string;
  path: string;
  license: string;
  copyright: string;
  comment: string;
  licenseFrom: string;
  family: string;
  width: number;
  height: number;
  chroma: number;
  colours: number;
  flat: number;
  dhash: string;
};

export type Manifest = {
  version: number;
  rulesHash: string;
  checks: typeof CHECKS;
  images: CorpusImage[];
  dropped: Record<string, Record<string, number>>;
};

type Candidate = { rule: SourceRule; pkgDir: string; path: string; licencePath: string; bytes: () => Uint8Array };

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile()) out.push(p);
  }
  return out;
}

const sha1 = (s: string | Uint8Array): string => createHash('sha1').update(s).digest('hex');

/** The package directories a rule reads: an unpacked .deb under pkgsDir, or npm packages. */
function packageDirs(rule: SourceRule, pkgsDir: string, nodeModules: string): string[] {
  if (rule.pkg.startsWith('npm:')) {
    const [scope, pattern] = rule.pkg.slice(4).split('/');
    const re = new RegExp(`^${pattern.replace(/\*/g, '.*')}$`);
    const base = join(nodeModules, scope);
    return existsSync(base) ? readdirSync(base).filter((n) => re.test(n)).sort().map((n) => join(base, n)) : [];
  }
  const dir = join(pkgsDir, rule.pkg);
  if (!existsSync(dir)) throw new UserError(`${dir}: package ${rule.pkg} is not unpacked here (run scripts/photo-corpus.sh)`);
  return [dir];
}

function candidates(rule: SourceRule, pkgDir: string): Candidate[] {
  const out: Candidate[] = [];
  const files = walk(pkgDir).sort();
  const keep = (p: string): boolean => rule.include.test(p) && !(rule.exclude?.test(p) ?? false);
  for (const file of files) {
    const rel = relative(pkgDir, file);
    if (rule.archive === 'rcc' && rel.endsWith('.rcc')) {
      for (const f of readRcc(readFileSync(file), file)) {
        if (keep(f.path)) out.push({ rule, pkgDir, path: `${rel}!${f.path}`, licencePath: f.path, bytes: f.bytes });
      }
    } else if (rule.archive === 'zip' && /\.(pk3|zip)$/.test(rel)) {
      const entries = unzipSync(readFileSync(file), { filter: (e) => keep(e.name) });
      for (const [name, data] of Object.entries(entries).sort(([a], [b]) => (a < b ? -1 : 1))) {
        out.push({ rule, pkgDir, path: `${rel}!${name}`, licencePath: name, bytes: () => data });
      }
    } else if (!rule.archive && keep(rel)) {
      out.push({ rule, pkgDir, path: rel, licencePath: rel, bytes: () => readFileSync(file) });
    }
  }
  return out;
}

export type Features = { width: number; height: number; opaque: boolean; chroma: number; colours: number; flat: number; dhash: bigint };

/** The figures the automatic checks use (see CHECKS). */
export async function imageFeatures(bytes: Uint8Array): Promise<Features> {
  const img = sharp(bytes, { failOn: 'error' });
  const meta = await img.metadata();
  const width = meta.autoOrient?.width ?? meta.width!;
  const height = meta.autoOrient?.height ?? meta.height!;
  let opaque = true;
  if (meta.hasAlpha) {
    const a = await sharp(bytes).extractChannel('alpha').raw().toBuffer();
    for (let i = 0; i < a.length; i++) if (a[i] < 250) { opaque = false; break; }
  }
  const t = await sharp(bytes).rotate().removeAlpha().toColourspace('srgb').resize(64, 64, { fit: 'cover' }).raw().toBuffer();
  let chroma = 0;
  const cols = new Set<number>();
  for (let i = 0; i < t.length; i += 3) {
    chroma += Math.max(t[i], t[i + 1], t[i + 2]) - Math.min(t[i], t[i + 1], t[i + 2]);
    cols.add(((t[i] >> 2) << 12) | ((t[i + 1] >> 2) << 6) | (t[i + 2] >> 2));
  }
  let flat = 0;
  for (let by = 0; by < 64; by += 4) {
    for (let bx = 0; bx < 64; bx += 4) {
      let lo = 255, hi = 0;
      for (let y = by; y < by + 4; y++) {
        for (let x = bx; x < bx + 4; x++) {
          for (let c = 0; c < 3; c++) {
            const v = t[(y * 64 + x) * 3 + c];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
          }
        }
      }
      if (hi - lo <= 2) flat++;
    }
  }
  // dHash: 9×8 grey, one bit per horizontal neighbour pair
  const g = await sharp(bytes).rotate().removeAlpha().greyscale().resize(9, 8, { fit: 'fill' }).raw().toBuffer();
  let dhash = 0n;
  for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) dhash = (dhash << 1n) | (g[y * 9 + x] < g[y * 9 + x + 1] ? 1n : 0n);
  return { width, height, opaque, chroma: chroma / 4096, colours: cols.size, flat: flat / 256, dhash };
}

/** Why an image fails the automatic checks, or undefined when it passes. */
export function checkFailure(f: Features): string | undefined {
  if (Math.min(f.width, f.height) < CHECKS.minSide) return 'small';
  if (!f.opaque) return 'transparent';
  if (f.chroma < CHECKS.minChroma) return 'greyscale';
  if (f.colours < CHECKS.minColours) return 'few colours';
  if (f.flat > CHECKS.maxFlat) return 'flat';
  return undefined;
}

function hamming(a: bigint, b: bigint): number {
  let x = a ^ b;
  let n = 0;
  while (x) {
    n += Number(x & 1n);
    x >>= 1n;
  }
  return n;
}

/**
 * Images sharing a name in one package are one family, and a family goes to one split:
 * the name is the file's stem, or, where that is generic (plasma's `1920x1080.png`, stdlib's
 * `data/image.jpg`), the nearest folder with a real name.
 */
export function familyOf(pkg: string, pkgDirName: string, path: string): string {
  const generic = /^(image|images|background|texture|screenshot|contents|data|\d+x\d+)$/i;
  const parts = [pkgDirName, ...path.split('!').pop()!.split('/')].map((p) => p.replace(/\.[^.]+$/, ''));
  let name = parts.pop()!;
  while (generic.test(name) && parts.length) name = parts.pop()!;
  return `${pkg}:${name.toLowerCase().replace(/_background$/, '').replace(/[^a-z0-9]/g, '')}`;
}

function packageVersion(pkgDir: string, pkg: string): string {
  const stamp = join(pkgDir, '.version');
  if (existsSync(stamp)) return readFileSync(stamp, 'utf8').trim();
  const pj = join(pkgDir, 'package.json');
  if (existsSync(pj)) return (JSON.parse(readFileSync(pj, 'utf8')) as { version?: string }).version ?? '';
  return pkg;
}

function copyrightOf(rule: SourceRule, pkgDir: string): Stanza[] {
  if (rule.pkg.startsWith('npm:')) return [];
  const f = join(pkgDir, 'usr', 'share', 'doc', rule.pkg, 'copyright');
  return existsSync(f) ? parseCopyright(readFileSync(f, 'utf8')) : [];
}

export function rulesHash(rules: SourceRule[] = SOURCES): string {
  return sha1(JSON.stringify({ rules: rules.map((r) => ({ ...r, include: String(r.include), exclude: String(r.exclude) })), CHECKS, STORE_SIDE, VAL_FRACTION })).slice(0, 16);
}

export type BuildOptions = { pkgsDir: string; outDir: string; nodeModules: string; rules?: SourceRule[]; minVal?: number; log?: (s: string) => void };

/** Build (or rebuild) the corpus; returns the manifest. Idempotent: an up-to-date corpus is left alone. */
export async function buildCorpus(opts: BuildOptions): Promise<Manifest> {
  const rules = opts.rules ?? SOURCES;
  const log = opts.log ?? (() => {});
  const manifestPath = join(opts.outDir, 'manifest.json');
  const hash = rulesHash(rules);
  if (existsSync(manifestPath)) {
    const old = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
    if (old.version === MANIFEST_VERSION && old.rulesHash === hash && old.images.every((im) => existsSync(join(opts.outDir, im.file)))) {
      log(`corpus: ${manifestPath} is up to date (${old.images.length} images)`);
      return old;
    }
  }
  for (const r of rules) if (RESERVED_PACKAGES.includes(r.pkg)) throw new UserError(`corpus: package ${r.pkg} is reserved for an independent evaluation`);

  type Kept = { c: Candidate; f: Features; bytes: Uint8Array; version: string; stanzas: Stanza[] };
  const kept: Kept[] = [];
  const dropped: Record<string, Record<string, number>> = {};
  const drop = (rule: string, why: string): void => {
    dropped[rule] ??= {};
    dropped[rule][why] = (dropped[rule][why] ?? 0) + 1;
  };
  for (const rule of rules) {
    let n = 0;
    for (const pkgDir of packageDirs(rule, opts.pkgsDir, opts.nodeModules)) {
      const version = packageVersion(pkgDir, rule.pkg);
      const stanzas = copyrightOf(rule, pkgDir);
      for (const c of candidates(rule, pkgDir)) {
        const bytes = c.bytes();
        let f: Features;
        try {
          f = await imageFeatures(bytes);
        } catch {
          drop(rule.id, 'unreadable');
          continue;
        }
        const why = checkFailure(f);
        if (why) {
          drop(rule.id, why);
          continue;
        }
        kept.push({ c, f, bytes, version, stanzas });
        n++;
      }
    }
    log(`corpus: ${rule.id}: ${n} candidates pass the checks`);
  }

  // duplicates: keep the first rule's copy, and within a rule the larger one
  const order = kept.map((_, i) => i).sort((a, b) => {
    const ra = rules.indexOf(kept[a].c.rule), rb = rules.indexOf(kept[b].c.rule);
    return ra - rb || kept[b].f.width * kept[b].f.height - kept[a].f.width * kept[a].f.height || (kept[a].c.path < kept[b].c.path ? -1 : 1);
  });
  const unique: Kept[] = [];
  for (const i of order) {
    if (unique.some((u) => hamming(u.f.dhash, kept[i].f.dhash) <= CHECKS.dupDistance)) drop(kept[i].c.rule.id, 'duplicate');
    else unique.push(kept[i]);
  }

  // caps, then the split
  const images: CorpusImage[] = [];
  const byteOf = new Map<string, Uint8Array>();
  for (const rule of rules) {
    let mine = unique.filter((u) => u.c.rule === rule).sort((a, b) => (sha1(a.c.path) < sha1(b.c.path) ? -1 : 1));
    if (rule.cap !== undefined && mine.length > rule.cap) {
      for (let i = rule.cap; i < mine.length; i++) drop(rule.id, 'over the cap');
      mine = mine.slice(0, rule.cap);
    }
    const families = [...new Set(mine.map((u) => familyOf(rule.pkg, basename(u.c.pkgDir), u.c.path)))].sort((a, b) => (sha1(`val:${a}`) < sha1(`val:${b}`) ? -1 : 1));
    const wantVal = rule.trainOnly || mine.length < 4 ? 0 : Math.max(1, Math.round(VAL_FRACTION * mine.length));
    const valFamilies = new Set<string>();
    let nVal = 0;
    for (const fam of families) {
      if (nVal >= wantVal) break;
      valFamilies.add(fam);
      nVal += mine.filter((u) => familyOf(rule.pkg, basename(u.c.pkgDir), u.c.path) === fam).length;
    }
    for (const u of mine) {
      const family = familyOf(rule.pkg, basename(u.c.pkgDir), u.c.path);
      const mapped = rule.sourcePath && u.c.licencePath.startsWith(rule.sourcePath[0]);
      const lic = mapped
        ? licenceOf(u.stanzas, rule.sourcePath![1] + u.c.licencePath.slice(rule.sourcePath![0].length), { anchored: true })
        : licenceOf(u.stanzas, u.c.licencePath);
      const specific = lic && lic.pattern !== '*';
      const id = `${rule.id}-${sha1(`${rule.pkg}/${u.c.path}`).slice(0, 10)}`;
      images.push({
        id,
        file: `images/${id}.jpg`,
        split: valFamilies.has(family) ? 'val' : 'train',
        source: rule.id,
        package: rule.pkg.startsWith('npm:') ? `npm:${relative(opts.nodeModules, u.c.pkgDir)}` : rule.pkg,
        packageVersion: u.version,
        path: u.c.path,
        license: specific || !rule.license ? (lic?.license ?? 'unknown') : rule.license,
        copyright: lic?.copyright ?? '',
        comment: lic?.comment ?? '',
        licenseFrom: specific ? `copyright file, Files: ${lic.pattern}` : rule.license ? 'source rule (sources.ts)' : lic ? 'copyright file, Files: *' : 'none',
        family,
        width: u.f.width,
        height: u.f.height,
        chroma: +u.f.chroma.toFixed(2),
        colours: u.f.colours,
        flat: +u.f.flat.toFixed(3),
        dhash: u.f.dhash.toString(16).padStart(16, '0'),
      });
      byteOf.set(id, u.bytes);
    }
  }
  const nVal = images.filter((i) => i.split === 'val').length;
  const minVal = opts.minVal ?? MIN_VAL;
  if (nVal < minVal) throw new UserError(`corpus: only ${nVal} validation images (need ≥ ${minVal}); are all packages unpacked?`);

  // write the images, then the manifest (its presence marks a complete corpus)
  const imgDir = join(opts.outDir, 'images');
  if (existsSync(imgDir)) for (const f of readdirSync(imgDir)) if (!images.some((i) => i.file === `images/${f}`)) rmSync(join(imgDir, f));
  mkdirSync(imgDir, { recursive: true });
  for (const im of images) {
    const out = join(opts.outDir, im.file);
    if (existsSync(out) && statSync(out).size > 0) continue;
    const side = Math.min(STORE_SIDE, im.width, im.height);
    const jpg = await sharp(byteOf.get(im.id)!).rotate().removeAlpha().toColourspace('srgb')
      .resize(im.width <= im.height ? side : null, im.width <= im.height ? null : side, { kernel: 'lanczos3' })
      .jpeg({ quality: 95, chromaSubsampling: '4:4:4' })
      .toBuffer();
    writeFileAtomic(out, jpg);
  }
  const manifest: Manifest = { version: MANIFEST_VERSION, rulesHash: hash, checks: CHECKS, images, dropped };
  writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 1));
  log(`corpus: ${images.length} images (${images.length - nVal} train, ${nVal} validation) in ${dirname(manifestPath)}`);
  return manifest;
}
