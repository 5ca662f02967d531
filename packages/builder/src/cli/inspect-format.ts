/**
 * What `stowage inspect` shows, as one JSON document with stable fields
 * (every field is always present; absent values are null, [] or {}) and as
 * text. The fields are documented in README.md ("stowage inspect").
 */
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from '@stowage/registry-client';
import { formatSize } from './size.js';

export interface InspectInput {
  /** The reference or archive name, when there is one. */
  name: string | null;
  source: 'registry' | 'oci-archive' | 'docker-archive';
  /** What the name points at: an index or a manifest. */
  top: Pick<Descriptor, 'digest' | 'mediaType' | 'size'>;
  index?: ImageIndex;
  /** The image manifest shown (the platform's, for an index). */
  manifest: Pick<Descriptor, 'digest' | 'mediaType' | 'size'> & { json: ImageManifest };
  config: ImageConfig;
}

export interface InspectLayer {
  digest: string;
  size: number;
  mediaType: string;
  diffID: string | null;
}

export interface InspectHistory {
  created: string | null;
  created_by: string | null;
  comment: string | null;
  empty_layer: boolean;
}

export interface InspectDocument {
  name: string | null;
  source: InspectInput['source'];
  digest: string;
  mediaType: string;
  platforms: string[];
  manifest: { digest: string; mediaType: string; size: number };
  platform: string;
  created: string | null;
  author: string | null;
  config: {
    digest: string;
    mediaType: string;
    size: number;
    User: string | null;
    Env: string[];
    Entrypoint: string[] | null;
    Cmd: string[] | null;
    WorkingDir: string | null;
    Labels: Record<string, string>;
    ExposedPorts: string[];
    Volumes: string[];
    StopSignal: string | null;
  };
  layers: InspectLayer[];
  history: InspectHistory[];
  /** Bytes a registry stores for this platform's image: manifest + config + layers (compressed). */
  size: number;
}

export function platformText(p: Pick<Platform, 'os' | 'architecture' | 'variant'>): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

export function inspectDocument(input: InspectInput): InspectDocument {
  const m = input.manifest.json;
  const cfg = input.config;
  const c = cfg.config ?? {};
  const diffIDs = cfg.rootfs?.diff_ids ?? [];
  const layers: InspectLayer[] = m.layers.map((l, i) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, diffID: diffIDs[i] ?? null }));
  const platforms = input.index
    ? input.index.manifests.filter((d) => d.platform !== undefined && d.platform.os !== 'unknown').map((d) => platformText(d.platform!))
    : [platformText(cfg)];
  return {
    name: input.name,
    source: input.source,
    digest: input.top.digest,
    mediaType: input.top.mediaType,
    platforms: [...new Set(platforms)],
    manifest: { digest: input.manifest.digest, mediaType: input.manifest.mediaType, size: input.manifest.size },
    platform: platformText(cfg),
    created: cfg.created ?? null,
    author: cfg.author ?? null,
    config: {
      digest: m.config.digest,
      mediaType: m.config.mediaType,
      size: m.config.size,
      User: c.User || null,
      Env: [...(c.Env ?? [])],
      Entrypoint: c.Entrypoint ? [...c.Entrypoint] : null,
      Cmd: c.Cmd ? [...c.Cmd] : null,
      WorkingDir: c.WorkingDir || null,
      Labels: { ...(c.Labels ?? {}) },
      ExposedPorts: Object.keys(c.ExposedPorts ?? {}).sort(),
      Volumes: Object.keys(c.Volumes ?? {}).sort(),
      StopSignal: c.StopSignal ?? null,
    },
    layers,
    history: (cfg.history ?? []).map((h) => ({
      created: h.created ?? null,
      created_by: h.created_by ?? null,
      comment: h.comment ?? null,
      empty_layer: h.empty_layer === true,
    })),
    size: input.manifest.size + m.config.size + m.layers.reduce((n, l) => n + l.size, 0),
  };
}

/** The document for people: aligned labels, one line per layer and history entry. */
export function inspectText(d: InspectDocument): string {
  const lines: string[] = [];
  // A continuation row (no label) lines its value up under the one above.
  const row = (label: string, value: string, indent = '') => lines.push(`${indent}${(label ? `${label}:` : '').padEnd(indent ? 14 : 12)}${value}`.trimEnd());
  const list = (label: string, values: string[], indent: string) => {
    if (values.length === 0) row(label, '', indent);
    values.forEach((v, i) => row(i === 0 ? label : '', v, indent));
  };
  if (d.name !== null) row('Name', d.name);
  row('Digest', d.digest);
  row('MediaType', d.mediaType);
  if (d.digest !== d.manifest.digest) {
    row('Platforms', d.platforms.join(', '));
    row('Manifest', `${d.manifest.digest} (${d.platform})`);
  } else {
    row('Platform', d.platform);
  }
  row('Created', d.created ?? '');
  if (d.author !== null) row('Author', d.author);
  row('Size', `${formatSize(d.size)} (${d.size} bytes, ${d.layers.length} layer${d.layers.length === 1 ? '' : 's'})`);
  lines.push('');
  row('Config', d.config.digest);
  const c = d.config;
  const ind = '  ';
  row('User', c.User ?? '', ind);
  list('Env', c.Env, ind);
  row('Entrypoint', c.Entrypoint ? JSON.stringify(c.Entrypoint) : '', ind);
  row('Cmd', c.Cmd ? JSON.stringify(c.Cmd) : '', ind);
  row('WorkingDir', c.WorkingDir ?? '', ind);
  list('Labels', Object.entries(c.Labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${v}`), ind);
  row('ExposedPorts', c.ExposedPorts.join(', '), ind);
  if (c.Volumes.length > 0) row('Volumes', c.Volumes.join(', '), ind);
  if (c.StopSignal !== null) row('StopSignal', c.StopSignal, ind);
  lines.push('', 'Layers:');
  for (const l of d.layers) lines.push(`  ${l.digest}  ${formatSize(l.size).padStart(9)}  ${l.mediaType}`);
  lines.push('', 'History:');
  for (const h of d.history) {
    const by = (h.created_by ?? '').replace(/\s+/g, ' ');
    lines.push(`  ${(h.created ?? '-').padEnd(24)}  ${by}${h.empty_layer ? '  (no layer)' : ''}`.trimEnd());
  }
  return `${lines.join('\n')}\n`;
}
