export type SnapshotterBackend = 'overlay' | 'native';
