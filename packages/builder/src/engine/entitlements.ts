import { EntitlementError } from '../errors.js';

/**
 * What a Dockerfile may lift of the RUN sandbox only when the command line
 * allows it (`--allow`, buildx's entitlement names): a repository must not be
 * able to grant itself the host's network or an unconfined step.
 */
export type Entitlement = 'network.host' | 'security.insecure';

export const ENTITLEMENTS: readonly Entitlement[] = ['network.host', 'security.insecure'];

/** The build's `--network`. */
export type BuildNetwork = 'default' | 'host' | 'none';

/**
 * The network a RUN step asks for (`RUN --network=…`, unset or `default`:
 * the build's). `host` needs `--allow network.host`, unless the build's own
 * network already is the host's (nothing is lifted then).
 */
export function requestedNetwork(flag: string | undefined, build: BuildNetwork, allow: readonly Entitlement[]): BuildNetwork {
  if (flag === undefined || flag === 'default') return build;
  if (flag !== 'host' && flag !== 'none') throw new EntitlementError(`RUN --network=${flag} is not supported: use default, host or none`);
  if (flag === 'host' && build !== 'host' && !allow.includes('network.host')) {
    throw new EntitlementError('RUN --network=host is not allowed: the step would reach this machine\'s network and its 127.0.0.1 services; pass --allow network.host to grant it');
  }
  return flag;
}

/** Whether a step runs unconfined: `RUN --security=insecure`, which needs `--allow security.insecure`. */
export function insecureStep(flag: string | undefined, allow: readonly Entitlement[]): boolean {
  if (flag === undefined || flag === 'sandbox') return false;
  if (!allow.includes('security.insecure')) {
    throw new EntitlementError('RUN --security=insecure is not allowed: the step would run with every capability and no seccomp filter; pass --allow security.insecure to grant it');
  }
  return true;
}
