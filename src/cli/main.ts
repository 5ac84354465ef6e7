// The `selftok` command line: a thin layer over the library (src/tokenizer/model.ts).
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.ts';
import { PACKAGE_ROOT } from './common.ts';
import { trainCommand } from './train.ts';
import { encodeCommand } from './encode.ts';
import { decodeCommand } from './decode.ts';
import { reconstructCommand } from './reconstruct.ts';
import { evalCommand } from './eval.ts';
import { demoCommand } from './demo.ts';
import { trainRendererCommand } from './train-renderer.ts';
import { exportCommand } from './export.ts';
import { corpusCommand } from './corpus.ts';
import { importCommand } from './import.ts';
import { arTrainCommand, askCommand, captionCommand, generateCommand, genevalCommand } from './ar.ts';
import { rlCommand } from './rl.ts';

const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };

const program = new Command('selftok')
  .description('Selftok: discrete, autoregressive visual tokens by diffusion (arXiv 2505.07538), in TypeScript')
  .version(pkg.version)
  .showHelpAfterError()
  .exitOverride();

for (const c of [trainCommand(), encodeCommand(), decodeCommand(), reconstructCommand(), evalCommand(), demoCommand(), trainRendererCommand(), exportCommand(), corpusCommand(), importCommand(), arTrainCommand(), generateCommand(), captionCommand(), askCommand(), genevalCommand(), rlCommand()]) {
  program.addCommand(c.exitOverride());
}

try {
  await program.parseAsync(process.argv);
  // a training command stopped by a signal sets 130 or 143 (src/node/stop.ts)
  process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exit(e.exitCode);
  }
  if (e instanceof UserError) {
    process.stderr.write(`selftok: ${e.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`selftok: internal error: ${(e as Error).stack ?? e}\n`);
  process.exit(2);
}
