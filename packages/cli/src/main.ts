import { Command, CommanderError, Option } from 'commander';
import { registerOtaCommands } from './commands/ota.js';
import { addFlashOptions } from './flash-args.js';
import { CliError } from './size-arg.js';

// Commands load their modules when they run: `apply` should not pay for lzma-native or the MQTT stack.
const diffCommand = async (...a: Parameters<typeof import('./commands/diff.js').diffCommand>) => (await import('./commands/diff.js')).diffCommand(...a);
const applyCommand = async (...a: Parameters<typeof import('./commands/apply.js').applyCommand>) => (await import('./commands/apply.js')).applyCommand(...a);
const infoCommand = async (...a: Parameters<typeof import('./commands/info.js').infoCommand>) => (await import('./commands/info.js')).infoCommand(...a);
const powercutCommand = async (...a: Parameters<typeof import('./commands/powercut.js').powercutCommand>) =>
  (await import('./commands/powercut.js')).powercutCommand(...a);
const flash = () => import('./commands/flash.js');
const keys = () => import('./commands/keys.js');
const packCommand = async (...a: Parameters<typeof import('./commands/pack.js').packCommand>) => (await import('./commands/pack.js')).packCommand(...a);
const collect = (v: string, prev: string[] = []) => [...prev, v];


/** What the owner signs into a package's header: `diff` and `pack` take the same options. */
function withReleaseOptions(cmd: Command): Command {
  return cmd
    .option('--sign <KEY>', 'sign the package with this private key (PEM, from `otadiff keygen`)')
    .option('--fw-version <version>', "NEW's firmware version, signed into the header (at most 32 printable ASCII characters)")
    .option('--security-counter <n>', "NEW's anti-rollback counter: devices refuse packages below the one they recorded", '0')
    .option('--allow-downgrade', 'let devices install this package below their recorded security counter');
}

/** Commands that ran but did not succeed (a failed power cut, a halted boot) set this; errors throw. */
let failedStatus = false;

function program(): Command {
  const p = new Command('otadiff')
    .description('Differential firmware updates: chunked diff packages, a pure-TypeScript patcher, power-loss-safe restore')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  const diff = p
    .command('diff')
    .description('make a package that turns OLD into NEW')
    .argument('<OLD>', 'old firmware image: a flat binary, or Intel HEX (.hex)')
    .argument('<NEW>', 'new firmware image: a flat binary, or Intel HEX (.hex)')
    .requiredOption('-o, --output <PATCH>', 'package file to write')
    .addOption(new Option('--mode <mode>', 'inplace: restore over the old image; ab: into another slot').default('inplace'))
    .option('--split-size <size>', 'chunk size of the new image, a multiple of 4K', '64K')
    .option('--dict-size <size>', 'LZMA dictionary the device must hold', '16K')
    .option('--transform <kind>', 'executable-aware transform: auto, none, thumb2 (ARM Cortex-M) or xtensa (ESP8266); kept only where it makes chunks smaller', 'auto')
    .option('--base <address>', 'load address of the image (e.g. 0x08000000); default: read off the vector table (Thumb-2), else 0')
    .option('--json', 'print one JSON object')
    .action(diffCommand);
  withReleaseOptions(diff);

  const pack = p
    .command('pack')
    .description('make an OTA_RAW package: the full IMAGE behind the same (signed) header as a diff')
    .argument('<IMAGE>', 'new firmware image: a flat binary, or Intel HEX (.hex)')
    .requiredOption('-o, --output <PATCH>', 'package file to write')
    .option('--split-size <size>', 'chunk size of the CRC table, a multiple of 4K', '64K')
    .option('--json', 'print one JSON object')
    .action(packCommand);
  withReleaseOptions(pack);

  p.command('keygen')
    .description('make a signing key pair: KEY (private, PEM) and KEY.pub (public, for devices)')
    .requiredOption('-o, --output <KEY>', 'private key file to write (the public key goes to KEY.pub)')
    .option('--type <type>', 'ed25519, ecdsa-p256 or rsa-2048', 'ed25519')
    .option('--force', 'replace existing key files')
    .option('--json', 'print one JSON object')
    .action(async (o) => (await keys()).keygenCommand(o));

  p.command('sign')
    .description('sign (or re-sign) a package, e.g. on an offline machine; the records stay as they are')
    .argument('<PATCH>', 'package')
    .requiredOption('--key <KEY>', 'private key (PEM)')
    .option('-o, --output <FILE>', 'write the signed package here (default: replace PATCH)')
    .option('--json', 'print one JSON object')
    .action(async (patch: string, o) => (await keys()).signCommand(patch, o));

  p.command('verify')
    .description("check a package's signature, payload hash and header (with --old: restore NEW in memory too)")
    .argument('<PATCH>', 'package')
    .requiredOption('--pubkey <PUB>', 'trusted public key (PEM); repeat for several', collect)
    .option('--old <OLD>', 'old image: also restore NEW and check every chunk and its SHA-256')
    .option('--security-counter <n>', "refuse a package below this counter (a device's recorded one)")
    .option('--json', 'print one JSON object')
    .action(async (patch: string, o) => (await keys()).verifyCommand(patch, o));

  p.command('apply')
    .description('restore NEW from OLD and a package with the pure-TypeScript patcher')
    .argument('<OLD>', 'old firmware image')
    .argument('<PATCH>', 'package')
    .requiredOption('-o, --output <NEW>', 'image file to write')
    .option('--max-dict <size>', 'refuse packages needing a larger LZMA dictionary (default 8M)')
    .option('--pubkey <PUB>', 'refuse the package unless this public key (PEM) verifies it; repeat for several', collect)
    .option('--json', 'print one JSON object')
    .action(applyCommand);

  p.command('info')
    .description('show a package header and chunk table')
    .argument('<PATCH>', 'package')
    .option('--json', 'print one JSON object')
    .action(infoCommand);

  const powercut = p
    .command('powercut')
    .description('simulate the boot-side restore of PATCH on flash, cutting power at every operation (or a sample)')
    .argument('<OLD>', 'old firmware image')
    .argument('<PATCH>', 'package');
  addFlashOptions(powercut)
    .option('--sample <n>', 'cut a seeded random sample of n operations instead of all')
    .option('--seed <s>', 'seed for sampling and torn writes', '1')
    .option('--tear <mode>', 'what a cut operation leaves: random, prefix, bits or none', 'random')
    .option('--json', 'print one JSON object')
    .action(async (oldPath: string, patchPath: string, o) => {
      if (!(await powercutCommand(oldPath, patchPath, o))) failedStatus = true;
    });

  p.command('restore')
    .description("run one boot of a simulated device's bootloader on DIR (see `otadiff flash`): resume or start the restore")
    .argument('<DIR>', 'device flash directory (flash.bin + layout.json)')
    .option('-o, --output <FILE>', 'write the image of the slot it boots')
    .option('--pubkey <PUB>', "the bootloader's trusted public key (PEM): unsigned or wrongly signed packages are refused; repeat for several", collect)
    .option('--json', 'print the boot outcome as JSON')
    .action(async (dir: string, o) => {
      if (!(await flash()).restoreCommand(dir, o)) failedStatus = true;
    });

  const flashCmd = p.command('flash').description('a simulated device flash in a directory, for scripts and the Linux-host device');
  const init = flashCmd
    .command('init')
    .description('create DIR with an erased flash and IMAGE in slot A')
    .argument('<DIR>', 'directory to create')
    .requiredOption('--image <FILE>', 'the running firmware image')
    .option('--ab', 'two application slots (A/B) instead of one (in place)')
    .option('--app-size <size>', 'size of an application slot (default: twice the image, at least 64K)')
    .option('--ota-size <size>', 'size of the OTA download partition (default: the slot size)')
    .option('--split-size <size>', 'largest split size of in-place packages (sizes the default backup ring)', '64K');
  addFlashOptions(init).action(async (dir: string, o) => (await flash()).flashInitCommand(dir, o));
  flashCmd
    .command('profiles')
    .description('list the flash profiles --flash accepts, with their sector maps and datasheet figures')
    .option('--json', 'print one JSON object')
    .action(async (o) => (await flash()).flashProfilesCommand(o));
  flashCmd
    .command('stage')
    .description("store PATCH in DIR's OTA partition and write the hand-over record, as the OTA service's set_boot does")
    .argument('<DIR>', 'device flash directory')
    .argument('<PATCH>', 'package: a diff, or a raw package from `otadiff pack` (OTA_RAW)')
    .option('--raw', 'insist that PATCH is a raw package (OTA_RAW)')
    .action(async (dir: string, patch: string, o) => (await flash()).flashStageCommand(dir, patch, o));
  flashCmd
    .command('confirm')
    .description('the application confirms a good boot (no rollback)')
    .argument('<DIR>', 'device flash directory')
    .option('--slot <slot>', 'slot that booted (default: the update target)')
    .action(async (dir: string, o) => (await flash()).flashConfirmCommand(dir, o));

  registerOtaCommands(p);
  return p;
}

/** Runs the CLI; returns the exit status. Every failure is one `error: …` line on stderr and status 1. */
export async function main(argv: string[]): Promise<number> {
  try {
    failedStatus = false;
    await program().parseAsync(argv);
    return failedStatus ? 1 : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit 0; commander has already printed its own `error: …` line otherwise.
      return e.exitCode === 0 ? 0 : 1;
    }
    // Rejections of bad input (CliError, PackageError, GenerateError, …) and unexpected failures alike are
    // one line; OTADIFF_DEBUG=1 adds the stack for a bug report.
    process.stderr.write(`error: ${(e as Error)?.message ?? String(e)}\n`);
    if (process.env.OTADIFF_DEBUG && !(e instanceof CliError)) process.stderr.write(`${(e as Error)?.stack}\n`);
    return 1;
  }
}
