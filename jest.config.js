// Tests are compiled by `tsc -b` first; jest runs the emitted ESM directly
// (no transform), so what is tested is exactly what ships.
// Tests doing real I/O (snapshots, runc, a registry) get 30 s by default: a
// loaded 2-core runner must not turn a slow pass into a timeout.
const common = { testEnvironment: 'node', transform: {}, moduleFileExtensions: ['js', 'mjs', 'json'], testTimeout: 30_000 };
export default {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/packages/*/dist/test/**/*.test.js'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/dist/e2e/**/*.test.js'] },
  ],
};
