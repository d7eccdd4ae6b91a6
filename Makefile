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
#   -DUSE_MPI      train_gpt joins MPI when started by mpirun/srun (llmc/comm.h);
#                  set when mpicc is found and builds an MPI program; the include
#                  and link flags come from `mpicc --showme` (Open MPI), else
#                  train_gpt is compiled by mpicc itself (MPICH). NO_MPI=1: off
# Variables: CC, NATIVE, NO_OMP=1 (single-threaded), NO_MPI=1, NVCC, GPU_ARCH (default sm_90)

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
MPICC := $(if $(filter 1,$(NO_MPI)),,$(shell command -v mpicc 2>/dev/null))
ifneq ($(MPICC),)
  MPI_FOUND := $(shell printf '\043include <mpi.h>\nint main(int c, char** v){MPI_Init(&c, &v); return MPI_Finalize();}\n' | $(MPICC) -x c - -o /dev/null 2>/dev/null && echo yes || echo no)
endif
ifeq ($(MPI_FOUND),yes)
  MPI_SHOWME := $(shell $(MPICC) --showme:compile 2>/dev/null)
  ifneq ($(MPI_SHOWME),)
    TRAIN_CC := $(CC)
    MPI_CFLAGS := -DUSE_MPI $(MPI_SHOWME)
    MPI_LDLIBS := $(shell $(MPICC) --showme:link 2>/dev/null)
  else
    TRAIN_CC := $(MPICC)
    MPI_CFLAGS := -DUSE_MPI
    MPI_LDLIBS :=
  endif
else
  TRAIN_CC := $(CC)
endif
# NCCL for train_gpt_cuda's multi-GPU backend: nccl.h and libnccl in the CUDA
# toolkit nvcc belongs to, or under NCCL_HOME; probed by compiling and linking a
# call to ncclGetVersion. Without it train_gpt_cuda still builds (one GPU, or
# several ranks over the host-staged MPI backend -cb mpi). NO_NCCL=1: off.
NCCL_HOME ?= $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(NVCC)),/usr/local/cuda)
ifneq ($(filter 1,$(NO_NCCL)),)
  NCCL_FOUND := no (NO_NCCL=1)
else ifneq ($(NVCC),)
  NCCL_FOUND := $(shell printf '\043include <nccl.h>\nint main(void){int v; return ncclGetVersion(&v);}\n' | \
                  $(CXX) -x c++ - -I$(NCCL_HOME)/include -L$(NCCL_HOME)/lib64 -L$(NCCL_HOME)/lib -lnccl -o /dev/null 2>/dev/null && echo yes || echo no)
else
  NCCL_FOUND := no
endif
NODE := $(shell command -v node 2>/dev/null)
$(info ---------------------------------------------)
$(info OpenMP: $(OMP_FOUND))
$(info nvcc:   $(if $(NVCC),$(NVCC),not found (GPU programs are skipped)))
$(info MPI:    $(if $(filter yes,$(MPI_FOUND)),$(MPICC) (train_gpt built with -DUSE_MPI),not found or not working (train_gpt runs one process; test_mpi is skipped)))
$(info NCCL:   $(if $(filter yes,$(NCCL_FOUND)),$(NCCL_HOME) (train_gpt_cuda built with -DUSE_NCCL),$(NCCL_FOUND) (train_gpt_cuda: one GPU or -cb mpi only)))
$(info node:   $(if $(NODE),$(NODE),not found (the tokenizer parity test is skipped)))
$(info ---------------------------------------------)

HEADERS = $(wildcard llmc/*.h)
TEST_BINS = test_gpt test_gradcheck test_kvcache test_dataloader test_checkpoint test_misc test_tokenizer \
            test_tokenizer_parity test_train_tokenizer test_safetensors hf_logits gen_shard

.PHONY: all test test-san clean help fuzz quickstart dev-cuda test-gpu test-emu emu-build emu-san-build

all: train_gpt infer_cpu make_shards train_tokenizer export_hf import_hf

help:
	@echo "make quickstart    prepare the default corpus, train a small model, sample from it"
	@echo "make train_gpt     the CPU reference trainer"
	@echo "make infer_cpu     sampling on the CPU with a KV cache"
	@echo "make infer         sampling on the GPU (needs nvcc; runs on an NVIDIA GPU)"
	@echo "make make_shards   text files -> token shards"
	@echo "make train_tokenizer  text files -> a byte-level BPE tokenizer of your vocabulary size (docs/tokenizer.md)"
	@echo "make dev-cuda      the CUDA kernel harnesses of dev/cuda (needs nvcc; run them on a GPU)"
	@echo "make train_gpt_cuda  the GPU trainer (needs nvcc; runs on an NVIDIA GPU)"
	@echo "make test-gpu      on a GPU: the GPU trainer against the reference, and every dev/cuda check"
	@echo "make test          every CPU test; ends with 'N passed, N failed'"
	@echo "make test-emu      the CUDA code on the CPU (emu/): every kernel, both GPU programs"
	@echo "make test-san      the CPU tests and the emulated suite under AddressSanitizer + UBSan"
	@echo "make fuzz          the file-loader fuzzers, for a bounded time"
	@echo "make clean"

train_gpt: train_gpt.c $(HEADERS)
	$(TRAIN_CC) $(CFLAGS) $(MPI_CFLAGS) $< -o $@ $(LDLIBS) $(MPI_LDLIBS)

infer_cpu: infer.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

make_shards: data/make_shards.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

train_tokenizer: train_tokenizer.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
test_train_tokenizer: test/test_train_tokenizer.c test/test.h $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

# Hugging Face folders out and in (docs/interop.md)
export_hf: export_hf.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
import_hf: import_hf.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
hf_logits: test/hf_logits.c $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
test_safetensors: test/test_safetensors.c test/test.h $(HEADERS)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

test_gpt: test/test_gpt.c test/ref_state.h train_gpt.c $(HEADERS)
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
            "bash test/test_cli.sh ./train_gpt" "bash data/get_tokenizer.sh && bash data/get_tokenizer.sh llama3 && ./test_tokenizer" \
            "bash test/tokenizer_parity.sh ./test_tokenizer_parity" "bash test/test_make_shards.sh ./make_shards" \
            "bash test/test_infer.sh ./infer_cpu" "bash test/test_mpi.sh ./train_gpt" \
            "./test_train_tokenizer ./train_tokenizer" "./test_safetensors" \
            "bash test/test_hf.sh ./export_hf ./import_hf ./hf_logits" "bash test/test_plot.sh ./train_gpt"

test: train_gpt infer_cpu make_shards train_tokenizer export_hf import_hf $(TEST_BINS) emu-build
	@OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} test/run_tests.sh $(CPU_TESTS) $(EMU_TEST)

# the same tests, built with AddressSanitizer + UBSan into build-san/, and the emulated
# suite (quick form, test/test_emu.sh) built with them into build-emu-san/
# (each binary its own target, so that make -j builds them side by side)
SAN_BINS = $(addprefix build-san/,train_gpt test_gpt train_tokenizer test_train_tokenizer test_safetensors export_hf \
             import_hf hf_logits test_gradcheck test_kvcache test_dataloader test_checkpoint test_misc test_tokenizer \
             infer_cpu make_shards gen_shard)
build-san:
	@mkdir -p build-san
build-san/%: %.c $(HEADERS) | build-san
	$(CC) $(SAN_FLAGS) $< -o $@ $(LDLIBS)
build-san/%: test/%.c $(HEADERS) test/test.h | build-san
	$(CC) $(SAN_FLAGS) $< -o $@ $(LDLIBS)
build-san/infer_cpu: infer.c $(HEADERS) | build-san
	$(CC) $(SAN_FLAGS) $< -o $@ $(LDLIBS)
build-san/make_shards: data/make_shards.c $(HEADERS) | build-san
	$(CC) $(SAN_FLAGS) $< -o $@ $(LDLIBS)
emu-san-build:
	@$(MAKE) --no-print-directory emu-build EMU_SAN=1
test-san: $(SAN_BINS) emu-san-build train_gpt
	@bash data/get_tokenizer.sh > /dev/null && bash data/get_tokenizer.sh llama3 > /dev/null
	@ASAN_OPTIONS=detect_leaks=0 OMP_NUM_THREADS=2 GEN=build-san/gen_shard test/run_tests.sh \
	  "build-san/test_gpt" "build-san/test_gradcheck" "build-san/test_kvcache" "build-san/test_dataloader" \
	  "build-san/test_checkpoint" "build-san/test_misc" "build-san/test_tokenizer" \
	  "bash test/test_cli.sh build-san/train_gpt" "bash test/test_make_shards.sh build-san/make_shards" \
	  "bash test/test_infer.sh build-san/infer_cpu" \
	  "build-san/test_train_tokenizer build-san/train_tokenizer" "build-san/test_safetensors" \
	  "bash test/test_hf.sh build-san/export_hf build-san/import_hf build-san/hf_logits" $(EMU_SAN_TEST)

quickstart:
	@bash scripts/quickstart.sh

dev-cuda:
	$(MAKE) -C dev/cuda all NVCC=$(NVCC)

# --- the GPU trainer and its test (nvcc). They link cuBLASLt and the CUDA runtime,
# never libcuda, so they build on machines without a GPU or driver (CI).
#   -arch=$(GPU_ARCH)  sm_90 (H100) by default; GPU_ARCH=sm_80 builds for an A100
#   -std=c++17 -lineinfo, all warnings as errors: as dev/cuda/Makefile
#   -fopenmp -lgomp    the host side includes llmc/gpt_cpu.h (SPEC init, RoPE tables)
GPU_ARCH ?= sm_90
NVCC_FLAGS = -O3 -arch=$(GPU_ARCH) -std=c++17 -lineinfo -I. -Xcompiler -Wall,-Wextra,-Wno-unused-function,-fopenmp \
             -Werror all-warnings
NVCC_LDLIBS = -lcublasLt -lgomp
#   -DUSE_MPI, -DUSE_NCCL  the trainer's data-parallel backends (llmc/comm_gpu.cuh), when
#                  detected above; MPI's -I/-L/-l flags from `mpicc --showme` (Open MPI)
GPU_COMM_FLAGS = $(if $(MPI_SHOWME),-DUSE_MPI $(filter -I%,$(MPI_SHOWME))) \
                 $(if $(filter yes,$(NCCL_FOUND)),-DUSE_NCCL -I$(NCCL_HOME)/include)
GPU_COMM_LDLIBS = $(if $(MPI_SHOWME),$(filter -L% -l%,$(MPI_LDLIBS))) \
                  $(if $(filter yes,$(NCCL_FOUND)),-L$(NCCL_HOME)/lib64 -L$(NCCL_HOME)/lib -lnccl)
CUDA_HEADERS = $(wildcard llmc/*.cuh)
DEV_CUDA_BINS = rmsnorm_residual swiglu adamw classifier qknorm_rope attention encoder matmul decode

train_gpt_cuda: train_gpt.cu $(HEADERS) $(CUDA_HEADERS)
	$(NVCC) $(NVCC_FLAGS) $(GPU_COMM_FLAGS) $< -o $@ $(NVCC_LDLIBS) $(GPU_COMM_LDLIBS)
test_gpt_cuda: test/test_gpt.cu test/ref_state.h train_gpt.cu test/test.h $(HEADERS) $(CUDA_HEADERS)
	$(NVCC) $(NVCC_FLAGS) $< -o $@ $(NVCC_LDLIBS)

# the GPU sampler and its checks against the CPU model (test/test_infer_gpu.sh runs both)
infer: infer.cu $(HEADERS) $(CUDA_HEADERS)
	$(NVCC) $(NVCC_FLAGS) $< -o $@ $(NVCC_LDLIBS)
test_infer_gpu: test/test_infer_gpu.cu infer.cu $(HEADERS) $(CUDA_HEADERS)
	$(NVCC) $(NVCC_FLAGS) $< -o $@ $(NVCC_LDLIBS)

# on a GPU machine: the trainer against the PyTorch reference, then every dev/cuda harness
test-gpu: train_gpt_cuda test_gpt_cuda infer test_infer_gpu infer_cpu train_gpt gen_shard
	$(MAKE) -C dev/cuda all NVCC=$(NVCC) GPU_ARCH=$(GPU_ARCH)
	@test/run_tests.sh "./test_gpt_cuda" $(foreach b,$(DEV_CUDA_BINS),"./dev/cuda/bin/$(b)") \
	  "bash test/test_infer_gpu.sh ./infer ./test_infer_gpu ./infer_cpu" "bash test/test_mpi_gpu.sh ./train_gpt_cuda"

# --- the CUDA code on the CPU (emu/, docs/emu.md): the same .cu sources compiled by
# the host C++ compiler against the emulation backend, no libcudart and no driver.
# Needs only the toolkit's headers (cuda_runtime.h, cuda_bf16.h, cublasLt.h): found
# next to nvcc, or under CUDA_HOME. `make test-emu` builds and runs, at small
# shapes: every dev/cuda check, test_gpt.cu, test_infer_gpu.cu, and train_gpt.cu /
# infer.cu against the CPU programs (test/test_emu.sh); `make test` runs it.
#   -O2 -g1          the emulated kernels run for real in the tests; -g1: line tables for
#                    the sanitizer and debugger backtraces at no build cost (-g costs 40%)
#   -fno-strict-aliasing  the kernels reinterpret bytes (Packed128, fragments) as the GPU allows
#   EMU_SAN=1        the same under AddressSanitizer + UBSan, into build-emu-san/ (make test-san)
CUDA_HOME ?= $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(NVCC)),/usr/local/cuda)
EMU_FOUND := $(shell test -f $(CUDA_HOME)/include/cuda_runtime.h -a -f $(CUDA_HOME)/include/cublasLt.h && echo yes || echo no)
EMU_DIR := $(if $(filter 1,$(EMU_SAN)),build-emu-san,build-emu)
EMU_CXXFLAGS = -std=c++17 -g1 -fopenmp -fno-strict-aliasing -I. -I$(CUDA_HOME)/include -DLLMC_EMU \
               -Wall -Wextra -Wno-unused-function -Wno-unknown-pragmas -Werror -fno-extern-tls-init \
               $(if $(filter 1,$(EMU_SAN)),$(EMU_SAN_FLAGS),-O2)
EMU_SAN_FLAGS = -O2 -fsanitize=address,undefined -fno-sanitize=null -fno-omit-frame-pointer -fno-sanitize-recover=undefined
EMU_CU = -x c++ -include emu/cuda_emu.h
EMU_LIB = $(EMU_DIR)/emu.o $(EMU_DIR)/cublaslt.o $(EMU_DIR)/dyn_smem.o
# the emulated trainer's data parallelism: with Open MPI, -DUSE_MPI and -DUSE_NCCL
# against emu/include/nccl.h (first on the include path), implemented by
# emu/nccl.cpp over MPI; every device of an mpirun job is the CPU of its process
EMU_MPI := $(if $(MPI_SHOWME),yes,no)
EMU_COMM_FLAGS = $(if $(filter yes,$(EMU_MPI)),-Iemu/include -DUSE_MPI -DUSE_NCCL -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX $(filter -I%,$(MPI_SHOWME)))
EMU_COMM_LIB = $(if $(filter yes,$(EMU_MPI)),$(EMU_DIR)/nccl.o $(filter -L% -l%,$(MPI_LDLIBS)))
EMU_SOURCES = $(wildcard llmc/*.cuh dev/cuda/*.cu test/*.cu) train_gpt.cu infer.cu emu/test_emu.cu
EMU_BINS = $(addprefix $(EMU_DIR)/,$(DEV_CUDA_BINS) test_emu test_gpt_cuda test_infer_gpu train_gpt_cuda infer)

$(EMU_DIR)/emu.o: emu/emu.cpp emu/cuda_emu.h emu/ptx.h | $(EMU_DIR)/
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@
$(EMU_DIR)/cublaslt.o: emu/cublaslt.cpp | $(EMU_DIR)/
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@
$(EMU_DIR)/nccl.o: emu/nccl.cpp emu/include/nccl.h | $(EMU_DIR)/
	$(CXX) $(EMU_COMM_FLAGS) $(EMU_CXXFLAGS) -c $< -o $@
$(EMU_DIR)/dyn_smem.o: $(EMU_SOURCES) emu/gen_dyn_smem.sh | $(EMU_DIR)/
	bash emu/gen_dyn_smem.sh $(EMU_DIR)/dyn_smem.cpp $(EMU_SOURCES)
	$(CXX) $(EMU_CXXFLAGS) -c $(EMU_DIR)/dyn_smem.cpp -o $@
$(EMU_DIR)/:
	mkdir -p $@
$(addprefix $(EMU_DIR)/,$(DEV_CUDA_BINS)): $(EMU_DIR)/%: dev/cuda/%.cu dev/cuda/common.h $(HEADERS) $(CUDA_HEADERS) $(EMU_LIB) emu/cuda_emu.h emu/ptx.h
	$(CXX) $(EMU_CXXFLAGS) $(EMU_CU) $< -x none $(EMU_LIB) -o $@
$(EMU_DIR)/test_emu: emu/test_emu.cu $(CUDA_HEADERS) $(EMU_LIB) emu/cuda_emu.h emu/ptx.h
	$(CXX) $(EMU_CXXFLAGS) $(EMU_CU) $< -x none $(EMU_LIB) -o $@
$(EMU_DIR)/test_gpt_cuda: test/test_gpt.cu test/ref_state.h test/test.h train_gpt.cu $(HEADERS) $(CUDA_HEADERS) $(EMU_LIB) emu/cuda_emu.h
	$(CXX) $(EMU_CXXFLAGS) $(EMU_CU) $< -x none $(EMU_LIB) -o $@
$(EMU_DIR)/test_infer_gpu: test/test_infer_gpu.cu infer.cu $(HEADERS) $(CUDA_HEADERS) $(EMU_LIB) emu/cuda_emu.h
	$(CXX) $(EMU_CXXFLAGS) $(EMU_CU) $< -x none $(EMU_LIB) -o $@
$(EMU_DIR)/train_gpt_cuda: train_gpt.cu $(HEADERS) $(CUDA_HEADERS) $(EMU_LIB) emu/cuda_emu.h $(if $(filter yes,$(EMU_MPI)),$(EMU_DIR)/nccl.o emu/include/nccl.h)
	$(CXX) $(EMU_COMM_FLAGS) $(EMU_CXXFLAGS) $(EMU_CU) $< -x none $(EMU_LIB) $(EMU_COMM_LIB) -o $@
$(EMU_DIR)/infer: infer.cu $(HEADERS) $(CUDA_HEADERS) $(EMU_LIB) emu/cuda_emu.h
	$(CXX) $(EMU_CXXFLAGS) $(EMU_CU) $< -x none $(EMU_LIB) -o $@

# the emulated suite as one entry of test/run_tests.sh (test, test-san)
EMU_TEST = $(if $(filter yes,$(EMU_FOUND)),"bash test/test_emu.sh build-emu" "bash test/test_mpi_gpu.sh build-emu/train_gpt_cuda" "bash scripts/gpu_check.sh --smoke")
# (the CPU reference run by the optimized train_gpt: the sanitizers are there for the GPU code;
# train_gpt.c under ASan runs in test_cli.sh and test_gpt)
EMU_SAN_TEST = $(if $(filter yes,$(EMU_FOUND)),"EMU_QUICK=1 TRAIN=./train_gpt bash test/test_emu.sh build-emu-san")

emu-build:
ifeq ($(EMU_FOUND),yes)
	@$(MAKE) --no-print-directory $(EMU_BINS)
else
	@echo "emu: no CUDA toolkit headers under $(CUDA_HOME)/include: the emulated build is skipped"
endif

test-emu: train_gpt infer_cpu gen_shard
ifeq ($(EMU_FOUND),yes)
	@$(MAKE) --no-print-directory $(EMU_BINS)
	@OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} test/run_tests.sh "bash test/test_emu.sh $(EMU_DIR)" \
	  "bash test/test_mpi_gpu.sh $(EMU_DIR)/train_gpt_cuda"
else
	@echo "emu: no CUDA toolkit headers under $(CUDA_HOME)/include: the emulated suite is skipped"
	@echo "emu: 0 passed, 0 failed"
endif

# the file-loader fuzzers (libFuzzer + ASan + UBSan), FUZZ_SECONDS each (default 60);
# needs clang with the libFuzzer runtime: apt-get install -y clang libclang-rt-14-dev
fuzz:
	@bash test/fuzz/run_fuzz.sh

clean:
	rm -rf train_gpt infer_cpu make_shards train_tokenizer export_hf import_hf hf_logits bench_tokenizer $(TEST_BINS) build-san build-emu build-emu-san fuzz-build train_gpt_cuda test_gpt_cuda infer test_infer_gpu
