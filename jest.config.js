// Tests are compiled by `tsc -b` first; jest runs the emitted ESM directly
// (no transform), so what is tested is exactly what ships.
const common = { testEnvironment: 'node', transform: {}, moduleFileExtensions: ['js', 'mjs', 'json'] };
export default {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/packages/*/dist/test/**/*.test.js'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/dist/e2e/**/*.test.js'] },
  ],
};
