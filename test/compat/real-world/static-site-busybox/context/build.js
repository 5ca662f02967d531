'use strict';
// Renders content/*.md into public/*.html with templates/page.html.
const fs = require('fs');
const path = require('path');
const { marked } = require('marked');

const out = path.join(__dirname, 'public');
const template = fs.readFileSync(path.join(__dirname, 'templates', 'page.html'), 'utf8');
fs.mkdirSync(out, { recursive: true });
const pages = fs.readdirSync(path.join(__dirname, 'content')).filter((f) => f.endsWith('.md')).sort();
for (const f of pages) {
  const md = fs.readFileSync(path.join(__dirname, 'content', f), 'utf8');
  const title = (md.match(/^# (.*)$/m) || [, f])[1];
  const html = template.replace('{{title}}', title).replace('{{body}}', marked.parse(md).trim());
  fs.writeFileSync(path.join(out, f.replace(/\.md$/, '.html')), html);
}
fs.copyFileSync(path.join(__dirname, 'templates', 'style.css'), path.join(out, 'style.css'));
console.log(`built ${pages.length} pages`);
