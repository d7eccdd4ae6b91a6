# Makefile: builds the CPU reference (train_gpt), the GPU programs when nvcc is
# present, the data tools and the tests. `make help` lists the targets.
#
# Flags, and why:
#   -O3            the reference is used for real (small) training runs on CPUs
#   -march=native  lets the matmul's inner loops use the host's widest vectors;
#                  set NATIVE= to build a portable binary
#   -std=gnu11     C11 plus POSIX (fseeko, glob, fsync)
#   -fopenmp       OpenMP threads, when the compiler supports it (detected below)
#   no -ffast-math: it would let the compiler drop the isfinite() checks that
#                  catch non-finite losses, and reorder sums the tests compare
# Variables: CC, NATIVE, NO_OMP=1 (single-threaded), NVCC, GPU_ARCH (default sm_90)

CC ?= gcc
NATIVE ?= -march=native
CFLAGS = -O3 $(NATIVE) -std=gnu11 -Wall -Wextra -Wno-unused-function -I.
LDLIBS = -lm
SAN_FLAGS = -O1 -g -std=gnu11 -Wall -Wextra -Wno-unused-function -I. -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# --- detection (each probe runs through $(shell ...) and is printed) ---------
ifeq ($(NO_OMP),1)
  OMP_FOUND := no (NO_OMP=1)
else
  OMP_FOUND := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes || echo no)
endif
ifeq ($(OMP_FOUND),yes)
  CFLAGS += -fopenmp
  SAN_FLAGS += -fopenmp
endif
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
MPICC := $(shell command -v mpicc 2>/dev/null)
NODE := $(shell command -v node 2>/dev/null)
$(info ---------------------------------------------)
$(info OpenMP: $(OMP_FOUND))
$(info nvcc:   $(if $(NVCC),$(NVCC),not found (GPU programs are skipped)))
$(info MPI:    $(if $(MPICC),$(MPICC),not found (multi-process tests are skipped)))
$(info node:   $(if $(NODE),$(NODE),not found (the tokenizer parity test is skipped)))
$(info ---------------------------------------------)

HEADERS = $(wildcard llmc/*.h)
TEST_BINS = test_gpt test_gradcheck test_kvcache test_dataloader test_checkpoint test_misc test_tokenizer \
            test_tokenizer_parity gen_shard

.PHONY: all test test-san clean help fuzz quickstart dev-cuda

all: train_gpt infer_cpu make_shards

help:
	@echo "make quickstart    prepare the default corpus, train a small model, sample from it"
	@echo "make train_gpt     the CPU reference trainer"
	@echo "make infer_cpu     sampling on the CPU with a KV cache"
	@echo "make make_shards   text files -> token shards"
	@echo "make dev-cuda      the CUDA kernel harnesses of dev/cuda (needs nvcc; run them on a GPU)"
	@echo "make test          every CPU test; ends with 'N passed, N failed'"
	@echo "make test-san      the CPU tests under AddressSanitizer + UBSan"
	@echo "make fuzz          the file-loader fuzzers, for a bounded time"
	@echo "make clean"

train_gpt: train_gpt.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

infer_cpu: infer.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

make_shards: data/make_shards.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

test_gpt: test/test_gpt.c train_gpt.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
test_gradcheck: test/test_gradcheck.c train_gpt.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
test_kvcache: test/test_kvcache.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
test_dataloader: test/test_dataloader.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
test_checkpoint: test/test_checkpoint.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
test_misc: test/test_misc.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
test_tokenizer: test/test_tokenizer.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
test_tokenizer_parity: test/test_tokenizer_parity.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
bench_tokenizer: dev/bench_tokenizer.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
gen_shard: test/gen_shard.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

CPU_TESTS = "./test_gpt" "./test_gradcheck" "./test_kvcache" "./test_dataloader" "./test_checkpoint" "./test_misc" \
            "bash test/test_cli.sh ./train_gpt" "bash data/get_tokenizer.sh && ./test_tokenizer" \
            "bash test/tokenizer_parity.sh ./test_tokenizer_parity" "bash test/test_make_shards.sh ./make_shards" \
            "bash test/test_infer.sh ./infer_cpu"

test: train_gpt infer_cpu make_shards $(TEST_BINS)
	@OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} test/run_tests.sh $(CPU_TESTS)

# the same tests, built with AddressSanitizer + UBSan into build-san/
test-san:
	@mkdir -p build-san
	$(CC) $(SAN_FLAGS) train_gpt.c -o build-san/train_gpt $(LDLIBS)
	$(CC) $(SAN_FLAGS) test/test_gpt.c -o build-san/test_gpt $(LDLIBS)
	$(CC) $(SAN_FLAGS) test/test_gradcheck.c -o build-san/test_gradcheck $(LDLIBS)
	$(CC) $(SAN_FLAGS) test/test_kvcache.c -o build-san/test_kvcache $(LDLIBS)
	$(CC) $(SAN_FLAGS) test/test_dataloader.c -o build-san/test_dataloader $(LDLIBS)
	$(CC) $(SAN_FLAGS) test/test_checkpoint.c -o build-san/test_checkpoint $(LDLIBS)
	$(CC) $(SAN_FLAGS) test/test_misc.c -o build-san/test_misc $(LDLIBS)
	$(CC) $(SAN_FLAGS) test/test_tokenizer.c -o build-san/test_tokenizer $(LDLIBS)
	$(CC) $(SAN_FLAGS) infer.c -o build-san/infer_cpu $(LDLIBS)
	$(CC) $(SAN_FLAGS) data/make_shards.c -o build-san/make_shards $(LDLIBS)
	$(CC) $(SAN_FLAGS) test/gen_shard.c -o build-san/gen_shard $(LDLIBS)
	@bash data/get_tokenizer.sh > /dev/null
	@ASAN_OPTIONS=detect_leaks=0 OMP_NUM_THREADS=2 GEN=build-san/gen_shard test/run_tests.sh \
	  "build-san/test_gpt" "build-san/test_gradcheck" "build-san/test_kvcache" "build-san/test_dataloader" \
	  "build-san/test_checkpoint" "build-san/test_misc" "build-san/test_tokenizer" \
	  "bash test/test_cli.sh build-san/train_gpt" "bash test/test_make_shards.sh build-san/make_shards" \
	  "bash test/test_infer.sh build-san/infer_cpu"

quickstart:
	@bash scripts/quickstart.sh

dev-cuda:
	$(MAKE) -C dev/cuda all NVCC=$(NVCC)

# the file-loader fuzzers (libFuzzer + ASan + UBSan), FUZZ_SECONDS each (default 60);
# needs clang with the libFuzzer runtime: apt-get install -y clang libclang-rt-14-dev
fuzz:
	@bash test/fuzz/run_fuzz.sh

clean:
	rm -rf train_gpt infer_cpu make_shards bench_tokenizer $(TEST_BINS) build-san fuzz-build
