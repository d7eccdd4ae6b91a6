// tokenizer_cases.js: the hard strings every tokenizer parity test encodes
// (whitespace runs, digits, contractions, scripts, emoji, symbols), shared by
// test/tokenizer_parity.js (GPT-2 vs gpt-3-encoder) and
// test/tokenizer_json_parity.mjs (tokenizer.json vs @huggingface/tokenizers).
'use strict';
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
// Llama 3's pattern: case-insensitive contractions, 1-3 digits, CR/LF runs,
// a symbol or space before letters, vertical space, other line separators
cases.push(
    "'S 'T 'RE 'Ve 'LL 'D 'M 'sT 're's X'S", "don'T DON'T 'x '' '\u017f '\u212a",
    '1 12 123 1234 12345 123456789 3.14159265 1,234,567 \u0661\u0662\u0663\u0664 \u0967\u0968\u0969\u096a\u096b \u2460\u2461\u2462\u2463',
    'a\r\nb\r\n\r\nc\n\r\n d \r  \n  e\n\n\n  f', '\r\n', '\r', '  \n', ' \n ', '\n \n', '\t\n\tword',
    '!!!\n\n\nx ...\r\n?? !\n', '"quoted" (paren) [bracket] {brace} <angle> \u00abguillemets\u00bb',
    '\tword \u00a0word \u3000word \u000bword \u000cword \u2028word \u2029word \u0085word \ufeffword \u1680word \u180eword',
    'a\u0085\u0085b \ufeff\ufeff c\u0085\nd \u0085 \ufeff!',
    '$100 #tag @user &amp; *bold* _under_ ~tilde~ `code`', '   leading and trailing   ', 'x' + ' '.repeat(40) + 'y',
    '<|begin_of_text|>Hi<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nyo<|end_of_text|>',
    '<|reserved_special_token_0|><|reserved_special_token_250|> <|endoftext|><|endoftext|>x<|endoftext',
    // pieces that are Llama 3 tokens but that its merges would split (ignore_merges)
    'Ng\u01b0\u1eddi Vi\u1ec7t c\u00f3 nhi\u1ec1u vi\u1ec7c h\u1ee3p \u0111i\u1ec1u; jeho ektedir \u0627\u06cc\u0631\u0627\u0646',
    // NFC (Qwen's normalizer): decomposed marks compose, singletons map, Hangul jamo
    // compose, marks reorder by class, exclusions stay decomposed, compatibility forms stay
    'e\u0301 a\u0308 n\u0303 Cafe\u0301 \u0301start \u212b \u2126 \u00c5 \u1100\u1161\u11a8 \u1100\u1161 \uac00\u11a8',
    'a\u0323\u0307 a\u0307\u0323 \u1e0b\u0323 q\u0307\u0323 \u00e0\u0316 \u0344 \u0f73 \u0f75 \u0958 \ufb01 \u2460 \u1e9b\u0323',
    'Vie\u0302\u0323t Nam ho\u0323c sinh \u0915\u093c \u09c7\u09be \u0b47\u0b3e \u1025\u102e \u3099\u304b\u3099 \u30cf\u309a',
    'mixedCASE camelCaseWord snake_case_word kebab-case-word SCREAMING_CASE',
);
// every Unicode general category (but Cs, lone surrogates, which UTF-8 cannot hold):
// four code points of each, apart, run together and after a space and a letter
const GC = ['Lu', 'Ll', 'Lt', 'Lm', 'Lo', 'Mn', 'Mc', 'Me', 'Nd', 'Nl', 'No', 'Pc', 'Pd', 'Ps', 'Pe', 'Pi', 'Pf', 'Po',
            'Sm', 'Sc', 'Sk', 'So', 'Zs', 'Zl', 'Zp', 'Cc', 'Cf', 'Co', 'Cn'];
for (const gc of GC) {
    const re = new RegExp('^\\p{gc=' + gc + '}$', 'u'), found = [];
    for (let cp = 0; cp < 0x110000 && found.length < 4; cp += cp < 0x3000 ? 1 : 97) {
        if ((cp < 0xd800 || cp > 0xdfff) && re.test(String.fromCodePoint(cp))) found.push(String.fromCodePoint(cp));
    }
    if (found.length === 0) throw new Error('no code point of category ' + gc);
    cases.push(gc + ': ' + found.join(' ') + ' | ' + found.join('') + ' | a' + found.join(' a') + ' | 1' + found.join('1'));
}
module.exports = cases;
