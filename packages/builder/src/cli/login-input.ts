/**
 * What `stowage login` / `logout` need from the command line and the
 * terminal: the registry argument as docker reads it, and the password from
 * stdin or a prompt that does not echo it.
 */
import { configKeyToHost } from '@stowage/registry-client';
import { InvalidOptionError } from '../errors.js';

const HUB_NAMES = ['docker.io', 'index.docker.io', 'registry-1.docker.io'];
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$/;

/**
 * The registry a login is for, as references name it: no argument (or any of
 * Docker Hub's names, or `https://index.docker.io/v1/`) is 'docker.io'; a URL
 * loses its scheme and path, as docker's ConvertToHostname does.
 */
export function loginRegistry(arg: string | undefined): string {
  const raw = (arg ?? '').trim();
  if (raw === '') return 'docker.io';
  const host = configKeyToHost(raw);
  if (HUB_NAMES.includes(host.toLowerCase())) return 'docker.io';
  if (!HOST_PORT.test(host)) throw new InvalidOptionError(`"${raw.slice(0, 100)}" is not a registry (HOST[:PORT] or https://HOST[:PORT])`);
  return host;
}

/** `--password-stdin`: everything on stdin, less one trailing newline (docker strips "\n", then "\r"). */
export function passwordFromStdinText(text: string): string {
  let p = text;
  if (p.endsWith('\n')) p = p.slice(0, -1);
  if (p.endsWith('\r')) p = p.slice(0, -1);
  return p;
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Reads one line from a TTY. With `hidden`, the terminal is put in raw mode
 * so typed characters are not echoed (backspace and Ctrl-U edit, Ctrl-C
 * aborts); the prompt goes to `out` (stderr, so stdout stays clean).
 */
export function promptLine(input: NodeJS.ReadStream, out: NodeJS.WritableStream, prompt: string, hidden: boolean): Promise<string> {
  out.write(prompt);
  return new Promise((resolve, reject) => {
    let line = '';
    const wasRaw = input.isRaw;
    if (hidden) input.setRawMode(true);
    input.setEncoding('utf8');
    input.resume();
    const finish = (err?: Error): void => {
      input.off('data', onData);
      if (hidden) {
        input.setRawMode(wasRaw);
        out.write('\n');
      }
      input.pause();
      if (err !== undefined) reject(err);
      else resolve(line);
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return finish();
        if (ch === '\u0003') return finish(new InvalidOptionError('login cancelled'));
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else if (ch === '\u0015') line = '';
        else line += ch;
      }
    };
    input.on('data', onData);
  });
}
