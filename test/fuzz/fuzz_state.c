/*
 * fuzz_state.c: libFuzzer target for the training-state reader
 * (llmc/checkpoint.h): state_read_header, then state_read_body into three
 * buffers of shard_size floats. Oracles: an accepted header is consistent
 * (step >= 0, 0 <= rank < world size, the shard lies inside the model without
 * wrapping around) and the file is exactly header + 3 x 4 x shard_size bytes;
 * die() on bad input is fine (it longjmps back here).
 *
 *   test/fuzz/run_fuzz.sh state          (builds into fuzz-build/ and runs)
 *   fuzz-build/fuzz_state CRASH_FILE     (replays one input)
 */
#include "fuzz_common.h"
#include "llmc/checkpoint.h"

static float* g_master = NULL;  // static: they must survive the longjmp of a die()
static float* g_m = NULL;
static float* g_v = NULL;

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    (void)argc;
    (void)argv;
    fuzz_init("fuzz_state");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz_write_input(data, size);
    jmp_buf jb;
    if (setjmp(jb) == 0) {
        llmc_die_jmp = &jb;
        TrainState s;
        FILE* fp = state_read_header(fuzz_input_path, &s);
        FUZZ_ASSERT(s.step >= 0 && s.world_size >= 1 && s.rank >= 0 && s.rank < s.world_size, "step or rank");
        FUZZ_ASSERT(s.shard_offset <= s.num_parameters && s.shard_size <= s.num_parameters - s.shard_offset,
                    "the shard [offset, offset + size) is not inside the model");
        FUZZ_ASSERT(HEADER_INTS * 4 + 12 * s.shard_size == size, "file size does not match shard_size");
        g_master = (float*)mallocCheck(s.shard_size * sizeof(float));
        g_m = (float*)mallocCheck(s.shard_size * sizeof(float));
        g_v = (float*)mallocCheck(s.shard_size * sizeof(float));
        state_read_body(fp, fuzz_input_path, &s, g_master, g_m, g_v);
        FUZZ_ASSERT(fgetc(fp) == EOF, "bytes after the body");
        fclose(fp);
    }
    llmc_die_jmp = NULL;
    free(g_master);
    free(g_m);
    free(g_v);
    g_master = g_m = g_v = NULL;
    fuzz_close_all();
    return 0;
}
