/*
 * shard.h: the token-shard format (SPEC section 3; llm.c's two layouts) and
 * its writer. A header of 256 int32: [0] magic, [1] version, [2] token count;
 * then the tokens, uint16 (magic 20240520, version 1) or uint32 (magic 20240801,
 * version 7, for vocabularies over 65536 tokens). The reader is in dataloader.h.
 *
 * defines: SHARD_MAGIC_U16, SHARD_VERSION_U16, SHARD_MAGIC_U32, SHARD_VERSION_U32,
 *          SHARD_HEADER_INTS, shard_write
 */
#ifndef LLMC_SHARD_H
#define LLMC_SHARD_H

#include <stdint.h>
#include <stdio.h>
#include "utils.h"

#define SHARD_MAGIC_U16 20240520
#define SHARD_VERSION_U16 1
#define SHARD_MAGIC_U32 20240801
#define SHARD_VERSION_U32 7
#define SHARD_HEADER_INTS 256

// shard_write: writes n tokens atomically; the layout follows vocab_size
// (uint16 when every id fits, i.e. vocab_size <= 65536)
static inline void shard_write(const char* path, const uint32_t* tokens, size_t n, int vocab_size) {
    if (n > 0x7fffffffu) { die("shard '%s': %zu tokens do not fit the header's int32 count", path, n); }
    int u16 = vocab_size <= 65536;
    int32_t header[SHARD_HEADER_INTS] = {0};
    header[0] = u16 ? SHARD_MAGIC_U16 : SHARD_MAGIC_U32;
    header[1] = u16 ? SHARD_VERSION_U16 : SHARD_VERSION_U32;
    header[2] = (int32_t)n;
    AtomicFile af;
    atomic_file_open(&af, path);
    fwriteCheck(header, sizeof(int32_t), SHARD_HEADER_INTS, af.fp, path);
    if (u16) {
        uint16_t buf[4096];
        for (size_t i = 0; i < n; i += 4096) {
            size_t k = n - i < 4096 ? n - i : 4096;
            for (size_t j = 0; j < k; j++) {
                if (tokens[i + j] >= (uint32_t)vocab_size) { die("shard '%s': token %u >= vocab size %d", path, tokens[i + j], vocab_size); }
                buf[j] = (uint16_t)tokens[i + j];
            }
            fwriteCheck(buf, sizeof(uint16_t), k, af.fp, path);
        }
    } else {
        fwriteCheck(tokens, sizeof(uint32_t), n, af.fp, path);
    }
    atomic_file_commit(&af);
}

#endif // LLMC_SHARD_H
