/**
 * Programmatic API.
 *
 * `build()` runs a whole `stowage build` (user namespace included) by
 * spawning the bundled CLI, and reports its progress events; any process can
 * call it. The lower-level pieces below it (`buildImage`, `writeImage`, …)
 * are the same engine the CLI runs; their caller must already be inside a
 * user namespace with a mount namespace (see rootless/reexec.ts), or be real
 * root, because snapshots mount overlayfs and RUN starts runc.
 */
export { buildImage, type BuildOptions, type BuildResult, type LayerRef, type StageResult } from './engine/builder.js';
export { Progress, plainRenderer, type ProgressStep, type ProgressEvent, type ProgressListener } from './engine/progress.js';
export { writeImage, taggedDescriptors, type WrittenImage } from './export/image.js';
export { writeOciArchive } from './export/oci-archive.js';
export { runInUserNamespace, currentMappingMode } from './rootless/reexec.js';
export { parseInstructions, parse as parseDockerfile, ShellLex, DockerfileParseError } from './frontend/index.js';
export * from './errors.js';
export {
  build,
  startBuild,
  defaultCliPath,
  BuildFailedError,
  AbortError,
  type StowageBuildOptions,
  type StowageBuildResult,
  type BuildJob,
} from './api/build.js';
export type { OutputSpec, FileOutputSpec, RegistryOutputSpec } from './cli/options.js';
