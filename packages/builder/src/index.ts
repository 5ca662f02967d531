/**
 * Programmatic API: the same build the CLI runs. The caller must already be
 * inside a user namespace with a mount namespace (see rootless/reexec.ts),
 * or be real root, because snapshots mount overlayfs and RUN starts runc.
 */
export { buildImage, type BuildOptions, type BuildResult, type LayerRef, type StageResult } from './engine/builder.js';
export { Progress, plainRenderer, type ProgressStep, type ProgressEvent, type ProgressListener } from './engine/progress.js';
export { writeImage, taggedDescriptors, type WrittenImage } from './export/image.js';
export { writeOciArchive } from './export/oci-archive.js';
export { runInUserNamespace, currentMappingMode } from './rootless/reexec.js';
export { parseInstructions, parse as parseDockerfile, ShellLex, DockerfileParseError } from './frontend/index.js';
export * from './errors.js';
