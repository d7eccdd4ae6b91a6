/*
 * fuzz_shard.c: libFuzzer target for the token-shard loader (llmc/dataloader.h).
 * The input is written to a file and read as a shard: shard_read_header, then
 * for four loader settings (B, T, processes, rank, vocab, shuffle) a
 * dataloader_init, up to 12 dataloader_next_batch calls and a dataloader_seek.
 * Oracles: every accepted batch has ids in [0, vocab) and targets equal to the
 * inputs shifted by one; die() on bad input is fine (it longjmps back here).
 *
 *   test/fuzz/run_fuzz.sh shard          (builds into fuzz-build/ and runs)
 *   fuzz-build/fuzz_shard CRASH_FILE     (replays one input)
 */
#include "fuzz_common.h"
#include "llmc/dataloader.h"

static DataLoader g_loader;  // static: it must survive the longjmp of a die()

typedef struct { size_t B, T; int processes, rank, vocab, shuffle; } LoaderSetting;

static const LoaderSetting SETTINGS[] = {
    {1, 1, 1, 0, 65536, 0},     // every uint16 id is valid
    {2, 3, 2, 1, 50257, 1},     // GPT-2's vocab, rank 1 of 2, shuffled
    {4, 8, 1, 0, 300, 1},       // a small vocab: most random ids are out of range
    {1, 4, 3, 2, 1 << 20, 0},   // uint32 ids up to 2^20, rank 2 of 3
};

static void check_batch(const DataLoader* d) {
    size_t BT = d->B * d->T;
    for (size_t i = 0; i < BT; i++) {
        FUZZ_ASSERT(d->inputs[i] >= 0 && d->inputs[i] < d->vocab_size, "input id out of range");
        FUZZ_ASSERT(d->targets[i] >= 0 && d->targets[i] < d->vocab_size, "target id out of range");
        if (i + 1 < BT) { FUZZ_ASSERT(d->targets[i] == d->inputs[i + 1], "targets are not the shifted inputs"); }
    }
}

static void run_setting(const LoaderSetting* s) {
    jmp_buf jb;
    memset(&g_loader, 0, sizeof(g_loader));
    if (setjmp(jb) == 0) {
        llmc_die_jmp = &jb;
        dataloader_init(&g_loader, fuzz_input_path, s->B, s->T, s->rank, s->processes, s->vocab, s->shuffle, 1234);
        DataLoader* d = &g_loader;
        FUZZ_ASSERT(d->num_samples >= (size_t)d->num_processes, "a shard without one sample per process");
        size_t steps = dataloader_steps_per_epoch(d) + 2;
        for (size_t i = 0; i < steps && i < 12; i++) {
            dataloader_next_batch(d);
            check_batch(d);
        }
        // the last whole step of the shard in epoch 2, then one more batch wraps to epoch 3
        size_t last = (d->num_samples / d->num_processes - 1) * d->num_processes;
        dataloader_seek(d, 2, 0, last);
        dataloader_next_batch(d);
        check_batch(d);
        FUZZ_ASSERT(d->epoch == 3 && d->sample_index == 0, "the batch after the last one starts the next epoch");
    }
    llmc_die_jmp = NULL;
    fuzz_cleaning = 1;
    dataloader_free(&g_loader);
    fuzz_cleaning = 0;
    fuzz_close_all();
}

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    (void)argc;
    (void)argv;
    fuzz_init("fuzz_shard");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz_write_input(data, size);
    jmp_buf jb;
    if (setjmp(jb) == 0) {
        llmc_die_jmp = &jb;
        size_t ntok;
        int tok_bytes;
        FILE* fp = shard_read_header(fuzz_input_path, &ntok, &tok_bytes);
        FUZZ_ASSERT(tok_bytes == 2 || tok_bytes == 4, "token width");
        FUZZ_ASSERT(SHARD_HEADER_INTS * 4 + ntok * (size_t)tok_bytes == size, "token count does not match the size");
        fclose(fp);
    }
    llmc_die_jmp = NULL;
    fuzz_close_all();
    for (size_t i = 0; i < sizeof(SETTINGS) / sizeof(SETTINGS[0]); i++) { run_setting(&SETTINGS[i]); }
    return 0;
}
