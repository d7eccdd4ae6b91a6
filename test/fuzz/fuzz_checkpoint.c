/*
 * fuzz_checkpoint.c: libFuzzer target for the model checkpoint reader
 * (llmc/checkpoint.h): checkpoint_read_config, then checkpoint_read_params into
 * a buffer the size of the config's parameter count. Oracles: an accepted file
 * has a valid config and exactly header + parameters bytes; die() on bad input
 * is fine (it longjmps back here).
 *
 *   test/fuzz/run_fuzz.sh checkpoint          (builds into fuzz-build/ and runs)
 *   fuzz-build/fuzz_checkpoint CRASH_FILE     (replays one input)
 */
#include "fuzz_common.h"
#include "llmc/checkpoint.h"

static float* g_params = NULL;  // static: it must survive the longjmp of a die()

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    (void)argc;
    (void)argv;
    fuzz_init("fuzz_checkpoint");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz_write_input(data, size);
    jmp_buf jb;
    if (setjmp(jb) == 0) {
        llmc_die_jmp = &jb;
        GPTConfig c;
        int dtype = -1;
        FILE* fp = checkpoint_read_config(fuzz_input_path, &c, &dtype);
        FUZZ_ASSERT(config_validate(&c) == NULL, "invalid config");
        FUZZ_ASSERT(dtype == DTYPE_FP32 || dtype == DTYPE_BF16, "unknown dtype");
        ParamLayout pl;
        param_layout_init(&pl, &c);
        size_t bytes = pl.num_parameters * (dtype == DTYPE_FP32 ? 4 : 2);
        FUZZ_ASSERT(HEADER_INTS * 4 + bytes == size, "file size does not match the config");
        g_params = (float*)mallocCheck(pl.num_parameters * sizeof(float));
        checkpoint_read_params(fp, fuzz_input_path, dtype, g_params, pl.num_parameters);
        FUZZ_ASSERT(fgetc(fp) == EOF, "bytes after the parameters");
        fclose(fp);
        // what a program does next with the config: the sizes must be sane
        FUZZ_ASSERT(model_flops_per_token(&c, c.max_seq_len) > 0.0, "flops");
        FUZZ_ASSERT(c.n_embd / c.n_head * c.n_head == c.n_embd && c.n_head % c.n_kv_head == 0, "head geometry");
    }
    llmc_die_jmp = NULL;
    free(g_params);
    g_params = NULL;
    fuzz_close_all();
    return 0;
}
