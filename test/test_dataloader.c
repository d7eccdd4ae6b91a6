/*
 * test_dataloader.c: the token-shard loader. Both layouts (uint16 and uint32)
 * load; inputs/targets are the shifted stream; across P ranks every token of
 * an epoch is read exactly once (shards sized so no tail is dropped); with
 * shuffling the samples of an epoch are a permutation and the order differs
 * per epoch but not per rank; dataloader_seek restores a position exactly.
 *
 *   make test_dataloader && ./test_dataloader
 */
#include <stdlib.h>
#include <unistd.h>
#include "llmc/dataloader.h"
#include "llmc/shard.h"
#include "test.h"

static char g_dir[256];  // the test's temp directory (owned by main)

// writes shard k with tokens start, start+1, ... (mod V) and returns its path
static void write_seq_shard(const char* name, size_t n, uint32_t start, int V, int layout_vocab) {
    uint32_t* t = (uint32_t*)mallocCheck(n * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) { t[i] = (uint32_t)((start + i) % (uint32_t)V); }
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    shard_write(path, t, n, layout_vocab);
    free(t);
}

static void test_layouts(void) {
    // a uint32 shard with ids above 65535, and a uint16 one
    int V = 100000;
    write_seq_shard("u32_000.bin", 4 * 8 + 1, 70000, V, V);
    char pat[512];
    snprintf(pat, sizeof(pat), "%s/u32_*.bin", g_dir);
    DataLoader d;
    dataloader_init(&d, pat, 2, 4, 0, 1, V, 0, 0);
    CHECK(d.shard_tok_bytes[0] == 4, "uint32 layout detected (%d bytes per token)", d.shard_tok_bytes[0]);
    dataloader_next_batch(&d);
    int ok = 1;
    for (int i = 0; i < 8; i++) { ok &= d.inputs[i] == 70000 + i && d.targets[i] == 70001 + i; }
    CHECK(ok, "uint32 shard: inputs 70000.. and targets shifted by one");
    dataloader_free(&d);

    write_seq_shard("u16_000.bin", 4 * 8 + 1, 60000, 65536, 65536);
    snprintf(pat, sizeof(pat), "%s/u16_*.bin", g_dir);
    dataloader_init(&d, pat, 2, 4, 0, 1, 65536, 0, 0);
    CHECK(d.shard_tok_bytes[0] == 2, "uint16 layout detected (%d bytes per token)", d.shard_tok_bytes[0]);
    dataloader_next_batch(&d);
    ok = 1;
    for (int i = 0; i < 8; i++) { ok &= d.inputs[i] == 60000 + i && d.targets[i] == 60001 + i; }
    CHECK(ok, "uint16 shard: inputs 60000.. and targets shifted by one");
    dataloader_next_batch(&d);
    CHECK(d.inputs[0] == 60008, "second batch starts where the first ended (%d)", d.inputs[0]);
    dataloader_free(&d);
}

// every token position of an epoch is read exactly once across the ranks
static void test_ranks(int P, int shuffle) {
    const int B = 2, T = 3, V = 60000;
    size_t BT = (size_t)B * T;
    // three shards of different sizes, each a whole number of steps for P ranks
    size_t sizes[3] = {BT * P * 2 + 1, BT * P * 3 + 1, BT * P * 1 + 1};
    uint32_t starts[3] = {0, 10000, 20000};
    char name[64];
    for (int s = 0; s < 3; s++) {
        snprintf(name, sizeof(name), "r%d%d_%03d.bin", P, shuffle, s);
        write_seq_shard(name, sizes[s], starts[s], V, V);
    }
    char pat[512];
    snprintf(pat, sizeof(pat), "%s/r%d%d_*.bin", g_dir, P, shuffle);
    int* seen = (int*)callocCheck(V, sizeof(int));
    size_t steps = 0, expected_steps = (sizes[0] / (BT * P)) + (sizes[1] / (BT * P)) + (sizes[2] / (BT * P));
    int first_epoch0[6] = {0}, first_epoch1[6] = {0};
    for (int r = 0; r < P; r++) {
        DataLoader d;
        dataloader_init(&d, pat, B, T, r, P, V, shuffle, 99);
        steps = dataloader_steps_per_epoch(&d);
        for (size_t i = 0; i < steps; i++) {
            dataloader_next_batch(&d);
            if (r == 0 && i == 0) memcpy(first_epoch0, d.inputs, sizeof(first_epoch0));
            for (size_t j = 0; j < BT; j++) { seen[d.inputs[j]]++; }
        }
        CHECK(d.epoch == 1, "P=%d rank %d: after steps_per_epoch steps the loader is in epoch 1", P, r);
        if (r == 0) {
            dataloader_next_batch(&d);
            memcpy(first_epoch1, d.inputs, sizeof(first_epoch1));
        }
        dataloader_free(&d);
    }
    CHECK(steps == expected_steps, "P=%d: %zu steps per epoch (expected %zu)", P, steps, expected_steps);
    int once = 1;
    for (int s = 0; s < 3; s++) {
        for (size_t i = 0; i + 1 < sizes[s]; i++) { once &= seen[starts[s] + i] == 1; }
        once &= seen[starts[s] + sizes[s] - 1] == 0;  // the last token is only ever a target
    }
    CHECK(once, "P=%d shuffle=%d: every input token of the epoch read exactly once across ranks", P, shuffle);
    if (shuffle) {
        CHECK(memcmp(first_epoch0, first_epoch1, sizeof(first_epoch0)) != 0,
              "P=%d: epoch 1 starts with a different sample than epoch 0 (reshuffled)", P);
    }
    free(seen);
}

static void test_shuffle_permutation(void) {
    const int B = 1, T = 4, V = 50000;
    write_seq_shard("perm_000.bin", 4 * 500 + 1, 0, V, V);
    char pat[512];
    snprintf(pat, sizeof(pat), "%s/perm_*.bin", g_dir);
    DataLoader d;
    dataloader_init(&d, pat, B, T, 0, 1, V, 1, 5);
    int* hit = (int*)callocCheck(500, sizeof(int));
    int in_order = 1;
    for (int i = 0; i < 500; i++) {
        dataloader_next_batch(&d);
        int sample = d.inputs[0] / 4;
        hit[sample]++;
        in_order &= sample == i;
    }
    int perm = 1;
    for (int i = 0; i < 500; i++) perm &= hit[i] == 1;
    CHECK(perm, "shuffled epoch visits each of the 500 samples exactly once");
    CHECK(!in_order, "shuffled order is not the identity");
    // seek: position after 123 steps, restored in a fresh loader, gives the same next batches
    dataloader_reset(&d);
    for (int i = 0; i < 123; i++) dataloader_next_batch(&d);
    size_t e = d.epoch, sh = d.shard_index, sa = d.sample_index;
    int expect[3][4];
    for (int k = 0; k < 3; k++) { dataloader_next_batch(&d); memcpy(expect[k], d.inputs, sizeof(expect[k])); }
    DataLoader d2;
    dataloader_init(&d2, pat, B, T, 0, 1, V, 1, 5);
    dataloader_seek(&d2, e, sh, sa);
    int same = 1;
    for (int k = 0; k < 3; k++) { dataloader_next_batch(&d2); same &= memcmp(expect[k], d2.inputs, sizeof(expect[k])) == 0; }
    CHECK(same, "dataloader_seek restores the position exactly");
    dataloader_free(&d);
    dataloader_free(&d2);
    free(hit);
}

int main(void) {
    snprintf(g_dir, sizeof(g_dir), "/tmp/llmc_test_dl_XXXXXX");
    if (mkdtemp(g_dir) == NULL) { die("mkdtemp failed"); }
    test_layouts();
    test_ranks(1, 0);
    test_ranks(2, 0);
    test_ranks(3, 1);
    test_ranks(2, 1);
    test_shuffle_permutation();
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    if (system(cmd) != 0) { fprintf(stderr, "warning: could not remove %s\n", g_dir); }
    return test_summary();
}
