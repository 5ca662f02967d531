'use strict';
const ms = require('ms');
const debug = require('debug')('uptime-report');
const pkg = require('../package.json');

const durations = [90_000, 3_600_000, 2 * 86_400_000];
debug('formatting %d durations', durations.length);
console.log(`${pkg.name} ${pkg.version} (${process.env.NODE_ENV})`);
for (const d of durations) console.log(`${d} ms = ${ms(d, { long: true })}`);
console.log(`user: ${require('os').userInfo().username} (${process.getuid()}:${process.getgid()})`);
let dev = 'absent';
try { require.resolve('kleur'); dev = 'present'; } catch {}
console.log(`devDependencies: ${dev}`);
