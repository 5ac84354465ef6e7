// Licence look-up in a Debian machine-readable copyright file (DEP-5,
// https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/).
// A `Files:` stanza lists glob patterns of source-tree paths; the last stanza that
// matches a file wins (the format's rule). Installed paths differ from source paths
// (usr/share/... vs src/...), and packagers sometimes convert images (GCompris ships its
// .jpg sources as .webp), so a pattern is tried against every path suffix of the file,
// with and without the extension.

export type Stanza = { files: string[]; copyright: string; license: string; comment: string };
export type LicenceMatch = { license: string; copyright: string; comment: string; pattern: string };

/** Parse the `Files:` stanzas of a DEP-5 copyright file (paragraphs separated by blank lines). */
export function parseCopyright(text: string): Stanza[] {
  const out: Stanza[] = [];
  for (const para of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let key = '';
    for (const line of para.split('\n')) {
      if (/^\s/.test(line) && key) {
        fields.set(key, `${fields.get(key)}\n${line.trim()}`);
        continue;
      }
      const m = /^([A-Za-z-]+):\s?(.*)$/.exec(line);
      if (!m) continue;
      key = m[1].toLowerCase();
      fields.set(key, m[2].trim());
    }
    const files = fields.get('files');
    if (!files) continue;
    out.push({
      files: files.split(/\s+/).filter(Boolean),
      copyright: (fields.get('copyright') ?? '').replace(/\s*\n\s*/g, '; '),
      // the first line of License: is the short name; the rest is the licence text
      license: (fields.get('license') ?? '').split('\n')[0].trim(),
      comment: (fields.get('comment') ?? '').split('\n')[0].trim(),
    });
  }
  return out;
}

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

// Packagers convert raster images (GCompris ships its .jpg sources as .webp): a pattern
// naming a raster file also matches the same path with another raster extension.
const RASTER = /\.(jpe?g|png|webp|gif|bmp|tiff?)$/i;
const stripRaster = (p: string): string => p.replace(RASTER, '');

function matches(pattern: string, paths: string[]): boolean {
  const re = globToRegExp(pattern);
  if (paths.some((x) => re.test(x))) return true;
  if (!RASTER.test(pattern)) return false;
  const loose = globToRegExp(stripRaster(pattern));
  return paths.some((x) => RASTER.test(x) && loose.test(stripRaster(x)));
}

/**
 * The licence of `path` (a path inside the package or an archive in it), or undefined if no
 * stanza matches. In order: the last stanza with a pattern matching a path suffix; else the
 * last one naming the file's base name exactly (installed paths drop the source folders);
 * else the package default (`Files: *`). `anchored`: `path` is the file's path in the source
 * tree, so a pattern must match all of it (DEP-5's own rule), not a suffix.
 */
export function licenceOf(stanzas: Stanza[], path: string, opts: { anchored?: boolean } = {}): LicenceMatch | undefined {
  const parts = path.split('/');
  const suffixes = opts.anchored ? [path] : parts.map((_, i) => parts.slice(i).join('/'));
  const base = parts[parts.length - 1];
  const found = (st: Stanza, pattern: string): LicenceMatch => ({ license: st.license, copyright: st.copyright, comment: st.comment, pattern });
  const passes: ((pattern: string) => boolean)[] = [
    (p) => p !== '*' && matches(p, suffixes),
    (p) => !/[*?]/.test(p) && matches(p.split('/').pop()!, [base]),
    (p) => p === '*',
  ];
  for (const pass of passes) {
    for (let s = stanzas.length - 1; s >= 0; s--) {
      const pattern = stanzas[s].files.find(pass);
      if (pattern) return found(stanzas[s], pattern);
    }
  }
  return undefined;
}
