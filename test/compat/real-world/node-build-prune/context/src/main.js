/* global badge */
var args = process.argv.slice(2);
var label = args[0] || 'build';
var message = args[1] || 'passing';
console.log(badge(label, message, args[2] || '#4c1'));
var fs = require('fs');
console.log('node_modules: ' + fs.readdirSync(require('path').join(__dirname, '..', 'node_modules')).filter(function (n) { return n[0] !== '.'; }).join(','));
