// The commands. Each command module keeps its heavy imports (engine,
// registry client, snapshotter) behind a dynamic import() in its handler,
// so that `stowage --help` loads yargs and this list only.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { exitUnlessInterrupted, watchLauncher } from '../interrupt.js';
import { formatError } from './format-error.js';
import { PROGRESS_MODES, PROGRESS_HELP } from './progress/select.js';
import { loginCommand, logoutCommand } from './auth-commands.js';
import { inspectCommand } from './inspect-command.js';
import { pruneCommand } from './prune-command.js';
import { pullCommand } from './pull-command.js';
import { pushCommand } from './push-command.js';
import { runCommand } from './run-command.js';
import { VERSION_LINE } from './version-info.js';
import { versionCommand } from './version-command.js';

async function main(argv: string[]): Promise<number> {
  await yargs(argv)
    .scriptName('stowage')
    // `--no-cache` and `--no-cache-filter` are flags of their own, as in docker build, not negations.
    .parserConfiguration({ 'boolean-negation': false })
    .usage('$0 <command> [options]\n\nDaemonless, rootless container image builder for Dockerfiles.')
    .command(
      'build [context]',
      'Build an image from a Dockerfile',
      (y) => y
        .positional('context', { type: 'string', default: '.', describe: 'Build context directory' })
        .option('file', { alias: 'f', type: 'string', describe: 'Dockerfile path (default: CONTEXT/Dockerfile)' })
        .option('tag', { alias: 't', type: 'string', array: true, nargs: 1, default: [] as string[], describe: 'Name and tag for the image (repeatable)' })
        .option('target', { type: 'string', describe: 'Build the named stage and stop there' })
        .option('build-arg', { type: 'string', array: true, nargs: 1, default: [] as string[], describe: 'Build-time variable K=V (repeatable)' })
        .option('output', {
          alias: 'o',
          type: 'string',
          array: true,
          nargs: 1,
          default: [] as string[],
          describe:
            'Output (repeatable): type=oci,dest=FILE (OCI layout tar; also dest=FILE or FILE) | ' +
            'type=docker,dest=FILE (for docker load / podman load) | type=local,dest=DIR[,preserve-special=true] (the root filesystem; DIR must be new or empty; ' +
            'setuid/setgid bits of files are dropped unless preserve-special=true, since the files are yours, not root\'s) | ' +
            'type=tar,dest=FILE (the root filesystem as one tar) | type=registry[,name=REF] (push; without name=, to the -t names). ' +
            'oci, docker and registry take name=NAME (repeatable) instead of the -t tags. ' +
            'Pushes happen after every file output is written; a failed push exits non-zero and leaves the file outputs in place. ' +
            'Owners in DIR: the image\'s, mapped through your /etc/subuid range (image root = you); files that cannot be chowned ' +
            '(no range) stay owned by you. type=tar keeps the image\'s owners',
        })
        .option('push', {
          type: 'boolean',
          default: false,
          describe:
            'Push the image to the registry of each -t name (shorthand for -o type=registry). Blobs the registry has are skipped, ' +
            'base layers mounted from the base image\'s repository on the same registry (and every blob from a name pushed before); credentials from Docker\'s config.json. ' +
            'Runs after the file outputs are written; a failed push exits non-zero and leaves them in place. --registry-mirror never applies',
        })
        .option('iidfile', { type: 'string', describe: 'Write the image ID (sha256:… of the config) to FILE' })
        .option('metadata-file', { type: 'string', describe: 'Write build metadata as JSON to FILE (containerimage.digest, …, as buildx)' })
        .option('platform', { type: 'string', describe: 'Target platform os/arch[/variant] (default: this host)' })
        .option('registry-mirror', { type: 'string', array: true, nargs: 1, default: [] as string[], describe: 'Mirror for a registry, REGISTRY=HOST[:PORT] (repeatable)' })
        .option('insecure-registry', { type: 'string', array: true, nargs: 1, default: [] as string[], describe: 'Reach HOST[:PORT] over plain HTTP, for pulls and pushes (repeatable; loopback always is)' })
        .option('secret', {
          type: 'string',
          array: true,
          nargs: 1,
          default: [] as string[],
          describe:
            'Secret for RUN --mount=type=secret (repeatable): id=ID,src=PATH (a file; also type=file) | id=ID,env=VAR (an environment ' +
            'variable; also type=env). id defaults to the file\'s base name or the variable\'s name. Values are staged in a tmpfs and never ' +
            'reach a layer, the image config, the build cache or the progress output',
        })
        .option('network', {
          choices: ['default', 'host', 'none'] as const,
          default: 'default' as const,
          describe: 'Network for RUN steps (RUN --network=default uses this). default: a network namespace of its own, outbound access through ' +
            'slirp4netns, no access to this machine\'s 127.0.0.1 (without slirp4netns or a usable /dev/net/tun: the host\'s, with a warning); ' +
            'host: this machine\'s network; none: loopback only',
        })
        .option('allow', {
          type: 'string',
          array: true,
          nargs: 1,
          choices: ['network.host', 'security.insecure'] as const,
          default: [] as ('network.host' | 'security.insecure')[],
          describe: 'Let the Dockerfile lift the sandbox (repeatable, buildx\'s entitlements): network.host for RUN --network=host and ADD of a loopback or link-local URL, ' +
            'security.insecure for RUN --security=insecure (every capability, no seccomp filter)',
        })
        .option('snapshotter', { choices: ['auto', 'overlay', 'native'] as const, default: 'auto' as const, describe: 'Snapshot backend' })
        .option('no-cache', { type: 'boolean', default: false, describe: 'Run every step; results of earlier builds on this --root are not reused (new results are still recorded)' })
        .option('no-cache-filter', { type: 'string', array: true, nargs: 1, default: [] as string[], describe: 'Run every step of this stage (name or index) without the build cache (repeatable)' })
        .option('root', { type: 'string', describe: 'State directory (default: $XDG_DATA_HOME/stowage or ~/.local/share/stowage)' })
        .option('progress', { choices: PROGRESS_MODES, default: 'auto' as const, describe: PROGRESS_HELP })
        .option('debug', { type: 'boolean', default: false, describe: 'Print stack traces on error' })
        .example('$0 build -t hello -o type=oci,dest=hello.tar .', 'Build ./Dockerfile into an OCI image tarball')
        .example('$0 build --target build -o build.tar .', 'Build only up to the stage named "build"')
        .example('$0 build -t app -o type=docker,dest=app.tar -o type=local,dest=rootfs .', 'A tar for docker load, and the root filesystem in ./rootfs')
        .example('$0 build -t registry.example.com/team/app:1 --push -o type=oci,dest=app.tar .', 'Write an OCI tar, then push the image')
        .example('$0 build --registry-mirror docker.io=127.0.0.1:5000 -o out.tar .', 'Pull Docker Hub images through a local mirror')
        .example('$0 build --secret id=npmrc,src=$HOME/.npmrc --secret id=token,env=API_TOKEN -o out.tar .', 'Secrets for RUN --mount=type=secret,id=npmrc and ,id=token,env=TOKEN')
        .epilogue('Environment: SOURCE_DATE_EPOCH (seconds) sets every time the build writes (default 1970). STOWAGE_LOCK_TIMEOUT (seconds, default 600): ' +
          'how long to wait for another build on the same --root that is downloading, unpacking or running the same thing, before doing it too. ' +
          'STOWAGE_REGISTRY_DEADLINE (seconds; default 5 min plus the size at 256 KiB/s, at most 6 h): the longest one registry request ' +
          '(a manifest, config or layer, retries included) may take, however steadily bytes arrive. ' +
          'STOWAGE_PIDS_LIMIT (default 4096, 0: none): processes a RUN step\'s user may have at once. STOWAGE_TMPFS_SIZE (default a quarter of ' +
          'the memory, at most 1g): size of a tmpfs without size= (RUN --mount=type=tmpfs, /tmp of an image without one).'),
      (args) =>
        runCommand(args.debug, async () =>
          (await import('./build-command.js')).runBuild({
            context: args.context ?? '.',
            file: args.file,
            tags: args.tag,
            target: args.target,
            buildArgs: args['build-arg'],
            outputs: args.output,
            platform: args.platform,
            mirrors: args['registry-mirror'],
            insecureRegistries: args['insecure-registry'],
            network: args.network,
            allow: args.allow,
            snapshotter: args.snapshotter,
            noCache: args['no-cache'],
            noCacheFilter: args['no-cache-filter'],
            root: args.root,
            iidfile: args.iidfile,
            metadataFile: args['metadata-file'],
            push: args.push,
            progress: args.progress,
            debug: args.debug,
            secrets: args.secret,
          }),
        ),
    )
    .command(loginCommand)
    .command(logoutCommand)
    .command(pullCommand)
    .command(pushCommand)
    .command(inspectCommand)
    .command(pruneCommand)
    .command(versionCommand)
    .demandCommand(1, 'give a command, e.g. stowage build .')
    .recommendCommands()
    .strict()
    .version(VERSION_LINE)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err;
      // yargs' recommendCommands says only "Did you mean build?": name what was not understood first.
      const typed = process.argv.slice(2).find((a) => !a.startsWith('-'));
      const text = /^Did you mean /.test(msg) && typed !== undefined ? `unknown command "${typed}" (did you mean ${msg.slice('Did you mean '.length).replace(/\?$/, '')}?)` : msg;
      process.stderr.write(`error: ${text}\nRun "stowage --help" for usage.\n`);
      process.exit(2);
    })
    .parseAsync();
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

// Re-executed in the build's namespace: stop (and clean up) when the process that started this one is gone.
watchLauncher();

main(hideBin(process.argv)).then(
  (code) => exitUnlessInterrupted(code),
  (err: unknown) => {
    process.stderr.write(`${formatError(err, process.argv.includes('--debug'))}\n`);
    exitUnlessInterrupted(1);
  },
);
