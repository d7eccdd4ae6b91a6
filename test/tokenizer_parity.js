#!/usr/bin/env node
// tokenizer_parity.js: writes the parity cases for test_tokenizer_parity.c:
// a broad set of strings with their token ids from gpt-3-encoder's own
// Encoder.js (the independent reference), and the class (space, letter,
// number, other) that JavaScript's regex gives every code point.
//   usage: node test/tokenizer_parity.js <gpt-3-encoder dir> <cases.bin> <classes.bin> [text files...]
'use strict';
const fs = require('fs');
const path = require('path');
const [dir, casesOut, classesOut, ...files] = process.argv.slice(2);
const { encode } = require(path.resolve(dir, 'Encoder.js'));

const cases = require('./tokenizer_cases.js').slice();
for (const f of files) {
    const text = fs.readFileSync(f, 'utf-8');
    cases.push(text);
    for (const para of text.split('\n\n').slice(0, 200)) cases.push(para);
}
const parts = [];
for (const s of cases) {
    const bytes = Buffer.from(s, 'utf-8');
    const ids = encode(s);
    const h = Buffer.alloc(8);
    h.writeUInt32LE(bytes.length, 0);
    parts.push(h.subarray(0, 4), bytes);
    const ib = Buffer.alloc(4 + 4 * ids.length);
    ib.writeUInt32LE(ids.length, 0);
    ids.forEach((id, i) => ib.writeUInt32LE(id, 4 + 4 * i));
    parts.push(ib);
}
fs.writeFileSync(casesOut, Buffer.concat(parts));

// classes: 0 space, 1 letter, 2 number, 3 other (surrogates: 3, never seen as text)
const cls = Buffer.alloc(0x110000);
const reS = /^\s$/u, reL = /^\p{L}$/u, reN = /^\p{N}$/u;
for (let cp = 0; cp < 0x110000; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) { cls[cp] = 3; continue; }
    const ch = String.fromCodePoint(cp);
    cls[cp] = reS.test(ch) ? 0 : reL.test(ch) ? 1 : reN.test(ch) ? 2 : 3;
}
fs.writeFileSync(classesOut, cls);
console.log('wrote ' + cases.length + ' cases (node ' + process.version + ', Unicode ' + process.versions.unicode + ')');
