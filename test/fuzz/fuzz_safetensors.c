/*
 * fuzz_safetensors.c: libFuzzer target for the safetensors reader
 * (llmc/safetensors.h, and through it the JSON parser of llmc/json.h): st_open,
 * then st_read_f32 of every tensor. Oracles for an accepted file: the tensors,
 * in offset order, cover the data section exactly (no overlap, no hole, nothing
 * past the end), each one's shape x dtype size is its span, names are unique;
 * die() on bad input is fine (it longjmps back here).
 *
 *   test/fuzz/run_fuzz.sh safetensors          (builds into fuzz-build/ and runs)
 *   fuzz-build/fuzz_safetensors CRASH_FILE     (replays one input)
 * Seeds: test/fuzz/corpus/safetensors/ (small files written by st_write).
 */
#include "fuzz_common.h"
#include "llmc/safetensors.h"

static SafeTensors g_st;        // static: it must survive the longjmp of a die()
static float* g_buf = NULL;

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    (void)argc;
    (void)argv;
    fuzz_init("fuzz_safetensors");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz_write_input(data, size);
    memset(&g_st, 0, sizeof(g_st));
    jmp_buf jb;
    if (setjmp(jb) == 0) {
        llmc_die_jmp = &jb;
        st_open(&g_st, fuzz_input_path);
        uint64_t pos = 0;
        for (int i = 0; i < g_st.n; i++) {
            const StTensor* t = &g_st.tensors[i];
            FUZZ_ASSERT(t->begin == pos && t->end >= t->begin, "tensors not contiguous");
            FUZZ_ASSERT(t->numel * st_dtype_size(t->dtype) == t->end - t->begin, "shape x dtype != span");
            FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "dims");
            for (int k = 0; k < i; k++) { FUZZ_ASSERT(strcmp(g_st.tensors[k].name, t->name) != 0, "duplicate name"); }
            pos = t->end;
        }
        FUZZ_ASSERT(g_st.data_start + pos == size, "data not exactly indexed");
        for (int i = 0; i < g_st.n; i++) {
            const StTensor* t = &g_st.tensors[i];
            g_buf = (float*)mallocCheck((size_t)t->numel * sizeof(float));
            st_read_f32(&g_st, t, g_buf);
            free(g_buf);
            g_buf = NULL;
        }
    }
    llmc_die_jmp = NULL;
    free(g_buf);
    g_buf = NULL;
    fuzz_cleaning = 1;  // st_close's fclose of a FILE* that fuzz_close_all may also reach
    fuzz_close_all();
    g_st.fp = NULL;
    st_close(&g_st);
    fuzz_cleaning = 0;
    return 0;
}
