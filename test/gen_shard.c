/*
 * gen_shard.c: writes a synthetic token shard for tests: tokens from a seeded
 * order-1 Markov chain (each token has a few likely successors), so a model
 * can learn it and a run is deterministic.
 *
 *   ./gen_shard <out.bin> <num_tokens> <vocab_size> <seed> [u16|u32]
 * The layout defaults to uint16 when vocab_size <= 65536.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llmc/rand.h"
#include "llmc/shard.h"
#include "llmc/utils.h"

int main(int argc, char** argv) {
    if (argc < 5 || argc > 6) { die("usage: %s <out.bin> <num_tokens> <vocab_size> <seed> [u16|u32]", argv[0]); }
    size_t n = (size_t)parse_long(argv[2], "num_tokens", 1, 1LL << 32);
    int V = parse_int(argv[3], "vocab_size", 2, 1 << 30);
    uint64_t rng = (uint64_t)parse_long(argv[4], "seed", 0, 1LL << 62);
    int layout_vocab = V;  // shard_write picks the layout from the vocabulary size
    if (argc == 6) {
        if (strcmp(argv[5], "u32") == 0) { layout_vocab = 1 << 17; }
        else if (strcmp(argv[5], "u16") == 0) { if (V > 65536) die("u16 layout cannot hold vocab %d", V); }
        else { die("layout must be u16 or u32, not '%s'", argv[5]); }
    }
    uint32_t* tok = (uint32_t*)mallocCheck(n * sizeof(uint32_t));
    uint32_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        // 3 likely successors of cur, picked by a hash of cur; else uniform
        uint64_t h = (uint64_t)cur * 0x9E3779B97F4A7C15ULL;
        uint32_t r = rng_next_u32(&rng) % 8;
        cur = r < 6 ? (uint32_t)((h >> (20 + 8 * (r % 3))) % (uint64_t)V) : (uint32_t)rng_below(&rng, (uint64_t)V);
        tok[i] = cur;
    }
    shard_write(argv[1], tok, n, layout_vocab);
    free(tok);
    return 0;
}
