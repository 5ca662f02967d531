/**
 * Cleanups to run when the build is interrupted: kill and delete a running
 * container, release mounts. Each registrant gets a function to unregister
 * itself once its resource is gone.
 *
 * What interrupts: SIGINT (exit 130), SIGTERM (143), SIGHUP (129); EOF on
 * the socket from the process that started this one in its namespace
 * (`watchLauncher`: that process died, even by SIGKILL; handled as SIGTERM);
 * stdout or stderr failing (a terminal hung up, EIO: as SIGHUP; a reader
 * gone, EPIPE: 141). Whichever comes first decides the exit code; anything
 * after it is ignored, so a second Ctrl-C cannot cut the cleanups short.
 */
import { Socket } from 'node:net';
import { isatty } from 'node:tty';

type Cleanup = () => Promise<void>;

/**
 * Set by `runInUserNamespace` in the re-executed child: the fd of a socket
 * whose other end only the parent holds. It ends (EOF) when the parent
 * exits, however it exits.
 */
export const LAUNCHER_FD_ENV = 'STOWAGE_LAUNCHER_FD';

const SIGNAL_EXIT: ReadonlyArray<readonly [NodeJS.Signals, number]> = [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]];
/** A cleanup that hangs must not keep the process (and its exit code) hostage. */
const HARD_CAP_MS = 30_000;

/** Which of stdin, stdout and stderr were terminals when this process started. */
const startedOnTerminal = [0, 1, 2].map((fd) => isatty(fd));

const cleanups = new Set<Cleanup>();
let installed = false;
let interrupted: { done: Promise<void>; exitCode: number } | undefined;
let notice = (line: string): void => {
  process.stderr.write(`\n${line}\n`);
};

/** Where the "interrupted" line goes: the CLI routes it through its progress output (e.g. as a JSON event). */
export function setInterruptNotice(write: (line: string) => void): void {
  notice = write;
}

/**
 * Set once the build was interrupted: `done` settles when the cleanups have
 * run, right before the process exits with `exitCode`. The build fails at
 * the same time (its container was killed) and must not exit first, which
 * would cut the cleanups short.
 */
export function interruption(): { done: Promise<void>; exitCode: number } | undefined {
  return interrupted;
}

/**
 * Exits with `code`, unless the build was interrupted: then the interrupt
 * exits, with 130/143/129, once its cleanups are done. (The build, whose
 * container the handler killed, usually fails meanwhile with exit 1.)
 */
export function exitUnlessInterrupted(code: number): void {
  if (!interrupted) exitProcess(code);
}

/** True when a terminal this process started on has hung up (closed window, lost ssh session). */
export function terminalHungUp(): boolean {
  // isatty() asks the terminal for its modes: a hung-up one answers EIO.
  return startedOnTerminal.some((tty, fd) => tty && !isatty(fd));
}

/**
 * process.exit(code); but when a terminal on stdio has hung up, dies of
 * SIGHUP instead, which a shell shows as 129 too. Node 20 restores the
 * terminal's modes at exit and aborts when that fails with EIO
 * (nodejs/node#51519, fixed in later releases): the status would say SIGABRT,
 * with a core dump where they are enabled.
 */
export function exitProcess(code: number): never {
  if (terminalHungUp()) {
    process.removeAllListeners('SIGHUP');
    process.kill(process.pid, 'SIGHUP');
  }
  return process.exit(code);
}

export function onInterrupt(cleanup: Cleanup): () => void {
  install();
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

/**
 * Runs the cleanups and exits with `exitCode`; `why` is told once. Only the
 * first call acts: the terminal, the launching process and a CI runner may
 * all signal the same stop, and a repeated signal during the cleanups used to
 * have its default action (the handlers were `once`) and kill the process
 * with a container still running.
 */
export function interrupt(why: string, exitCode: number): void {
  if (interrupted) return;
  const done = runAll();
  interrupted = { done, exitCode };
  // After `interrupted` is set: a notice to a dead terminal fails, and that failure must find the interrupt under way.
  try {
    notice(`interrupted (${why}): cleaning up`);
  } catch {
    // The output is gone (see install): the cleanups matter, not the line.
  }
  setTimeout(() => exitProcess(exitCode), HARD_CAP_MS);
  void done.finally(() => exitProcess(exitCode));
}

/**
 * In the child `runInUserNamespace` started: interrupts (as SIGTERM) when the
 * parent is gone. The parent forwards signals, but a SIGKILL or a crash of
 * the parent forwards nothing, and this child runs in a session of its own
 * (no terminal signal reaches it), so without this the build would run on,
 * unseen, to its end. Nothing else inherits the fd: Node marks the fds it
 * starts with close-on-exec (libuv's uv_disable_stdio_inheritance), and every
 * child (runc, the RUN container) gets only the stdio it is given.
 */
export function watchLauncher(): void {
  const raw = process.env[LAUNCHER_FD_ENV];
  if (raw === undefined) return;
  // Not for this process's own children (a nested stowage, a RUN): the fd is this process's alone.
  delete process.env[LAUNCHER_FD_ENV];
  const fd = Number(raw);
  if (!Number.isInteger(fd) || fd < 3) return;
  let socket: Socket;
  try {
    socket = new Socket({ fd, readable: true, writable: false });
  } catch {
    // Not an open socket: no parent to watch (started by hand with the variable set).
    return;
  }
  const gone = () => interrupt('the stowage process that started this build exited', 143);
  socket.on('end', gone);
  socket.on('error', gone);
  socket.on('close', gone);
  socket.resume();
  // Watching must not keep a finished build alive.
  socket.unref();
}

/** Newest first, one at a time: a container must be gone before the scratch space it runs from. */
async function runAll(): Promise<void> {
  const pending = [...cleanups].reverse();
  cleanups.clear();
  for (const cleanup of pending) await cleanup().catch(() => undefined);
}

function install(): void {
  if (installed) return;
  installed = true;
  // `on`, never `once`: a repeated signal must find a handler (which ignores it), not the default action.
  for (const [signal, code] of SIGNAL_EXIT) process.on(signal, () => interrupt(signal, code));
  // A write to a terminal that hung up fails with EIO, emitted as an 'error' that,
  // unhandled, kills the process mid-build or mid-cleanup with a container running.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') interrupt('output closed: EPIPE', 141);
      else interrupt(`output failed: ${err.code ?? err.message}`, 129);
    });
  }
}
