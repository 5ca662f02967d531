export * from './errors.js';
export { sha256Digest, parseDigest, isValidDigest, digestOf, type DigestAlgorithm } from './digest.js';
export { parseReference, makeReference, withDigest, DEFAULT_REGISTRY, type Reference } from './reference.js';
export * from './types.js';
export { platformScore } from './platform.js';
export { ContentStore, type IngestExpectation, type IngestWriter } from './content-store.js';
export { Semaphore } from './semaphore.js';
export { acquireLock, withLock, lockScope, lockAddress, defaultLockTimeoutMs, LockTimeoutError, type Lock, type LockOptions } from './lock.js';
export { lockFile, FileLockError, type FileLock, type LockFileOptions } from './file-lock.js';
export { isProcessAlive, processStartTime } from './proc.js';
export { crashPoint } from './crash-point.js';
export { RegistryClient, MAX_MANIFEST_BYTES, type RegistryClientOptions, type ResolvedImage, type PullOptions, type BlobBytesListener } from './client.js';
export { parseChallenges, type Challenge } from './auth/challenge.js';
export {
  dockerConfigCredentials,
  staticCredentials,
  parseDockerConfig,
  dockerConfigPath,
  dockerConfigKey,
  configKeyToHost,
  DOCKER_HUB_CONFIG_KEY,
  type CredentialSource,
  type Credentials,
} from './auth/docker-config.js';
export { isLoopbackHost, loadHttpClient, Transport, HttpResponse, Deadline, defaultDeadlineMs, registryDeadlineFromEnv, type RetryOptions, type TransportOptions } from './transport.js';
export { storeCredentials, eraseCredentials, credentialLocation, type CredentialLocation, type CredentialStoreOptions } from './auth/credential-store.js';
export { helperGet, helperStore, helperErase } from './auth/cred-helper.js';
export { readConfigObject, writeConfigObject } from './auth/config-file.js';
export { verifyLogin, type VerifyLoginOptions, type VerifiedLogin } from './auth/login.js';
export { DEFAULT_CHUNK_THRESHOLD, type BlobSource, type PushImage, type PushOptions, type PushProgress, type PushAction, type PushResult } from './push.js';
