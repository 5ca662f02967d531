// Multi-stage Dockerfiles beyond the example, as a new user would write them:
// ARG before FROM, named/numbered/unnamed stages, --target, heredocs, COPY
// --from an image, config fields, whiteouts. Built by the unprivileged user
// from the loopback registry's busybox image, checked with skopeo and runc.
import path from 'node:path';
import { access } from 'node:fs/promises';
import { makeWorkDir, runImage, runStowage, skopeoInspect, testEnv, unpackOciTar, type WorkDir } from '../lib/index.js';

const T = 300_000;

const MULTI = `# escape=\\
ARG BASE=busybox
ARG GREETING=hi
FROM \${BASE} AS base
ARG GREETING
ENV APP_HOME=/opt/app \\
    GREETING_COPY=\${GREETING}
WORKDIR $APP_HOME
COPY files/ ./files/
COPY top.txt .
COPY top.txt files/a.txt .
RUN echo "$GREETING from $(id -u)" > greeting.txt

FROM base AS tools
RUN <<EOF
#!/bin/sh
set -e
echo "script ran in $(pwd) with $0" > /opt/app/script.txt
EOF
RUN cat > /opt/app/stdin.txt <<EOT
from stdin $APP_HOME
EOT

FROM busybox AS broken
RUN exit 7

FROM scratch
COPY --from=0 /opt/app/ /app/
COPY --from=tools /opt/app/script.txt /opt/app/stdin.txt /app/
COPY --from=busybox:latest /bin/busybox /bin/busybox
ENV PATH=/bin
USER 1000:1000
WORKDIR /app
LABEL org.example.stage="final" org.example.base=$BASE
EXPOSE 8080 53/udp
ENTRYPOINT ["/bin/busybox"]
CMD ["cat", "/app/greeting.txt"]
HEALTHCHECK --interval=30s --retries=2 CMD ["/bin/busybox", "true"]
`;

function mirror(): string[] {
  return ['--registry-mirror', `docker.io=${testEnv().registry}`];
}

async function build(work: WorkDir, args: string[]) {
  return runStowage(['build', '--root', work.root, ...mirror(), ...args], { cwd: work.dir, timeoutMs: T });
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(() => true, () => false);
}

describe('multi-stage builds', () => {
  let work: WorkDir;

  beforeAll(async () => {
    work = await makeWorkDir({
      Dockerfile: MULTI,
      'top.txt': 'top\n',
      'files/a.txt': 'a\n',
      'files/sub/b.txt': 'b\n',
      'unnamed.Dockerfile': 'FROM busybox\nRUN echo one > /one\nFROM busybox\nRUN echo two > /two\nFROM scratch\nCOPY --from=0 /one /one\nCOPY --from=1 /two /two\n',
      'user.Dockerfile': 'FROM busybox\nUSER app\nRUN id -u > /tmp/who && id -g >> /tmp/who && echo $HOME >> /tmp/who\nUSER root\nRUN cp /tmp/who /who\n',
      'whiteout.Dockerfile': 'FROM busybox\nRUN rm /etc/group && mkdir -p /data && echo x > /data/x\n',
    });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('ARG before FROM, named and numbered stages, heredocs, COPY --from an image, config fields', async () => {
    const r = await build(work, ['-t', 'multi:v1', '--build-arg', 'GREETING=hello', '-o', 'multi.tar', '.']);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    // The stage "broken" is not needed by the target, so its failing RUN never ran.
    expect(r.stderr).not.toContain('exit 7');

    const config = await skopeoInspect(work.path('multi.tar'), { config: true });
    expect(config.config.User).toBe('1000:1000');
    expect(config.config.WorkingDir).toBe('/app');
    expect(config.config.Env).toEqual(['PATH=/bin']);
    expect(Object.keys(config.config.ExposedPorts).sort()).toEqual(['53/udp', '8080/tcp']);
    // Global ARGs are not visible inside a stage unless re-declared there.
    expect(config.config.Labels).toEqual({ 'org.example.stage': 'final', 'org.example.base': '' });
    expect(config.config.Entrypoint).toEqual(['/bin/busybox']);
    expect(config.config.Cmd).toEqual(['cat', '/app/greeting.txt']);

    const img = await unpackOciTar(work.path('multi.tar'), path.join(work.base, 'multi'));
    // Docker's Healthcheck extension is kept in the raw config (skopeo's OCI view drops it).
    expect(img.config.config?.Healthcheck).toEqual({ Test: ['CMD', '/bin/busybox', 'true'], Interval: 30_000_000_000, Retries: 2 });
    expect(img.layout.manifests[0]!.annotations?.['org.opencontainers.image.ref.name']).toBe('v1');
    // Three COPYs; WORKDIR /app adds none, since the first COPY created /app.
    expect(img.manifest.layers).toHaveLength(3);
    const all = img.layers.flatMap((l) => l.entries.map((e) => e.path));
    expect(all).toEqual(expect.arrayContaining(['app/files/a.txt', 'app/files/sub/b.txt', 'app/top.txt', 'app/a.txt', 'app/greeting.txt', 'app/script.txt', 'app/stdin.txt', 'bin/busybox']));

    const asRoot = { user: { uid: 0, gid: 0 } };
    const greeting = await runImage(work.path('multi.tar'), asRoot);
    expect(greeting.stderr).toBe('');
    expect(greeting.stdout).toBe('hello from 0\n');
    const script = await runImage(work.path('multi.tar'), { ...asRoot, args: ['/bin/busybox', 'cat', '/app/script.txt', '/app/stdin.txt'] });
    expect(script.stdout).toBe('script ran in /opt/app with /dev/pipes/EOF\nfrom stdin /opt/app\n');
  }, T);

  test('the base image index resolves to this host platform', async () => {
    const r = await build(work, ['--target', 'base', '-o', 'base.tar', '.']);
    expect(r.code).toBe(0);
    const run = await runImage(work.path('base.tar'), { args: ['sh', '-c', 'test -e /etc/arch && echo arm64 || echo amd64; cat /opt/app/greeting.txt; echo $GREETING_COPY'] });
    expect(run.stdout).toBe('amd64\nhi from 0\nhi\n');
  }, T);

  test('--target stops at the named stage and a failing RUN there reports its line and exit code', async () => {
    const r = await build(work, ['--target', 'broken', '-o', 'broken.tar', '.']);
    expect(r.code).not.toBe(0);
    const line = MULTI.split('\n').indexOf('RUN exit 7') + 1;
    expect(r.stderr).toMatch(new RegExp(`error: Dockerfile:${line}: RUN exit 7: .*exit code 7`));
    // Nothing half-written where the output would have gone.
    expect(await exists(work.path('broken.tar'))).toBe(false);
  }, T);

  test('unnamed stages by index', async () => {
    const r = await build(work, ['-f', 'unnamed.Dockerfile', '-o', 'unnamed.tar', '.']);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const img = await unpackOciTar(work.path('unnamed.tar'), path.join(work.base, 'unnamed'));
    expect(img.layers.map((l) => l.entries.map((e) => e.path))).toEqual([['one'], ['two']]);
  }, T);

  test('RUN runs as the USER of the stage, with its HOME', async () => {
    const r = await build(work, ['-f', 'user.Dockerfile', '-o', 'user.tar', '.']);
    expect(r.code).toBe(0);
    const run = await runImage(work.path('user.tar'), { args: ['cat', '/who'] });
    expect(run.stdout).toBe('1000\n1000\n/home/app\n');
  }, T);

  test('a deletion becomes an OCI whiteout in the step layer', async () => {
    const r = await build(work, ['-f', 'whiteout.Dockerfile', '-o', 'wh.tar', '.']);
    expect(r.code).toBe(0);
    const img = await unpackOciTar(work.path('wh.tar'), path.join(work.base, 'wh'));
    const last = img.layers[img.layers.length - 1]!.entries.map((e) => e.path).sort();
    expect(last).toEqual(['data', 'data/x', 'etc', 'etc/.wh.group']);
    const run = await runImage(work.path('wh.tar'), { args: ['sh', '-c', 'test -e /etc/group && echo present || echo gone; cat /data/x'] });
    expect(run.stdout).toBe('gone\nx\n');
  }, T);
});

describe('errors name the Dockerfile line and exit non-zero', () => {
  let work: WorkDir;
  const cases: Record<string, { dockerfile: string; args?: string[]; expect: RegExp }> = {
    'unknown --target lists the stages': {
      dockerfile: 'FROM busybox AS one\nFROM busybox AS two\n',
      args: ['--target', 'three'],
      expect: /error: target stage "three" could not be found; the stages are: one, two/,
    },
    'a stage used before it is defined': {
      dockerfile: 'FROM busybox\nCOPY --from=later /x /x\nFROM busybox AS later\n',
      expect: /error: case\d+\.Dockerfile:2: COPY --from refers to stage "later", which is not defined before this stage/,
    },
    'a numbered stage that does not exist yet': {
      dockerfile: 'FROM busybox\nCOPY --from=3 /x /x\n',
      expect: /error: case\d+\.Dockerfile:2: COPY --from refers to stage 3/,
    },
    'an invalid FROM reference': {
      dockerfile: 'FROM busybox\nRUN true\nFROM Not_Valid::ref\n',
      expect: /error: case\d+\.Dockerfile:3: FROM "Not_Valid::ref" is neither a build stage nor a valid image reference/,
    },
    'an unknown instruction': {
      dockerfile: 'FROM busybox\nRUN true\nFOO bar\n',
      expect: /error: case\d+\.Dockerfile:3: .*unknown instruction: FOO/i,
    },
    'a missing COPY source': {
      dockerfile: 'FROM busybox\nCOPY nothere.txt /x\n',
      expect: /error: case\d+\.Dockerfile:2: COPY failed: "nothere.txt": not found in the build context/,
    },
    'a missing file in a stage': {
      dockerfile: 'FROM busybox AS a\nFROM scratch\nCOPY --from=a /nothere /x\n',
      expect: /error: case\d+\.Dockerfile:3: COPY failed: "\/nothere": not found/,
    },
    'an unknown user': {
      dockerfile: 'FROM busybox\nUSER nobody-here\nRUN true\n',
      expect: /error: case\d+\.Dockerfile:3: unable to find user nobody-here/,
    },
    'an image that is in no registry': {
      dockerfile: 'FROM busybox\nCOPY --from=127.0.0.1:9/none/such:tag /x /x\n',
      expect: /error: case\d+\.Dockerfile:2: .*127\.0\.0\.1:9/,
    },
  };

  beforeAll(async () => {
    const files: Record<string, string> = {};
    Object.values(cases).forEach((c, i) => (files[`case${i}.Dockerfile`] = c.dockerfile));
    work = await makeWorkDir(files);
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  Object.entries(cases).forEach(([name, c], i) => {
    test(name, async () => {
      const r = await build(work, ['-f', `case${i}.Dockerfile`, ...(c.args ?? []), '-o', `out${i}.tar`, '.']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(c.expect);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace without --debug
      expect(await exists(work.path(`out${i}.tar`))).toBe(false);
    }, T);
  });

  test('bad options fail before building', async () => {
    const r = await build(work, ['-o', 'type=cacheonly,dest=x.tar', '.']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/error: -o type=cacheonly,dest=x.tar: output type "cacheonly" is not supported yet/);
  }, T);
});
