// Helpers for stowage's end-to-end tests (test/e2e). They expect the machine
// prepared by scripts/setup (run by scripts/test): a loopback registry with the
// fixture images, an unprivileged test user, and jest running as root.
export { testEnv, copyIfChanged, repoRoot, DEFAULTS, TestEnvError, type TestEnv } from './env.js';
export { run, runAsUser, runStowage, userBaseEnv, DEFAULT_TIMEOUT_MS, type RunOptions, type RunResult, type StowageOptions } from './proc.js';
export { makeWorkDir, makeUserTempDir, chownTree, removeTree, scratchParent, type FileSpec, type WorkDir } from './workdir.js';
export {
  skopeoInspect,
  skopeoInspectRegistry,
  pullToOciArchive,
  unpackOciTar,
  listLayer,
  readLayerFile,
  runImage,
  umociUnpack,
  MEDIA_TYPES,
  REF_NAME,
  type Descriptor,
  type LayerEntry,
  type OciConfig,
  type OciIndex,
  type OciManifest,
  type Platform,
  type RunImageOptions,
  type SelectOptions,
  type UnpackedLayer,
  type UnpackedOci,
} from './oci.js';
export {
  startAuthRegistry,
  seedImage,
  freePort,
  type AuthRegistry,
  type AuthRegistryOptions,
  type RegistryRequestRecord,
  type TokenRequestRecord,
} from './auth-registry.js';
export { startScratchRegistry, copyImage, type ScratchRegistry } from './registry.js';
export { leftovers, corruptBlobs, processesUnder, mountsUnder, pidGone, deadScratch, deadLeases, deadActiveSnapshots } from './root-state.js';
