/* global module */
var escapeHtml = require('escape-html');

function badge(label, message, color) {
  var width = (label.length + message.length) * 7 + 20;
  return '<svg xmlns="http://www.w3.org/2000/svg" width="' + width + '" height="20">' +
    '<text x="4" y="14">' + escapeHtml(label) + '</text>' +
    '<text x="' + (label.length * 7 + 12) + '" y="14" fill="' + escapeHtml(color) + '">' + escapeHtml(message) + '</text>' +
    '</svg>';
}
