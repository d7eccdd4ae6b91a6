/*
 * import_hf.c: a Hugging Face transformers folder -> our model checkpoint.
 *
 *   ./import_hf hf_dir/ model.bin [-dtype fp32|bf16]
 *
 * The reading and its checks are llmc/hf_import.h's (train_gpt, infer_cpu and
 * the GPU programs take the folder straight as -e hf_dir/ too): config.json and
 * model.safetensors, or the shards model.safetensors.index.json names, in BF16,
 * F16 or F32; LlamaForCausalLM and Qwen3ForCausalLM without biases, rope_scaling
 * or sliding windows; anything else is a one-line error naming the field or
 * tensor. An fp32 export imports back to a bit-identical checkpoint.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llmc/checkpoint.h"
#include "llmc/config.h"
#include "llmc/hf_import.h"
#include "llmc/utils.h"

int main(int argc, char** argv) {
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf("usage: %s <hf_dir> <model.bin> [-dtype fp32|bf16]\n", argv[0]);
        return 0;
    }
    if (argc != 3 && argc != 5) { die("usage: %s <hf_dir> <model.bin> [-dtype fp32|bf16]", argv[0]); }
    int dtype = DTYPE_FP32;
    if (argc == 5) {
        if (strcmp(argv[3], "-dtype") != 0) { die("unknown flag '%s' (only -dtype)", argv[3]); }
        if (strcmp(argv[4], "bf16") == 0) { dtype = DTYPE_BF16; }
        else if (strcmp(argv[4], "fp32") != 0) { die("flag -dtype: '%s' is not fp32 or bf16", argv[4]); }
    }
    const char* dir = argv[1];
    const char* out = argv[2];
    if (strlen(dir) > 900) { die("path too long: '%s'", dir); }
    GPTConfig c;
    hf_read_config(dir, &c);
    ParamLayout pl;
    param_layout_init(&pl, &c);
    float* params = (float*)mallocCheck(pl.num_parameters * sizeof(float));
    hf_read_params(dir, &c, params);
    checkpoint_write(out, &c, params, pl.num_parameters, dtype);
    printf("imported %s -> %s (%s, L %d, C %d, NH %d, NKV %d, F %d, V %d, %zu parameters)\n", dir, out,
           c.qk_norm ? "Qwen3ForCausalLM" : "LlamaForCausalLM", c.n_layer, c.n_embd, c.n_head, c.n_kv_head, c.ffn_dim,
           c.vocab_size, pl.num_parameters);
    free(params);
    return 0;
}
