import { Option, type Command } from 'commander';

// Command modules load when their command runs: ota-core pulls in MQTT, CoAP (which opens
// UDP sockets on import) and the diff generator, which `otadiff diff` does not need.
const serveModule = () => import('./serve.js');
const adminModule = () => import('./serve-admin.js');
const DEFAULT_DATA_DIR = 'otadiff-data';

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

/** `serve --data DIR add-device …` or `serve add-device --data DIR …`. */
const dataOf = (opts: { data?: string }, cmd: Command): string | undefined => opts.data ?? (cmd.parent?.opts() as { data?: string } | undefined)?.data;
const DATA_HELP = `data directory (default ${DEFAULT_DATA_DIR}, or serve's --data)`;
/** `--db` of the subcommand, else of `serve`, else $OTADIFF_DB. */
const dbOf = (opts: { db?: string }, cmd: Command): string | undefined => opts.db ?? (cmd.parent?.opts() as { db?: string } | undefined)?.db ?? (process.env.OTADIFF_DB || undefined);
const DB_HELP = "PostgreSQL database postgres://user:pass@host/db (default: the SQLite file DATA/otadiff.db; or $OTADIFF_DB, serve's --db)";
const where = (opts: { data?: string; db?: string }, cmd: Command) => ({ data: dataOf(opts, cmd), db: dbOf(opts, cmd) });

/** `otadiff serve`, `otadiff device`, `otadiff demo` (the OTA service). */
export function registerOtaCommands(program: Command): void {
  // `device --version V` and `serve add-firmware --version V` take a firmware version: program
  // options (the tool's own --version) are only recognised before the command name.
  program.enablePositionalOptions();
  const serve = program
    .command('serve')
    .description('run the OTA cloud: MQTT broker, file server with signed URLs, upgrade jobs with diffs made on demand')
    .option('--data <DIR>', 'data directory: firmware and package files, and (without --db) the SQLite database otadiff.db', DEFAULT_DATA_DIR)
    .option('--db <URL>', 'PostgreSQL database (postgres://user:pass@host/db; default $OTADIFF_DB, else SQLite in --data): several serve processes can share it')
    .option('--host <ADDR>', 'interface the broker and the file server listen on', '127.0.0.1')
    .option('--port <N>', 'MQTT port of the embedded broker (0 = any free port)', '1883')
    .option('--http-port <N>', 'file server port (0 = any free port)', '8080')
    .option('--public-host <HOST>', 'host name put in download URLs (default: --host)')
    .option('--broker <URL>', 'use this MQTT broker instead of the embedded one (mqtt://USER@host:port; its authentication is its own)')
    .option('--broker-password-file <FILE>', "the cloud's password at --broker (default $OTADIFF_BROKER_PASSWORD; never in the URL, which the process list shows)")
    .option('--mqtt-tls-port <N>', 'the embedded broker also speaks MQTT over TLS here, with --tls-key and --tls-cert (devices: mqtts://, securemode=2)')
    .option('--sign-key <KEY>', 'private key (PEM, from `otadiff keygen`) that signs every package the cloud makes, diffs and full images alike; devices verify it with `device --pubkey`')
    .option('--signing-key <PEM>', 'RSA private key: notices carry a digestsign devices verify (AliOS-style, the notice only)')
    .option('--url-ttl <SECONDS>', 'lifetime of a signed download URL (bound to its device and job): whole seconds from 60 to 604800 (7 days)', '900')
    .option('--coap-port <N>', 'CoAP port: notices for CoAP devices and block-wise downloads (0 = any free port)', '5683')
    .addOption(new Option('--download-protocol <p>', 'how notices tell devices to download (a job may override it)').choices(['http', 'coap']).default('http'))
    .option('--tls-key <PEM>', 'serve downloads over HTTPS with this private key (with --tls-cert)')
    .option('--tls-cert <PEM>', 'certificate for --tls-key')
    .option('--push-rate <N>', 'upgrade notices this process sends per second at most (a rollout drains at this rate)', '200')
    .option('--notice-timeout <SECONDS>', 'a notice without any answer is sent again after this long (3 notices at most)', '300')
    .option('--public-url <URL>', 'base of download URLs (a load balancer in front of several serve processes), instead of this file server')
    .option('--worker-id <ID>', "this process's name among the workers sharing the database (default: generated)")
    .option('--api-port <N>', 'serve the management API (/api/v1, bearer tokens from serve add-operator) and the console (/) on this port')
    .option('--api-host <ADDR>', 'interface of the API and console (default: --host)')
    .option('--quiet', 'log warnings and worker events only, not every message and push')
    .addHelpText(
      'after',
      `
A typical session (each subcommand is one database transaction; a running server picks it up):
  otadiff keygen -o fw-key
  otadiff serve add-product  --product-key a1Demo --mode inplace
  otadiff serve add-device   --product-key a1Demo --device-name meter-0001
  otadiff serve add-firmware --product-key a1Demo --version 1.0.0 v1.bin
  otadiff serve add-firmware --product-key a1Demo --version 1.1.0 --security-counter 1 v1.1.bin
  otadiff serve --port 1883 --http-port 8080 --sign-key fw-key &
  otadiff device --product-key a1Demo --device-name meter-0001 --device-secret … \\
                 --flash ./meter-flash --image v1.bin --version 1.0.0 --pubkey fw-key.pub &
  otadiff serve job --product-key a1Demo --version 1.1.0
  otadiff serve status
A device informing an older version than its job's target gets a diff from its
installed version (generated once and cached), or the full image as a raw (OTA_RAW)
package when the store lacks that version or the product ships full images (--mode
full). With --sign-key every package is signed, with the target's version and
security counter in the signed header; a device with --pubkey refuses anything else,
and anything below the security counter it has recorded.
Several workers: run serve with the same --db postgres://… and --broker (an MQTT 5
broker such as mosquitto 2); they share the devices' messages ($share subscriptions)
and the push queue, and one takes over the broker session of another that dies.`,
    )
    .action(async (opts) => (await serveModule()).serveCommand(opts));

  serve
    .command('add-product')
    .description('register a product and how its updates are packaged')
    .requiredOption('--product-key <PK>', 'product key (letters and digits)')
    .option('--product-secret <S>', 'product secret (default: generated)')
    .addOption(new Option('--mode <mode>', 'inplace / ab: diffs for that restore mode; full: whole images').choices(['inplace', 'ab', 'full']).default('inplace'))
    .option('--split-size <size>', 'chunk size of diffs (the device backup area must hold one)', '64K')
    .option('--dict-size <size>', 'LZMA dictionary of diffs', '16K')
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object')
    .action(async (opts, cmd: Command) => (await serveModule()).addProductCommand({ ...opts, ...where(opts, cmd) }));

  serve
    .command('add-device')
    .description('register a device; prints its secret')
    .requiredOption('--product-key <PK>', 'product key')
    .requiredOption('--device-name <DN>', 'device name (4-32 of letters, digits, _@.:-)')
    .option('--device-secret <S>', 'device secret (default: generated)')
    .option('--tag <TAG>', 'a tag for rollouts to target (repeatable)', collect, [])
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object')
    .action(async (opts, cmd: Command) => (await serveModule()).addDeviceCommand({ ...opts, ...where(opts, cmd) }));

  serve
    .command('add-firmware')
    .description("add a firmware version to a product's store (versions are immutable)")
    .argument('<FILE>', 'firmware image')
    .requiredOption('--product-key <PK>', 'product key')
    .requiredOption('--version <V>', 'its version, e.g. 1.2.0 (at most 32 characters: it is signed into its packages)')
    .option('--security-counter <n>', "anti-rollback counter signed into its packages; devices refuse packages below the one they recorded (default: the highest of the product's older versions)")
    .option('--allow-downgrade', 'a rollback target: devices on newer versions may be brought back to it (never below the security counter they recorded)')
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object')
    .action(async (file: string, opts, cmd: Command) => (await serveModule()).addFirmwareCommand(file, { ...opts, ...where(opts, cmd) }));

  serve
    .command('job')
    .description('create an upgrade job: devices running an older version get VERSION')
    .requiredOption('--product-key <PK>', 'product key')
    .requiredOption('--version <V>', 'target version (must be in the store)')
    .option('--device-name <DN>', 'only this device (repeatable; default all devices of the product)', collect, [])
    .addOption(new Option('--download-protocol <p>', 'download protocol for this job (default: the server\'s)').choices(['http', 'coap']))
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object')
    .action(async (opts, cmd: Command) => (await serveModule()).jobCommand({ ...opts, ...where(opts, cmd) }));

  // `serve rollout create`: --data and --db of the subcommand, else of `serve` (two levels up).
  const w = <T extends { data?: string; db?: string }>(opts: T, cmd: Command): T => ({ ...opts, ...where(opts, cmd.parent?.name() === "serve" ? cmd : cmd.parent!) });
  const rollout = serve.command('rollout').description('staged rollouts: waves, a success threshold, an automatic stop on failures, pause, resume, cancel');
  rollout
    .command('create')
    .description('roll VERSION out in waves; the first wave is released at once (a running server pushes it)')
    .requiredOption('--product-key <PK>', 'product key')
    .requiredOption('--version <V>', 'target version (in the store; an older one added with --allow-downgrade rolls devices back)')
    .option('--groups <TAG...>', 'only devices carrying any of these tags (default all devices of the product, also those added later)')
    .option('--waves <LIST>', 'cumulative waves: 1%,10%,50%,100% or device counts 10,100,1000 (a last wave below everything gets a 100% one after it)', '100%')
    .option('--success-threshold <P>', "share of a wave that must succeed before the next starts", '95%')
    .option('--max-failures <N>', 'failures in one wave (a count, or a percentage of the wave) beyond which the rollout pauses itself (default: 100% minus the success threshold)')
    .option('--timeout <T>', 'a released device that neither succeeds nor fails within this (90s, 30m, 2h) counts as failed (default: none)')
    .option('--retries <N>', 'try a failed device again this many times (0 to 10) before it counts', '0')
    .addOption(new Option('--download-protocol <p>', "download protocol for this rollout (default: the server's)").choices(['http', 'coap']))
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object (the rollout, its policy and waves)')
    .action(async (opts, cmd: Command) => (await adminModule()).rolloutCreateCommand(w(opts, cmd)));
  rollout
    .command('list')
    .description('rollouts, newest first')
    .option('--product-key <PK>', 'only this product')
    .addOption(new Option('--state <S>', 'only rollouts in this state').choices(['running', 'paused', 'completed', 'cancelled']))
    .option('--limit <N>', 'at most this many', '50')
    .option('--before <ID>', 'rollouts older than this one (the "more" hint of the previous page; `next` with --json)')
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object')
    .action(async (opts, cmd: Command) => (await adminModule()).rolloutListCommand(w(opts, cmd)));
  rollout
    .command('show')
    .description('a rollout: its policy, each wave with its devices updated, failed, skipped, in progress, and why it paused')
    .argument('<ID>', 'rollout id')
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object')
    .action(async (id: string, opts, cmd: Command) => (await adminModule()).rolloutShowCommand(id, w(opts, cmd)));
  for (const [action, what] of [
    ['pause', 'send nothing new (devices already told go on); the released devices not yet told are held back'],
    ['resume', 'go on: the failures so far are accepted, and the wave may end below its success threshold'],
    ['cancel', 'stop at once: nothing more is sent, devices downloading are told to stop, a device mid-restore finishes'],
  ] as const) {
    const c = rollout
      .command(action)
      .description(what)
      .argument('<ID>', 'rollout id')
      .option('--data <DIR>', DATA_HELP)
      .option('--db <URL>', DB_HELP)
      .option('--json', 'print one JSON object');
    if (action === 'pause') c.option('--reason <TEXT>', 'why (kept with the rollout and in the audit log)');
    c.action(async (id: string, opts, cmd: Command) => (await adminModule()).rolloutActionCommand(action, id, w(opts, cmd)));
  }

  const device = serve.command('device').description("a registered device's tags and history");
  device
    .command('tag')
    .description('add and remove tags of a device (rollouts target tags)')
    .requiredOption('--product-key <PK>', 'product key')
    .requiredOption('--device-name <DN>', 'device name')
    .option('--add <TAG>', 'add this tag (repeatable)', collect, [])
    .option('--remove <TAG>', 'remove this tag (repeatable)', collect, [])
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object')
    .action(async (opts, cmd: Command) => (await adminModule()).deviceTagCommand(w(opts, cmd)));
  device
    .command('history')
    .description('every job and rollout the device took part in, with each state change and its time')
    .requiredOption('--product-key <PK>', 'product key')
    .requiredOption('--device-name <DN>', 'device name')
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object')
    .action(async (opts, cmd: Command) => (await adminModule()).deviceHistoryCommand(w(opts, cmd)));

  serve
    .command('remove-device')
    .description('remove a device: its sign-in stops working and running servers end its live sessions')
    .requiredOption('--product-key <PK>', 'product key')
    .requiredOption('--device-name <DN>', 'device name')
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object')
    .action(async (opts, cmd: Command) => (await adminModule()).removeDeviceCommand({ ...opts, ...where(opts, cmd) }));
  serve
    .command('rotate-secret')
    .description('give a device a new secret (printed once): the old one stops working and live sessions end')
    .requiredOption('--product-key <PK>', 'product key')
    .requiredOption('--device-name <DN>', 'device name')
    .option('--device-secret <S>', 'the new secret (default: generated)')
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object {"productKey","deviceName","deviceSecret"}')
    .action(async (opts, cmd: Command) => (await adminModule()).rotateSecretCommand({ ...opts, ...where(opts, cmd) }));
  serve
    .command('add-operator')
    .description('add an operator of the management API and console; prints its bearer token once (only a hash is kept)')
    .requiredOption('--name <N>', 'operator name (1-64 of letters, digits, _ . @ -)')
    .addOption(new Option('--role <R>', 'viewer: reads; operator: also runs rollouts and jobs; admin: also manages products, firmware, devices and operators').choices(['viewer', 'operator', 'admin']).makeOptionMandatory())
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object {"name","role","token"}')
    .action(async (opts, cmd: Command) => (await adminModule()).addOperatorCommand({ ...opts, ...where(opts, cmd) }));
  serve
    .command('remove-operator')
    .description('remove an operator: its token stops working')
    .requiredOption('--name <N>', 'operator name')
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object')
    .action(async (opts, cmd: Command) => (await adminModule()).removeOperatorCommand({ ...opts, ...where(opts, cmd) }));
  serve
    .command('operators')
    .description('the operators of the management API, with their roles')
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object')
    .action(async (opts, cmd: Command) => (await adminModule()).operatorsCommand({ ...opts, ...where(opts, cmd) }));
  serve
    .command('audit')
    .description('the audit log, newest first: who changed what, when (CLI and API alike)')
    .option('--limit <N>', 'at most this many entries', '50')
    .option('--before <ID>', 'entries older than this one (the "older" hint of the previous page)')
    .option('--target <T>', 'only changes of this target (a rollout id, PK/DN, an operator)')
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object')
    .action(async (opts, cmd: Command) => (await adminModule()).auditCommand({ ...opts, ...where(opts, cmd) }));

  serve
    .command('status')
    .description('products, jobs, and each device: version and job progress')
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object')
    .action(async (opts, cmd: Command) => (await serveModule()).statusCommand({ ...opts, ...where(opts, cmd) }));

  serve
    .command('migrate-from')
    .description('import a data directory of the JSON format (otadiff before the database) into an empty database')
    .argument('<DIR>', 'the JSON data directory (registry.json, products.json, files/fw, jobs, status.json)')
    .option('--data <DIR>', DATA_HELP)
    .option('--db <URL>', DB_HELP)
    .option('--json', 'print one JSON object')
    .action(async (dir: string, opts, cmd: Command) => (await serveModule()).migrateFromCommand(dir, { ...opts, ...where(opts, cmd) }));

  program
    .command('device')
    .description('run a device on this host: flash partitions in files under --flash DIR, OTA over MQTT + HTTP(S)/CoAP')
    .option('--product-key <PK>', 'product key (default: the device config)')
    .option('--product-secret <S>', 'product secret (kept for one-type-one-secret provisioning)')
    .option('--device-name <DN>', 'device name (default: the device config)')
    .option('--device-secret <S>', 'device secret (default: the device config)')
    .option('--config <FILE>', 'device config JSON (default $OTADIFF_DEVICE_CONFIG or ~/.otadiff/device.json)')
    .option('--flash <DIR>', 'device flash directory (flash.bin, layout.json, device.json)')
    .option('--broker <URL>', 'MQTT broker', undefined)
    .option('--version <V>', 'version of --image (needed to create the flash)')
    .option('--image <FILE>', 'factory image for slot A when --flash does not exist yet')
    .option('--ab', 'create the flash with two slots (A/B) instead of one (in place)')
    .option('--slot-size <size>', 'slot size when creating the flash (default twice the image)')
    .option('--split-size <size>', 'backup area (largest diff chunk) when creating the flash', '64K')
    .option('--pubkey <PUB>', 'public key (PEM) that signs packages: the service and the bootloader refuse unsigned or wrongly signed ones; repeat for several (a file may hold several)', collect)
    .option('--public-key <PEM>', 'RSA public key: notices must carry a digestsign that verifies (AliOS-style, the notice only)')
    .option('--ca <PEM>', 'extra CA certificate(s) for https downloads')
    .addOption(new Option('--protocol <p>', 'download protocol').choices(['http', 'https', 'coap']).default('http'))
    .addOption(new Option('--transport <t>', 'how notices reach the device (--broker is then the cloud\'s coap:// URL)').choices(['mqtt', 'coap']).default('mqtt'))
    .addOption(new Option('--sign-method <m>', 'MQTT sign-in HMAC').choices(['hmacsha256', 'hmacsha1', 'hmacmd5']).default('hmacsha256'))
    .option('--once', 'exit after one update (status 0 on success, 1 on failure)')
    .option('--json', 'print events as JSON lines')
    .addHelpText(
      'after',
      "\nThe broker defaults to the config's, else mqtt://127.0.0.1:1883. Without --pubkey, the device config's trustedKeys apply (when a config is used: --config, or no identity flags). Ctrl-C stops the device; its download checkpoint stays in --flash.",
    )
    .action(async (opts) => (await import('./device.js')).deviceCommand(opts));

  program
    .command('demo')
    .description('the whole update on loopback: cloud + device, a signed diff through a dropped download and a power cut in the restore')
    .option('--old <FILE>', 'old image (default: the vendored corpus/esp8266-at/at-v3.0.4.bin)')
    .option('--new <FILE>', 'new image (default: corpus/esp8266-at/at-v3.0.5.bin)')
    .option('--old-version <V>', 'version of OLD (default: from its file name)')
    .option('--new-version <V>', 'version of NEW (default: from its file name)')
    .addOption(new Option('--mode <mode>', 'restore mode').choices(['inplace', 'ab']).default('inplace'))
    .option('--split-size <size>', 'chunk size of the diff', '64K')
    .option('--no-drop', 'do not cut the download connection')
    .option('--no-power-cut', 'do not cut the power during the restore')
    .option('--keep <DIR>', 'work in DIR and keep it (cloud data + device flash)')
    .option('--json', 'print one JSON summary')
    .action(async (opts) => (await import('./demo.js')).demoCommand(opts));
}
