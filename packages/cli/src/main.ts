import { Command, CommanderError, Option } from 'commander';
import { PackageError } from '@otadiff/patch-apply';
import { GenerateError } from '@otadiff/diff-gen';
import { applyCommand } from './commands/apply.js';
import { diffCommand } from './commands/diff.js';
import { infoCommand } from './commands/info.js';
import { registerOtaCommands } from './commands/ota.js';
import { CliError } from './size-arg.js';

function program(): Command {
  const p = new Command('otadiff')
    .description('Differential firmware updates: chunked diff packages, a pure-TypeScript patcher, power-loss-safe restore')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  p.command('diff')
    .description('make a package that turns OLD into NEW')
    .argument('<OLD>', 'old firmware image')
    .argument('<NEW>', 'new firmware image')
    .requiredOption('-o, --output <PATCH>', 'package file to write')
    .addOption(new Option('--mode <mode>', 'inplace: restore over the old image; ab: into another slot').default('inplace'))
    .option('--split-size <size>', 'chunk size of the new image, a multiple of 4K', '64K')
    .option('--dict-size <size>', 'LZMA dictionary the device must hold', '16K')
    .option('--json', 'print one JSON object')
    .action(diffCommand);

  p.command('apply')
    .description('restore NEW from OLD and a package with the pure-TypeScript patcher')
    .argument('<OLD>', 'old firmware image')
    .argument('<PATCH>', 'package')
    .requiredOption('-o, --output <NEW>', 'image file to write')
    .option('--max-dict <size>', 'refuse packages needing a larger LZMA dictionary (default 8M)')
    .option('--json', 'print one JSON object')
    .action(applyCommand);

  p.command('info')
    .description('show a package header and chunk table')
    .argument('<PATCH>', 'package')
    .option('--json', 'print one JSON object')
    .action(infoCommand);

  registerOtaCommands(p);
  return p;
}

/** Runs the CLI; returns the exit status. Every failure is one `error: …` line on stderr and status 1. */
export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit 0; commander has already printed its own `error: …` line otherwise.
      return e.exitCode === 0 ? 0 : 1;
    }
    if (e instanceof CliError || e instanceof PackageError || e instanceof GenerateError) {
      process.stderr.write(`error: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`error: ${(e as Error)?.message ?? String(e)}\n`);
    if (process.env.OTADIFF_DEBUG) process.stderr.write(`${(e as Error)?.stack}\n`);
    return 1;
  }
}
