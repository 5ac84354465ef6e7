// Extra training photos for `--data photos+skimage`: the CC0 / public-domain sample images
// of scikit-image, as Debian's python3-skimage ships them (`scripts/skimage-data.sh`
// extracts them into .cache/skimage; SELFTOK_SKIMAGE_DIR points elsewhere). Licences, from
// the docstrings of skimage/data/_fetchers.py:
//   astronaut, rocket, hubble_deep_field: NASA / SpaceX, public domain
//   chelsea, coffee, camera, retina, brick, grass, gravel: CC0
//   ihc, coins, moon: "no known copyright restrictions"
// They only ever add training crops: the held-out split stays that of `photos`, so an
// eval on `photos` is comparable between models trained with and without them.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../node/paths.ts';
import { UserError } from '../util/errors.ts';
import { listImages } from './folder.ts';

export function skimageDir(): string {
  return process.env.SELFTOK_SKIMAGE_DIR ?? join(PACKAGE_ROOT, '.cache', 'skimage');
}

export function skimagePaths(): { name: string; path: string }[] {
  const dir = skimageDir();
  const files = existsSync(dir) ? listImages(dir) : [];
  if (!files.length) throw new UserError(`${dir}: no scikit-image sample photos here (run scripts/skimage-data.sh)`);
  return files.map((path) => ({ name: path.slice(dir.length + 1), path }));
}
