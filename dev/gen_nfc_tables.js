#!/usr/bin/env node
// gen_nfc_tables.js: writes llmc/unicode_nfc.h, the data of Unicode's NFC
// (canonical decomposition, canonical combining classes, canonical composition)
// as node's String.prototype.normalize sees it. The data is ICU's, which
// @huggingface/tokenizers' NFC normalizer (the parity reference for Qwen's
// tokenizer.json) uses through that same call.
// - decompositions: NFD of every code point (Hangul syllables are left to the
//   algorithm in C);
// - combining classes: probed with normalize: a mark m has class v when it is
//   reordered neither before nor after a representative of class v; the
//   representatives are fixed (classes never change once assigned, Unicode's
//   stability policy), and a mark no representative fits stops the generator;
// - compositions: every primary composite c (NFC(NFD(c)) == c != NFD(c)) as the
//   pair (NFC of its NFD but the last, the last) -> c;
// - the code points NFC may change (marks, second parts, Hangul vowels and
//   trailing consonants, those whose NFC is not themselves): the quick check.
// Before writing, the tables run through a JavaScript copy of the C algorithm
// and must give normalize('NFC') for every code point and 200000 random strings.
//   node dev/gen_nfc_tables.js > llmc/unicode_nfc.h
'use strict';
const REPS = { 1: 0x334, 6: 0x16FF0, 7: 0x93C, 8: 0x3099, 9: 0x94D, 10: 0x5B0, 11: 0x5B1, 12: 0x5B2, 13: 0x5B3, 14: 0x5B4,
    15: 0x5B5, 16: 0x5B6, 17: 0x5B7, 18: 0x5B8, 19: 0x5B9, 20: 0x5BB, 21: 0x5BC, 22: 0x5BD, 23: 0x5BF, 24: 0x5C1, 25: 0x5C2,
    26: 0xFB1E, 27: 0x64B, 28: 0x64C, 29: 0x64D, 30: 0x618, 31: 0x619, 32: 0x61A, 33: 0x651, 34: 0x652, 35: 0x670, 36: 0x711,
    84: 0xC55, 91: 0xC56, 103: 0xE38, 107: 0xE48, 118: 0xEB8, 122: 0xEC8, 129: 0xF71, 130: 0xF72, 132: 0xF74, 202: 0x321,
    214: 0x1DCE, 216: 0x31B, 218: 0x1DFA, 220: 0x316, 222: 0x59A, 224: 0x302E, 226: 0x1D16D, 228: 0x5AE, 230: 0x300,
    232: 0x315, 233: 0x35C, 234: 0x35D, 240: 0x345 };
const S = String.fromCodePoint;
const cps = s => Array.from(s, c => c.codePointAt(0));
const isSurrogate = cp => cp >= 0xd800 && cp <= 0xdfff;
const isHangul = cp => cp >= 0xAC00 && cp <= 0xD7A3;
const swapped = (a, b) => S(a, b).normalize('NFD') === S(b, a);
// decompositions
const decomp = new Map();
for (let cp = 0; cp < 0x110000; cp++) {
    if (isSurrogate(cp) || isHangul(cp)) continue;
    const d = S(cp).normalize('NFD');
    if (d !== S(cp)) decomp.set(cp, cps(d));
}
// combining classes of the code points that do not decompose
const ccc = new Map();
const values = Object.keys(REPS).map(Number).sort((a, b) => a - b);
for (let cp = 0; cp < 0x110000; cp++) {
    if (isSurrogate(cp) || decomp.has(cp) || isHangul(cp)) continue;
    if (!swapped(REPS[230], cp) && !swapped(cp, REPS[1])) continue;  // class 0 (or 1: next test)
    let found = -1;
    for (const v of values) {
        if (REPS[v] === cp || (!swapped(REPS[v], cp) && !swapped(cp, REPS[v]))) { found = v; break; }
    }
    if (found < 0) throw new Error('no combining class fits U+' + cp.toString(16));
    ccc.set(cp, found);
}
for (const v of values) if (!ccc.has(REPS[v])) {  // class 1's own marks: swapped against 230 only
    throw new Error('representative of class ' + v + ' not found');
}
// compositions
const comp = new Map();  // "a,b" -> c
for (const [c, d] of decomp) {
    if (S(...d).normalize('NFC') !== S(c)) continue;  // excluded or a singleton
    const first = cps(S(...d.slice(0, -1)).normalize('NFC'));
    if (first.length !== 1) throw new Error('composite U+' + c.toString(16) + ' has no single first part');
    comp.set(first[0] + ',' + d[d.length - 1], c);
}
// the C algorithm in JavaScript, to check the tables
const SB = 0xAC00, LB = 0x1100, VB = 0x1161, TB = 0x11A7, LC = 19, VC = 21, TC = 28, NC = VC * TC;
const cls = cp => ccc.get(cp) || 0;
function nfc(arr) {
    const d = [];
    for (const cp of arr) {
        if (isHangul(cp)) {
            const s = cp - SB;
            d.push(LB + Math.floor(s / NC), VB + Math.floor((s % NC) / TC));
            if (s % TC) d.push(TB + s % TC);
        } else if (decomp.has(cp)) d.push(...decomp.get(cp)); else d.push(cp);
    }
    for (let i = 1; i < d.length; i++) {  // stable insertion sort of each run of non-starters
        const c = cls(d[i]);
        if (c === 0) continue;
        let j = i;
        while (j > 0 && cls(d[j - 1]) > c) { [d[j - 1], d[j]] = [d[j], d[j - 1]]; j--; }
    }
    const out = [];
    let starter = -1, last = -1;  // index in out of the last starter; class of the last char
    for (const cp of d) {
        const c = cls(cp);
        if (starter >= 0 && (last < c || (last === 0 && out.length - 1 === starter))) {
            const s = out[starter];
            let p = -1;
            if (s >= LB && s < LB + LC && cp >= VB && cp < VB + VC && out.length - 1 === starter) p = SB + ((s - LB) * VC + cp - VB) * TC;
            else if (isHangul(s) && (s - SB) % TC === 0 && cp > TB && cp < TB + TC && out.length - 1 === starter) p = s + cp - TB;
            else if (comp.has(s + ',' + cp)) p = comp.get(s + ',' + cp);
            if (p >= 0) { out[starter] = p; continue; }
        }
        if (c === 0) starter = out.length;
        last = c;
        out.push(cp);
    }
    return out;
}
const check = (arr, what) => {
    const want = S(...arr).normalize('NFC'), got = S(...nfc(arr));
    if (want !== got) throw new Error('tables give another NFC for ' + what + ': ' + JSON.stringify(arr.map(x => x.toString(16))));
};
for (let cp = 0; cp < 0x110000; cp++) if (!isSurrogate(cp)) check([cp], 'U+' + cp.toString(16));
const marks = [...ccc.keys()], bases = [...new Set([...comp.keys()].map(k => +k.split(',')[0]))];
const pool = [...marks, ...bases, ...[...decomp.keys()].slice(0, 3000), 0x41, 0x61, 0x1100, 0x1161, 0x11A8, 0xAC00, 0xAC01, 0x20];
let seed = 12345;
const rnd = n => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
for (let it = 0; it < 200000; it++) {
    const arr = [];
    for (let k = 1 + rnd(6); k > 0; k--) arr.push(pool[rnd(pool.length)]);
    check(arr, 'a random string');
}
// the code points that may change under NFC in some text (NFC_Quick_Check No or Maybe): a
// mark, the second of a composition, one whose NFC is not itself; text without them is NFC
const unstable = new Set([...ccc.keys()]);
for (const k of comp.keys()) unstable.add(+k.split(',')[1]);
for (const [c] of decomp) if (S(c).normalize('NFC') !== S(c)) unstable.add(c);
for (let cp = VB; cp < VB + VC; cp++) unstable.add(cp);
for (let cp = TB + 1; cp < TB + TC; cp++) unstable.add(cp);
for (let it = 0; it < 200000; it++) {  // a text of stable code points is its own NFC
    const arr = [];
    for (let k = 1 + rnd(6); k > 0; k--) { const cp = pool[rnd(pool.length)]; if (!unstable.has(cp)) arr.push(cp); }
    if (arr.length && S(...arr).normalize('NFC') !== S(...arr)) throw new Error('stable code points change: ' + arr);
}
// write
const hex = x => '0x' + x.toString(16).toUpperCase();
const L = [];
L.push('/*');
L.push(' * unicode_nfc.h: GENERATED by dev/gen_nfc_tables.js (node ' + process.version + ', ICU ' + process.versions.icu +
       ', Unicode ' + process.versions.unicode + '). Do not edit.');
L.push(' * NFC\'s data: canonical decompositions (full, Hangul excluded), the canonical');
L.push(' * combining classes of the code points that do not decompose, and the canonical');
L.push(' * compositions (first, second) -> composite, each sorted for binary search, and');
L.push(' * the code points NFC may change (text without any is already NFC).');
L.push(' * The algorithm is tok_nfc in llmc/tokenizer.h.');
L.push(' *');
L.push(' * defines: NFC_DECOMP, NFC_DECOMP_CPS, NUM_NFC_DECOMP, NFC_CCC, NUM_NFC_CCC,');
L.push(' *          NFC_COMP, NUM_NFC_COMP, NFC_UNSTABLE, NUM_NFC_UNSTABLE, NFC_TABLES_VERSION');
L.push(' */');
L.push('#ifndef LLMC_UNICODE_NFC_H');
L.push('#define LLMC_UNICODE_NFC_H');
L.push('#include <stdint.h>');
L.push('#define NFC_TABLES_VERSION "' + process.versions.unicode + '"');
const dk = [...decomp.keys()].sort((a, b) => a - b);
const flat = [];
const entries = dk.map(cp => { const d = decomp.get(cp); const e = [cp, flat.length, d.length]; flat.push(...d); return e; });
const rows = (items, per) => { const out = []; for (let i = 0; i < items.length; i += per) out.push('    ' + items.slice(i, i + per).join(', ') + ','); return out; };
L.push('#define NUM_NFC_DECOMP ' + entries.length);
L.push('// (code point, offset in NFC_DECOMP_CPS, length)');
L.push('static const uint32_t NFC_DECOMP[NUM_NFC_DECOMP][3] = {');
L.push(...rows(entries.map(e => '{' + hex(e[0]) + ', ' + e[1] + ', ' + e[2] + '}'), 5));
L.push('};');
L.push('static const uint32_t NFC_DECOMP_CPS[' + flat.length + '] = {');
L.push(...rows(flat.map(hex), 10));
L.push('};');
const ck = [...ccc.keys()].sort((a, b) => a - b);
L.push('#define NUM_NFC_CCC ' + ck.length);
L.push('// (code point, class)');
L.push('static const uint32_t NFC_CCC[NUM_NFC_CCC][2] = {');
L.push(...rows(ck.map(cp => '{' + hex(cp) + ', ' + ccc.get(cp) + '}'), 6));
L.push('};');
const ce = [...comp.entries()].map(([k, c]) => [...k.split(',').map(Number), c]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
L.push('#define NUM_NFC_COMP ' + ce.length);
L.push('// (first, second, composite)');
L.push('static const uint32_t NFC_COMP[NUM_NFC_COMP][3] = {');
L.push(...rows(ce.map(e => '{' + e.map(hex).join(', ') + '}'), 4));
L.push('};');
const uk = [...unstable].sort((a, b) => a - b);
const ur = [];
for (const cp of uk) { if (ur.length && ur[ur.length - 1][1] === cp - 1) ur[ur.length - 1][1] = cp; else ur.push([cp, cp]); }
L.push('#define NUM_NFC_UNSTABLE ' + ur.length);
L.push('// the ranges of code points that NFC may change (quick check No or Maybe)');
L.push('static const uint32_t NFC_UNSTABLE[NUM_NFC_UNSTABLE][2] = {');
L.push(...rows(ur.map(r => '{' + hex(r[0]) + ', ' + hex(r[1]) + '}'), 6));
L.push('};');
L.push('#endif // LLMC_UNICODE_NFC_H');
console.log(L.join('\n'));
console.error(`nfc tables: ${entries.length} decompositions (${flat.length} code points), ${ck.length} combining classes, ${ce.length} compositions, ${ur.length} unstable ranges; checked`);
