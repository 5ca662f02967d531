// A throwaway registry for tests that must not disturb the shared loopback
// one: Debian's docker-registry on a free loopback port, storage in a temp dir.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from './proc.js';

export interface ScratchRegistry {
  /** 127.0.0.1:PORT */
  host: string;
  /** Stops it (idempotent) and removes its storage. */
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startScratchRegistry(): Promise<ScratchRegistry> {
  const dir = await mkdtemp(path.join(tmpdir(), 'stowage-e2e-registry-'));
  const port = await freePort();
  const config = path.join(dir, 'config.yml');
  await writeFile(
    config,
    ['version: 0.1', 'log:', '  level: warn', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:', `    rootdirectory: ${path.join(dir, 'data')}`, 'http:', `  addr: 127.0.0.1:${port}`, '  secret: stowage-e2e', ''].join('\n'),
  );
  let out = '';
  const child = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 100 && child.exitCode === null; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/v2/`);
      await r.arrayBuffer();
      if (r.status === 200) return { host: `127.0.0.1:${port}`, stop };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`docker-registry did not start:\n${out}`);
}

/** `skopeo copy --all` from one registry to another (plain HTTP both sides). */
export async function copyImage(from: string, to: string): Promise<void> {
  const r = await run(['skopeo', 'copy', '--quiet', '--all', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${from}`, `docker://${to}`], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`skopeo copy ${from} ${to} failed (${r.code}):\n${r.stderr}`);
}
