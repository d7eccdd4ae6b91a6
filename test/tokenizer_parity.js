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

const cases = [
    'Hello world', 'Hello, world! How are you today?', ' leading space', 'trailing space ', 'two  spaces',
    'The quick brown fox jumps over the lazy dog.',
    "I'm sure you'll see they've done what we'd said; it's John's, isn't it? I'M LOUD. We'RE here 'Quote' ''s",
    'don\u2019t \u201csmart quotes\u201d and \u2018single\u2019',
    'int main(void) {\n    for (int i = 0; i < 10; i++) { printf("%d\\n", i); }\n    return 0;\n}\n',
    'def f(x):\n\treturn x ** 2  # square\n\n\n',
    'const x = {a: [1, 2, 3], "b": null}; // comment\r\n',
    '3.14159 2,000,000 1e-9 0x1F 42nd 7th 1999-12-31 12:30:45 $19.99 100%',
    'Tel: +1 (555) 123-4567, ISBN 978-3-16-148410-0',
    '   \n\n\t\t  \n   x', 'a\n\n\nb', 'end with newline\n', '\n', ' ', '  ', '\t', 'x\u00a0y\u2003z\u3000w',
    'caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe \u00e5ngstr\u00f6m', 'Ol\u00e1, S\u00e3o Paulo! \u00bfQu\u00e9 tal? \u00a1Bien!',
    '\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002\u4e2d\u6587\u5b57\u7b26\u3002\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8.',
    '\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442, \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac, \u05e2\u05d1\u05e8\u05d9\u05ea, \u0627\u0644\u0639\u0631\u0628\u064a\u0629',
    'emoji \ud83d\ude00\ud83d\udc4d\ud83c\udffd family \ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67 flag \ud83c\uddef\ud83c\uddf5 \u2764\ufe0f',
    'combining e\u0301 a\u0308 n\u0303 \u0915\u094d\u0937 \u0e01\u0e34',
    'Supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis ' + 'a'.repeat(300),
    'x'.repeat(1000) + ' ' + '9'.repeat(500) + ' ' + '!'.repeat(400),
    '<|endoftext|> is text here', 'mixed123abc 123abc abc123 \u0661\u0662\u0663 \u2167 \u00bd',
    '...!!!???---___***', "'s's's ''''", "' s 't 're", 'A.B.C. U.S.A. e.g. i.e.',
    '\u200b\u200c\u200d zero width', 'tab\tseparated\tvalues\n1\t2\t3',
    '\ud835\udc00\ud835\udc01 math bold, \u2460\u2461 circled',
];
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
