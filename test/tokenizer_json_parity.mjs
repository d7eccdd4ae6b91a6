#!/usr/bin/env node
// tokenizer_json_parity.mjs: writes the cases for test_tokenizer_parity.c's
// tokenizer.json mode: each string with the ids of two independent references
// on the same tokenizer.json:
//   1. @huggingface/tokenizers (a JS implementation of tokenizer.json), added
//      tokens matched in the text, add_special_tokens false;
//   2. the vocabulary's own encoder: gpt-3-encoder for gpt2 (added tokens are
//      ordinary text there), llama3-tokenizer-js for llama3 (they are matched);
//      qwen2 (Llama 3's vocabulary with Qwen 2's one-digit pattern and its NFC
//      normalizer) has only the first.
// The strings: test/tokenizer_cases.js, the given text files, and `mb` MB of
// nlp-corpus documents. The two references must agree with each other first.
//   usage: node test/tokenizer_json_parity.mjs <@huggingface/tokenizers dir> gpt2|llama3|qwen2
//          <tokenizer dir> <reference package dir|-> <nlp-corpus dir> <mb> <out dir> [text files...]
// writes <out dir>/cases.bin (and, for qwen2, <out dir>/tokenizer.json)
import fs from 'fs';
import path from 'path';
import { createRequire } from 'module';
import { pathToFileURL } from 'url';
const require = createRequire(import.meta.url);
const [hfDir, kind, tokDir, refDir, corpusDir, mb, outDir, ...files] = process.argv.slice(2);
if (!outDir || !['gpt2', 'llama3', 'qwen2'].includes(kind)) {
    console.error('usage: node tokenizer_json_parity.mjs <hf dir> gpt2|llama3|qwen2 <tokenizer dir> <ref dir|-> <corpus dir> <mb> <out dir> [files...]');
    process.exit(2);
}
const { Tokenizer } = await import(pathToFileURL(path.resolve(hfDir, 'dist/tokenizers.mjs')).href);
const json = JSON.parse(fs.readFileSync(path.join(tokDir, 'tokenizer.json'), 'utf-8'));
const config = JSON.parse(fs.readFileSync(path.join(tokDir, 'tokenizer_config.json'), 'utf-8'));
fs.mkdirSync(outDir, { recursive: true });
if (kind === 'qwen2') {
    const split = json.pre_tokenizer.pretokenizers[0];
    const before = split.pattern.Regex;
    split.pattern.Regex = before.replace('\\p{N}{1,3}', '\\p{N}');
    json.normalizer = { type: 'NFC' };  // as Qwen 2/3's files have
    if (split.pattern.Regex === before) throw new Error('no \\p{N}{1,3} in the pattern');
    fs.writeFileSync(path.join(outDir, 'tokenizer.json'), JSON.stringify(json));
    fs.writeFileSync(path.join(outDir, 'tokenizer_config.json'), JSON.stringify(config));
}
const hf = new Tokenizer(json, config);
let ref = null, refSpecial = 0;
if (kind === 'gpt2') {
    const { encode } = require(path.resolve(refDir, 'Encoder.js'));
    ref = s => encode(s);
} else if (kind === 'llama3') {
    const { llama3Tokenizer } = require(path.resolve(refDir, 'bundle/commonjs-llama3-tokenizer-with-baked-data.cjs'));
    ref = s => llama3Tokenizer.encode(s, { bos: false, eos: false });
    refSpecial = 1;
}

const cases = require('./tokenizer_cases.js').slice();
for (const f of files) {
    const text = fs.readFileSync(f, 'utf-8');
    cases.push(text);
    for (const para of text.split('\n\n').slice(0, 100)) cases.push(para);
}
// the corpus: whole documents, about 64 KB per case, mb MB in all
const builds = path.join(corpusDir, 'builds');
const docFiles = fs.readdirSync(builds).filter(f => /^doc-\d+\.json$/.test(f)).sort((a, b) => parseInt(a.slice(4)) - parseInt(b.slice(4)));
let corpusBytes = 0, chunk = [];
const want = parseFloat(mb) * 1e6;
outer: for (const f of docFiles) {
    for (const d of JSON.parse(fs.readFileSync(path.join(builds, f), 'utf-8'))) {
        if (typeof d !== 'string') continue;
        chunk.push(d);
        corpusBytes += Buffer.byteLength(d) + 2;
        if (chunk.length >= 200) { cases.push(chunk.join('\n\n')); chunk = []; }
        if (corpusBytes >= want) break outer;
    }
}
if (chunk.length) cases.push(chunk.join('\n\n'));

const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0, 0); return b; };
const idsBuf = (ids) => { const b = Buffer.alloc(4 + 4 * ids.length); b.writeUInt32LE(ids.length, 0); ids.forEach((x, i) => b.writeUInt32LE(x, 4 + 4 * i)); return b; };
const parts = [u32(refSpecial), u32(ref ? 1 : 0)];
let disagree = 0, bytes = 0, skipped = 0;
for (const s of cases) {
    const b = Buffer.from(s, 'utf-8');
    bytes += b.length;
    const a = hf.encode(s, { add_special_tokens: false }).ids;
    parts.push(u32(b.length), b, idsBuf(a));
    // llama3-tokenizer-js reads \s as JavaScript does (U+FEFF a space, U+0085 not), unlike
    // tokenizers' White_Space: no second reference for the strings that hold one
    if (ref && refSpecial === 1 && /[\u0085\ufeff]/.test(s)) {
        parts.push(u32(0xffffffff));
        skipped++;
    } else if (ref) {
        const r = ref(s);
        parts.push(idsBuf(r));
        // where added tokens are handled alike, the two references must agree
        const comparable = refSpecial === 1 || !json.added_tokens.some(t => s.includes(t.content));
        if (comparable && (a.length !== r.length || a.some((x, i) => x !== r[i]))) {
            disagree++;
            if (disagree <= 5) console.log(`references disagree (${kind}): ${JSON.stringify(s.slice(0, 60))}`);
        }
    }
}
fs.writeFileSync(path.join(outDir, 'cases.bin'), Buffer.concat(parts));
console.log(`${kind}: wrote ${cases.length} cases, ${(bytes / 1e6).toFixed(2)} MB (corpus ${(corpusBytes / 1e6).toFixed(2)} MB); ` +
            `the references disagree on ${disagree}` + (skipped ? ` (${skipped} with U+0085/U+FEFF have only the first)` : ''));
if (disagree) process.exit(1);
