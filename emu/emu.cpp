/*
emu/emu.cpp: the CUDA runtime of the emulated build (see emu/cuda_emu.h).

  - the runtime API the project calls, with the toolkit's cuda_runtime_api.h
    signatures: memory (host malloc, a registry of device ranges), copies and
    memsets with their directions checked, streams (work runs in stream order,
    at once; or deferred and interleaved, EMU_STREAMS below), events, host
    functions, stream capture and graph replay, device properties of an H100,
    function attributes, occupancy, the sticky launch error;
  - launches: the H100's limits on the configuration and on shared memory
    (static bytes read from this executable's symbol table, see smem_of), then
    the grid: blocks over the OpenMP threads, the threads of a block as fibers
    scheduled in EMU_ORDER between their barriers and warp collectives;
  - the warp collectives, barriers and cp.async of cuda_emu.h.
Environment: EMU_ORDER=forward|reverse|random:SEED (default forward),
EMU_POISON=1 (fresh device and shared memory filled with 0xff bytes: NaN as
float and as bf16), EMU_VERBOSE=1 (one line per launch on stderr),
EMU_STREAMS=serial|random:SEED (default serial: stream work runs at the call;
random: it is queued per stream and run at the synchronizing calls, the ready
heads of the queues in a seeded random order that respects only stream order,
events and the legacy default stream, so a missing event wait changes a result).
*/
#include "cuda_emu.h"

#include <cxxabi.h>
#include <elf.h>
#include <omp.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

// the H100 (SXM5) numbers the code may size itself by
#define EMU_SMEM_DEFAULT (48 * 1024)       // per block without opting in
#define EMU_SMEM_OPTIN (227 * 1024)        // cudaDevAttrMaxSharedMemoryPerBlockOptin
#define EMU_SMEM_PER_SM (228 * 1024)
#define EMU_SMEM_RESERVED 1024             // per block, by the system
#define EMU_NUM_SMS 132
#define EMU_GLOBAL_MEM (80ull << 30)
#define EMU_MAX_THREADS 1024
#define EMU_FIBER_STACK (256 * 1024)

// dynamic shared memory: emu/gen_dyn_smem.sh defines every `extern __shared__` array of a
// program as a thread_local buffer of EMU_SMEM_OPTIN bytes and this function, which gives
// the calling OS thread's buffers (weak: a program without such arrays has none)
extern "C" int emu_dyn_smem_buffers(unsigned char** out, int max) __attribute__((weak));
// the anchor of this executable's TLS block: symbol offsets of thread_local variables are
// relative to the same block, so &anchor - offset(anchor) + offset(x) is this thread's &x
extern "C" {
thread_local char emu_tls_anchor;
void emu_text_anchor(void) {}
}

namespace emu {

thread_local ThreadRegs* t_regs = nullptr;
thread_local BlockRegs* t_bregs = nullptr;

// ----------------------------------------------------------------------------
// settings from the environment

enum Order { ORDER_FORWARD, ORDER_REVERSE, ORDER_RANDOM };
struct Settings {
    Order order;
    uint64_t seed;
    int poison;
    int verbose;
};
static Settings settings() {
    static Settings s = [] {
        Settings r = {ORDER_FORWARD, 0, 0, 0};
        const char* o = getenv("EMU_ORDER");
        if (o && *o) {
            if (!strcmp(o, "forward")) {
                r.order = ORDER_FORWARD;
            } else if (!strcmp(o, "reverse")) {
                r.order = ORDER_REVERSE;
            } else if (!strncmp(o, "random", 6)) {
                r.order = ORDER_RANDOM;
                r.seed = o[6] == ':' ? strtoull(o + 7, nullptr, 10) : 1;
            } else {
                fprintf(stderr, "emu: EMU_ORDER=%s: expected forward, reverse or random:SEED\n", o);
                exit(1);
            }
        }
        const char* p = getenv("EMU_POISON");
        r.poison = p && *p && strcmp(p, "0") != 0;
        const char* v = getenv("EMU_VERBOSE");
        r.verbose = v && *v && strcmp(v, "0") != 0;
        return r;
    }();
    return s;
}

static uint64_t splitmix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// ----------------------------------------------------------------------------
// device memory: host malloc, registered

enum AllocKind { ALLOC_DEVICE, ALLOC_PINNED };
struct Alloc {
    size_t size;
    AllocKind kind;
};
static std::mutex g_mem_mu;
static std::map<uintptr_t, Alloc> g_allocs;  // start -> allocation
static size_t g_device_bytes = 0;

// the allocation that [p, p + n) lies in, or null
static const Alloc* find_alloc(const void* p, size_t n, uintptr_t* start) {
    uintptr_t a = (uintptr_t)p;
    auto it = g_allocs.upper_bound(a);
    if (it == g_allocs.begin()) { return nullptr; }
    --it;
    if (a < it->first || a + n > it->first + it->second.size || a + n < a) { return nullptr; }
    if (start) { *start = it->first; }
    return &it->second;
}
bool is_device_range(const void* p, size_t n) {
    std::lock_guard<std::mutex> lk(g_mem_mu);
    return find_alloc(p, n ? n : 1, nullptr) != nullptr;
}

}  // namespace emu

extern "C" int emu_check_device_range(const void* p, size_t bytes, const char* what) {
    if (emu::is_device_range(p, bytes)) { return 0; }
    fprintf(stderr, "emu: error: %s: [%p, +%zu bytes) is not device memory\n", what, p, bytes);
    return 1;
}

namespace emu {

// ----------------------------------------------------------------------------
// the last error (per host thread, as the runtime keeps it)

static thread_local cudaError_t t_last_error = cudaSuccess;
static cudaError_t set_error(cudaError_t e) {
    if (e != cudaSuccess) { t_last_error = e; }
    return e;
}

// ----------------------------------------------------------------------------
// this executable's symbols: the static __shared__ variables of each kernel

struct TlsVar {
    std::string name;  // mangled, e.g. _ZZL15my_kernelPfE3buf
    uint64_t offset;   // in the TLS block
    uint64_t size;
};
struct Symbols {
    bool ok;
    uint64_t anchor_tls;                        // st_value of emu_tls_anchor
    int64_t text_bias;                          // runtime address - st_value of functions
    std::unordered_map<uint64_t, std::string> funcs;  // st_value -> mangled name
    std::vector<TlsVar> shared;                 // every function-local thread_local (= __shared__)
};
static const Symbols& symbols() {
    static Symbols s = [] {
        Symbols r;
        r.ok = false;
        r.anchor_tls = 0;
        r.text_bias = 0;
        FILE* f = fopen("/proc/self/exe", "rb");
        if (!f) { return r; }
        std::vector<unsigned char> img;
        unsigned char buf[1 << 16];
        size_t got;
        while ((got = fread(buf, 1, sizeof(buf), f)) > 0) { img.insert(img.end(), buf, buf + got); }
        fclose(f);
        if (img.size() < sizeof(Elf64_Ehdr)) { return r; }
        const Elf64_Ehdr* eh = (const Elf64_Ehdr*)img.data();
        if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64) { return r; }
        if (eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > img.size()) { return r; }
        const Elf64_Shdr* sh = (const Elf64_Shdr*)(img.data() + eh->e_shoff);
        bool have_anchor = false, have_text = false;
        uint64_t text_value = 0;
        for (int i = 0; i < eh->e_shnum; i++) {
            if (sh[i].sh_type != SHT_SYMTAB) { continue; }
            const Elf64_Shdr& strs = sh[sh[i].sh_link];
            const Elf64_Sym* sym = (const Elf64_Sym*)(img.data() + sh[i].sh_offset);
            size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
            const char* str = (const char*)img.data() + strs.sh_offset;
            for (size_t j = 0; j < n; j++) {
                const char* name = str + sym[j].st_name;
                int type = ELF64_ST_TYPE(sym[j].st_info);
                if (type == STT_TLS) {
                    if (!strcmp(name, "emu_tls_anchor")) {
                        r.anchor_tls = sym[j].st_value;
                        have_anchor = true;
                    } else if (!strncmp(name, "_ZZ", 3)) {
                        r.shared.push_back({name, sym[j].st_value, sym[j].st_size});
                    }
                } else if (type == STT_FUNC && sym[j].st_value) {
                    if (!strcmp(name, "emu_text_anchor")) {
                        text_value = sym[j].st_value;
                        have_text = true;
                    }
                    r.funcs.emplace(sym[j].st_value, name);
                }
            }
        }
        if (have_anchor && have_text) {
            r.text_bias = (int64_t)((uintptr_t)&emu_text_anchor - text_value);
            r.ok = true;
        }
        return r;
    }();
    return s;
}

// what the runtime knows of one kernel: static shared bytes (and where they live), the
// maximum dynamic shared size it was opted in to
struct FuncInfo {
    bool scanned;
    size_t static_smem;
    std::vector<std::pair<uint64_t, uint64_t>> vars;  // TLS offset, size
    size_t max_dyn_smem;
};
static std::mutex g_func_mu;
static std::unordered_map<const void*, FuncInfo> g_funcs;

static FuncInfo& func_info(const void* func) {
    std::lock_guard<std::mutex> lk(g_func_mu);
    FuncInfo& fi = g_funcs[func];
    if (!fi.scanned) {
        fi.scanned = true;
        fi.static_smem = 0;
        fi.max_dyn_smem = EMU_SMEM_DEFAULT;
        const Symbols& s = symbols();
        if (s.ok) {
            auto it = s.funcs.find((uint64_t)((uintptr_t)func - s.text_bias));
            if (it != s.funcs.end() && it->second.size() > 2 && !strncmp(it->second.c_str(), "_Z", 2)) {
                // a local static of function _Z<enc> is mangled _ZZ<enc>E<name>
                std::string prefix = "_ZZ" + it->second.substr(2) + "E";
                for (const TlsVar& v : s.shared) {
                    if (!v.name.compare(0, prefix.size(), prefix)) {
                        size_t align = v.size >= 16 ? 16 : (v.size >= 8 ? 8 : 4);
                        fi.static_smem = (fi.static_smem + align - 1) / align * align + v.size;
                        fi.vars.push_back({v.offset, v.size});
                    }
                }
            }
        }
        fi.max_dyn_smem = EMU_SMEM_DEFAULT > fi.static_smem ? EMU_SMEM_DEFAULT - fi.static_smem : 0;
    }
    return fi;
}

// ----------------------------------------------------------------------------
// fibers: our own context switch (x86-64 System V); callee-saved registers, mxcsr and the
// x87 control word are saved on the switching stack

extern "C" void emu_ctx_switch(void** save_sp, void* load_sp);
extern "C" void emu_fiber_trampoline(void);
__asm__(
    ".text\n"
    ".globl emu_ctx_switch\n"
    ".type emu_ctx_switch,@function\n"
    "emu_ctx_switch:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    subq $8, %rsp\n"
    "    stmxcsr (%rsp)\n"
    "    fnstcw 4(%rsp)\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    ldmxcsr (%rsp)\n"
    "    fldcw 4(%rsp)\n"
    "    addq $8, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    ".size emu_ctx_switch, .-emu_ctx_switch\n"
    ".globl emu_fiber_trampoline\n"
    ".type emu_fiber_trampoline,@function\n"
    "emu_fiber_trampoline:\n"
    "    movq %r12, %rdi\n"
    "    call emu_fiber_main\n"
    "    ud2\n"
    ".size emu_fiber_trampoline, .-emu_fiber_trampoline\n");

enum FiberState { F_READY, F_BARRIER, F_WARP, F_DONE };
struct CpOp {
    void* dst;
    int bytes;
    int group;
    unsigned char data[16];
};
struct Fiber {
    void* sp;
    char* stack;  // lowest usable byte
    ThreadRegs regs;
    FiberState state;
    const char* bar_file;
    int bar_line;
    int bar_pred;
    // the warp collective it waits in
    const char* coll_what;
    unsigned coll_mask;
    // cp.async: ops not yet landed, the group the next op joins
    std::vector<CpOp> cp_ops;
    int cp_group;
#ifdef EMU_ASAN
    void* fake_stack;
#endif
};

struct LaunchRec;
// one OS thread's block scheduler and its fibers (kept between blocks and launches)
struct Sched {
    void* sp;
    Fiber* fibers;
    char* stacks;
    // warp-collective operands and results, by linear thread index: a warp's 32 slots are
    // contiguous, so the last lane to arrive combines them in place
    CollSlot* coll_in;
    CollSlot* coll_out;
    // per warp: the lanes waiting in a collective, and whether they all wait in the same one
    // (wait_mask, wait_what): then a lane joining with that mask needs no scan of the warp
    unsigned wait_lanes[32];
    unsigned wait_mask[32];
    const char* wait_what[32];
    bool wait_uniform[32];
    int n;  // threads of the current block
    BlockRegs bregs;
    const LaunchRec* launch;
    int ndone, nbarrier;
    unsigned long long round;
    std::vector<int> order;
    uint64_t rng;
#ifdef EMU_ASAN
    void* fake_stack;
    const void* stack_bottom;
    size_t stack_size;
#endif
};
static thread_local Sched* t_sched = nullptr;
static thread_local Fiber* t_fiber = nullptr;

struct LaunchRec {
    const void* func;
    std::string name;
    dim3 grid, block;
    size_t smem;
    KernelBody* body;
    std::string where;  // file:line of the launch
};

static Sched* sched_get() {
    if (t_sched) { return t_sched; }
    Sched* s = new Sched();
    s->fibers = new Fiber[EMU_MAX_THREADS]();
    s->coll_in = new CollSlot[EMU_MAX_THREADS]();
    s->coll_out = new CollSlot[EMU_MAX_THREADS]();
    size_t page = (size_t)sysconf(_SC_PAGESIZE), per = EMU_FIBER_STACK + page;
    s->stacks = (char*)mmap(nullptr, per * EMU_MAX_THREADS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                            -1, 0);
    if (s->stacks == MAP_FAILED) {
        fprintf(stderr, "emu: error: cannot map %zu bytes of fiber stacks\n", per * EMU_MAX_THREADS);
        exit(1);
    }
    for (int i = 0; i < EMU_MAX_THREADS; i++) {
        mprotect(s->stacks + i * per, page, PROT_NONE);  // guard page below each stack
        s->fibers[i].stack = s->stacks + i * per + page;
    }
    t_sched = s;
    return s;
}

static void switch_to_fiber(Sched* s, Fiber* f) {
    t_fiber = f;
    t_regs = &f->regs;
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(&s->fake_stack, f->stack, EMU_FIBER_STACK);
#endif
    emu_ctx_switch(&s->sp, f->sp);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(s->fake_stack, nullptr, nullptr);
#endif
    t_fiber = nullptr;
    t_regs = nullptr;
}
// back to the scheduler; returns when the scheduler runs this fiber again
static void yield_fiber(Fiber* f) {
    Sched* s = t_sched;
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(f->state == F_DONE ? nullptr : &f->fake_stack, s->stack_bottom, s->stack_size);
#endif
    emu_ctx_switch(&f->sp, s->sp);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(f->fake_stack, &s->stack_bottom, &s->stack_size);
#endif
}

static void cp_land(Fiber* f, int upto_group);

}  // namespace emu

extern "C" void emu_fiber_main(emu::Fiber* f) {
    using namespace emu;
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &t_sched->stack_bottom, &t_sched->stack_size);
#endif
    t_sched->launch->body->run();
    cp_land(f, 1 << 30);  // copies never waited for land when the thread exits
    f->state = F_DONE;
    t_sched->ndone++;
    yield_fiber(f);
    __builtin_unreachable();
}

namespace emu {

static void fiber_init(Fiber* f) {
    // the first switch into the fiber pops: mxcsr/fpu word, r15, r14, r13, r12 (= f), rbx, rbp,
    // then returns into the trampoline with rsp at the 16-byte aligned top
    uint64_t* top = (uint64_t*)(((uintptr_t)(f->stack + EMU_FIBER_STACK)) & ~(uintptr_t)15);
    uint64_t* sp = top - 8;
    uint32_t ctl[2] = {0x1F80u, 0x037Fu};
    memcpy(&sp[0], ctl, 8);
    sp[1] = 0;
    sp[2] = 0;
    sp[3] = 0;
    sp[4] = (uint64_t)(uintptr_t)f;
    sp[5] = 0;
    sp[6] = 0;
    sp[7] = (uint64_t)(uintptr_t)&emu_fiber_trampoline;
    f->sp = sp;
    f->state = F_READY;
    f->cp_ops.clear();
    f->cp_group = 0;
    f->coll_what = nullptr;
#ifdef EMU_ASAN
    f->fake_stack = nullptr;
#endif
}

// ----------------------------------------------------------------------------
// errors inside a kernel

void kernel_error(const char* fmt, ...) {
    Sched* s = t_sched;
    fflush(stdout);
    if (s && s->launch) {
        fprintf(stderr, "emu: error in kernel %s (launched at %s), block (%u,%u,%u)", s->launch->name.c_str(),
                s->launch->where.c_str(), s->bregs.bidx.x, s->bregs.bidx.y, s->bregs.bidx.z);
        if (t_fiber) {
            fprintf(stderr, " thread (%u,%u,%u)", t_fiber->regs.tidx.x, t_fiber->regs.tidx.y, t_fiber->regs.tidx.z);
        }
        fprintf(stderr, ": ");
    } else {
        fprintf(stderr, "emu: error: ");
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    _Exit(1);
}

static Fiber* current_fiber(const char* what) {
    if (!t_fiber) {
        fprintf(stderr, "emu: error: %s called outside a kernel\n", what);
        exit(1);
    }
    return t_fiber;
}

// ----------------------------------------------------------------------------
// barriers

int syncthreads_count(int pred, const char* file, int line) {
    Fiber* f = current_fiber("__syncthreads");
    Sched* s = t_sched;
    f->state = F_BARRIER;
    f->bar_file = file;
    f->bar_line = line;
    f->bar_pred = pred != 0;
    s->nbarrier++;
    yield_fiber(f);
    return f->bar_pred;  // the scheduler leaves the block's count here
}
void syncthreads(const char* file, int line) { syncthreads_count(0, file, line); }

// ----------------------------------------------------------------------------
// warp collectives

void warp_collective(unsigned mask, const char* what, const void* in, size_t in_bytes, void* out, size_t out_bytes,
                     CombineFn combine) {
    Fiber* f = current_fiber(what);
    Sched* s = t_sched;
    int lane = f->regs.lane, warp = f->regs.warp;
    if (!((mask >> lane) & 1u)) { kernel_error("%s with mask 0x%08x, which excludes the calling lane %d", what, mask, lane); }
    int nwarp_lanes = std::min(32, s->n - warp * 32);
    unsigned exists = nwarp_lanes == 32 ? 0xffffffffu : ((1u << nwarp_lanes) - 1u);
    if (mask & ~exists) {
        kernel_error("%s with mask 0x%08x: lanes beyond the block's %d threads", what, mask, s->n);
    }
    if (in_bytes > sizeof(CollSlot) || out_bytes > sizeof(CollSlot)) { kernel_error("%s: operands over 64 bytes", what); }
    int lin0 = warp * 32;
    if (in_bytes) { memcpy(s->coll_in[lin0 + lane], in, in_bytes); }
    Fiber* w = s->fibers + warp * 32;
    unsigned arrived = 1u << lane;
    if (s->wait_lanes[warp] == 0) {
        s->wait_mask[warp] = mask;
        s->wait_what[warp] = what;
        s->wait_uniform[warp] = true;
    } else if (s->wait_uniform[warp] && s->wait_mask[warp] == mask && s->wait_what[warp] == what) {
        arrived |= s->wait_lanes[warp];  // the fast path: every waiting lane is in this very operation
    } else {
        // the lanes of the mask that already wait: they must wait in the same operation and mask
        for (int l = 0; l < nwarp_lanes; l++) {
            if (l == lane || w[l].state != F_WARP) { continue; }
            bool overlap = ((w[l].coll_mask >> lane) & 1u) || ((mask >> l) & 1u);
            if (!overlap) { continue; }
            if (w[l].coll_mask != mask || w[l].coll_what != what) {
                kernel_error("warp %d diverged: lane %d calls %s with mask 0x%08x while lane %d waits in %s with mask 0x%08x",
                             warp, lane, what, mask, l, w[l].coll_what, w[l].coll_mask);
            }
            arrived |= 1u << l;
        }
        s->wait_uniform[warp] = false;  // lanes of disjoint masks wait in different operations
    }
    if (arrived != mask) {
        f->state = F_WARP;
        f->coll_mask = mask;
        f->coll_what = what;
        s->wait_lanes[warp] |= 1u << lane;
        yield_fiber(f);  // the last lane to arrive completes the operation
    } else {
        combine(mask, s->coll_in + lin0, s->coll_out + lin0);
        s->wait_lanes[warp] &= ~mask;
        for (int l = 0; l < 32; l++) {
            if (!((mask >> l) & 1u)) { continue; }
            if (l != lane) {
                w[l].state = F_READY;
                w[l].coll_what = nullptr;
            }
        }
    }
    if (out_bytes) { memcpy(out, s->coll_out[lin0 + lane], out_bytes); }
}

// ----------------------------------------------------------------------------
// cp.async

void cp_async(void* dst, const void* src, int bytes, int src_bytes) {
    Fiber* f = current_fiber("cp.async");
    if (bytes != 4 && bytes != 8 && bytes != 16) { kernel_error("cp.async of %d bytes (4, 8 or 16)", bytes); }
    if (src_bytes < 0 || src_bytes > bytes) { kernel_error("cp.async src-size %d of %d bytes", src_bytes, bytes); }
    if ((uintptr_t)dst % bytes || (src_bytes && (uintptr_t)src % bytes)) {
        kernel_error("cp.async of %d bytes: misaligned address (dst %p, src %p)", bytes, dst, src);
    }
    CpOp op;
    op.dst = dst;
    op.bytes = bytes;
    op.group = f->cp_group;
    memset(op.data, 0, sizeof(op.data));
    if (src_bytes) { memcpy(op.data, src, src_bytes); }
    // From issue to wait_group the destination's bytes are undefined: the copy may land at any
    // moment in between. They read as poison (0xff, a NaN) until the wait, so a reader that
    // is too early (no wait) and a reader of the old contents that is too late (a missing
    // barrier before a refill: write-after-read) both see NaN, in every thread order.
    memset(dst, 0xff, (size_t)bytes);
    f->cp_ops.push_back(op);
}
void cp_async_commit() { current_fiber("cp.async.commit_group")->cp_group++; }
// lands every op of a committed group older than upto_group
static void cp_land(Fiber* f, int upto_group) {
    size_t keep = 0;
    for (size_t i = 0; i < f->cp_ops.size(); i++) {
        CpOp& op = f->cp_ops[i];
        if (op.group < upto_group) {
            memcpy(op.dst, op.data, op.bytes);
        } else {
            f->cp_ops[keep++] = op;
        }
    }
    f->cp_ops.resize(keep);
}
void cp_async_wait(int n) {
    Fiber* f = current_fiber("cp.async.wait_group");
    // committed groups are 0 .. cp_group-1; all but the newest n must be complete
    cp_land(f, f->cp_group - n);
}

// ----------------------------------------------------------------------------
// running one block

static void shuffle_order(Sched* s) {
    int n = s->n;
    s->order.resize(n);
    Order o = settings().order;
    for (int i = 0; i < n; i++) { s->order[i] = o == ORDER_REVERSE ? n - 1 - i : i; }
    if (o == ORDER_RANDOM) {
        for (int i = n - 1; i > 0; i--) {
            s->rng = splitmix(s->rng);
            int j = (int)(s->rng % (uint64_t)(i + 1));
            std::swap(s->order[i], s->order[j]);
        }
    }
}

static const char* fiber_where(const Fiber* f, char* buf, size_t n) {
    switch (f->state) {
        case F_DONE: snprintf(buf, n, "exited"); break;
        case F_BARRIER: snprintf(buf, n, "waits at __syncthreads (%s:%d)", f->bar_file, f->bar_line); break;
        case F_WARP: snprintf(buf, n, "waits in %s (mask 0x%08x)", f->coll_what, f->coll_mask); break;
        default: snprintf(buf, n, "ready"); break;
    }
    return buf;
}

static void report_deadlock(Sched* s) {
    char a[256], b[256];
    for (int i = 0; i < s->n; i++) {
        Fiber* f = s->fibers + i;
        if (f->state != F_WARP) { continue; }
        Fiber* w = s->fibers + f->regs.warp * 32;
        for (int l = 0; l < 32; l++) {
            if (((f->coll_mask >> l) & 1u) && (w[l].state != F_WARP || w[l].coll_what != f->coll_what)) {
                t_fiber = f;
                kernel_error("%s (mask 0x%08x) never completes: lane %d of the mask %s", f->coll_what, f->coll_mask, l,
                             fiber_where(w + l, b, sizeof(b)));
            }
        }
    }
    t_fiber = nullptr;
    kernel_error("deadlock: no thread can run (thread 0 %s)", fiber_where(s->fibers, a, sizeof(a)));
}

static void poison_or_bound_smem(const LaunchRec* L) {
    const FuncInfo& fi = func_info(L->func);
    bool poison = settings().poison != 0;
    const Symbols& sy = symbols();
    if (poison && sy.ok) {
        char* base = &emu_tls_anchor - sy.anchor_tls;
        for (auto& v : fi.vars) { memset(base + v.first, 0xff, v.second); }
    }
    if (emu_dyn_smem_buffers) {
        unsigned char* bufs[64];
        int nb = emu_dyn_smem_buffers(bufs, 64);
        for (int i = 0; i < nb; i++) {
#ifdef EMU_ASAN
            // bytes past the launch's dynamic size are out of bounds
            __asan_unpoison_memory_region(bufs[i], EMU_SMEM_OPTIN);
            __asan_poison_memory_region(bufs[i] + L->smem, EMU_SMEM_OPTIN - L->smem);
#endif
            if (poison) { memset(bufs[i], 0xff, L->smem); }
        }
    }
}

static void run_block(const LaunchRec* L, unsigned bx, unsigned by, unsigned bz) {
    Sched* s = sched_get();
    s->launch = L;
    s->bregs.bidx = make_uint3(bx, by, bz);
    s->bregs.bdim = L->block;
    s->bregs.gdim = L->grid;
    t_bregs = &s->bregs;
    s->n = (int)(L->block.x * L->block.y * L->block.z);
    s->ndone = 0;
    s->nbarrier = 0;
    s->round = 0;
    for (int w = 0; w < 32; w++) {
        s->wait_lanes[w] = 0;
        s->wait_uniform[w] = true;
    }
    uint64_t lin_block = bx + (uint64_t)L->grid.x * (by + (uint64_t)L->grid.y * bz);
    s->rng = splitmix(settings().seed ^ splitmix(lin_block + 0x1234567ull));
    poison_or_bound_smem(L);
    for (int i = 0; i < s->n; i++) {
        Fiber* f = s->fibers + i;
        f->regs.lin = i;
        f->regs.tidx = make_uint3(i % L->block.x, (i / L->block.x) % L->block.y, i / (L->block.x * L->block.y));
        f->regs.lane = i % 32;
        f->regs.warp = i / 32;
        fiber_init(f);
    }
    shuffle_order(s);
    while (s->ndone < s->n) {
        bool ran = false;
        for (int k = 0; k < s->n; k++) {
            Fiber* f = s->fibers + s->order[k];
            if (f->state != F_READY) { continue; }
            switch_to_fiber(s, f);
            ran = true;
        }
        if (s->nbarrier > 0 && s->nbarrier + s->ndone == s->n) {
            Fiber* first = nullptr;
            int count = 0;
            for (int i = 0; i < s->n; i++) {
                Fiber* f = s->fibers + i;
                if (f->state == F_DONE) { continue; }
                if (!first) { first = f; }
                if (f->bar_line != first->bar_line || strcmp(f->bar_file, first->bar_file) != 0) {
                    t_fiber = f;
                    kernel_error("divergent __syncthreads: this thread waits at %s:%d, thread %d at %s:%d", f->bar_file,
                                 f->bar_line, first->regs.lin, first->bar_file, first->bar_line);
                }
                count += f->bar_pred;
            }
            if (s->ndone > 0) {
                for (int i = 0; i < s->n; i++) {
                    if (s->fibers[i].state == F_DONE) { t_fiber = s->fibers + i; break; }
                }
                kernel_error("exited while %d threads of the block wait at __syncthreads (%s:%d): a barrier that some "
                             "threads never reach",
                             s->nbarrier, first->bar_file, first->bar_line);
            }
            for (int i = 0; i < s->n; i++) {
                s->fibers[i].state = F_READY;
                s->fibers[i].bar_pred = count;
            }
            s->nbarrier = 0;
            s->round++;
            if (settings().order == ORDER_RANDOM) { shuffle_order(s); }
            continue;
        }
        if (!ran) { report_deadlock(s); }
    }
    t_bregs = nullptr;
    s->launch = nullptr;
}

static void run_grid(const LaunchRec* L) {
    if (settings().verbose) {
        fprintf(stderr, "emu: launch %s grid (%u,%u,%u) block (%u,%u,%u) smem %zu at %s\n", L->name.c_str(), L->grid.x,
                L->grid.y, L->grid.z, L->block.x, L->block.y, L->block.z, L->smem, L->where.c_str());
    }
    uint64_t nb = (uint64_t)L->grid.x * L->grid.y * L->grid.z;
    std::vector<uint64_t> order(nb);
    for (uint64_t i = 0; i < nb; i++) { order[i] = i; }
    if (settings().order == ORDER_REVERSE) { std::reverse(order.begin(), order.end()); }
    if (settings().order == ORDER_RANDOM) {
        uint64_t r = splitmix(settings().seed + 77);
        for (uint64_t i = nb; i > 1; i--) {
            r = splitmix(r);
            std::swap(order[i - 1], order[r % i]);
        }
    }
#pragma omp parallel for schedule(dynamic, 1) if (nb > 1)
    for (int64_t i = 0; i < (int64_t)nb; i++) {
        uint64_t b = order[i];
        run_block(L, (unsigned)(b % L->grid.x), (unsigned)((b / L->grid.x) % L->grid.y),
                  (unsigned)(b / ((uint64_t)L->grid.x * L->grid.y)));
    }
}

// ----------------------------------------------------------------------------
// streams, events, graphs. EMU_STREAMS=serial (default): work runs in stream order, at the
// call (or into a capture). EMU_STREAMS=random:SEED: work is deferred into per-stream FIFO
// queues and runs at the synchronizing calls, the ready heads of the queues in a seeded random
// order that respects only stream order, event waits and the legacy default stream's implicit
// synchronization (docs/emu.md, "Stream interleaving").

}  // namespace emu

struct CUgraph_st {
    std::vector<std::function<void()>> ops;
};
struct CUgraphExec_st {
    std::vector<std::function<void()>> ops;
};
namespace emu {
// one deferred stream operation: its work, its completion flag (what later operations wait
// on) and the flags it waits for
struct StreamOp {
    std::function<void()> fn;  // empty for an event wait
    std::shared_ptr<bool> done;
    std::vector<std::shared_ptr<bool>> deps;
};
}  // namespace emu
struct CUstream_st {
    unsigned magic;
    CUgraph_st* capture;  // non-null while capturing
    int nonblocking;      // cudaStreamNonBlocking: no implicit synchronization with the legacy stream
    std::deque<emu::StreamOp> q;  // EMU_STREAMS=random: the work not yet run, in stream order
};
struct CUevent_st {
    unsigned magic;
    int timing;
    double t;  // host seconds at the record (not a GPU time)
    std::shared_ptr<bool> latest;  // EMU_STREAMS=random: the completion of the most recent record
};
#define EMU_STREAM_MAGIC 0x5354524du
#define EMU_EVENT_MAGIC 0x45564e54u

namespace emu {

static CUstream_st g_default_stream = {EMU_STREAM_MAGIC, nullptr, 0, {}};

static CUstream_st* stream_of(cudaStream_t s) {
    if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) { return &g_default_stream; }
    if (s->magic != EMU_STREAM_MAGIC) { return nullptr; }
    return s;
}
static double now_s() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static bool any_capture() { return g_default_stream.capture != nullptr; }

// EMU_STREAMS: 0 serial, else random with g_stream_rng as its state
static void drain_all();
static std::vector<CUstream_st*>& live_streams();
static uint64_t g_stream_rng = 0;
static int stream_mode() {
    static int m = [] {
        const char* e = getenv("EMU_STREAMS");
        if (!e || !*e || !strcmp(e, "serial")) { return 0; }
        if (strncmp(e, "random", 6) != 0 || (e[6] != 0 && e[6] != ':')) {
            fprintf(stderr, "emu: EMU_STREAMS=%s: expected serial or random:SEED\n", e);
            exit(1);
        }
        g_stream_rng = splitmix((e[6] == ':' ? strtoull(e + 7, nullptr, 10) : 1) + 0x5354);
        live_streams();  // constructed before the handler is registered, so destroyed after it runs
        atexit([] { drain_all(); });  // work still queued at exit runs, as the GPU finishes it
        return 1;
    }();
    return m;
}
static bool deferred() { return stream_mode() != 0; }

// the streams that hold queued work, in creation order (the default stream first)
static std::vector<CUstream_st*>& live_streams() {
    static std::vector<CUstream_st*> v{&g_default_stream};
    return v;
}
static bool g_executing = false;  // an operation is running (no draining from inside it)

// runs one ready head, chosen at random among the ready ones; false when nothing is queued
static bool run_one() {
    CUstream_st* ready[64];
    std::vector<CUstream_st*> more;
    int n = 0;
    bool pending = false;
    for (CUstream_st* s : live_streams()) {
        if (s->q.empty()) { continue; }
        pending = true;
        bool ok = true;
        for (auto& d : s->q.front().deps) { ok = ok && *d; }
        if (!ok) { continue; }
        if (n < 64) { ready[n++] = s; } else { more.push_back(s); }
    }
    if (!pending) { return false; }
    int total = n + (int)more.size();
    if (total == 0) {
        // every wait names an operation queued before it, so this cannot happen
        fprintf(stderr, "emu: error: EMU_STREAMS: queued stream work with no ready head (a dependency cycle)\n");
        exit(1);
    }
    g_stream_rng = splitmix(g_stream_rng);
    int k = (int)(g_stream_rng % (uint64_t)total);
    CUstream_st* s = k < n ? ready[k] : more[k - n];
    StreamOp op = std::move(s->q.front());
    s->q.pop_front();
    g_executing = true;
    if (op.fn) { op.fn(); }
    g_executing = false;
    *op.done = true;
    return true;
}
// runs every queued operation (the synchronizing calls)
static void drain_all() {
    if (!deferred() || g_executing) { return; }
    while (run_one()) {}
}
// one step of progress (the query calls)
static void progress() {
    if (deferred() && !g_executing) { run_one(); }
}

// runs fn in stream order: now, at each replay of the graph being captured, or (EMU_STREAMS=
// random) queued on the stream after `deps` and the implicit legacy-stream dependencies;
// *token (if given) is set to the completion flag of the queued operation (null when it ran)
static cudaError_t enqueue(cudaStream_t stream, std::function<void()> fn, std::shared_ptr<bool>* token = nullptr,
                           std::shared_ptr<bool> dep = nullptr) {
    CUstream_st* s = stream_of(stream);
    if (!s) { return set_error(cudaErrorInvalidResourceHandle); }
    if (token) { token->reset(); }
    if (s->capture) {
        if (fn) { s->capture->ops.push_back(std::move(fn)); }
    } else if (!deferred() || g_executing) {
        if (fn) { fn(); }
    } else {
        StreamOp op;
        op.fn = std::move(fn);
        op.done = std::make_shared<bool>(false);
        if (dep && !*dep) { op.deps.push_back(dep); }
        if (s == &g_default_stream) {
            // the legacy stream waits for the work of every blocking stream issued before
            for (CUstream_st* t : live_streams()) {
                if (t != s && !t->nonblocking && !t->q.empty()) { op.deps.push_back(t->q.back().done); }
            }
        } else if (!s->nonblocking && !g_default_stream.q.empty()) {
            op.deps.push_back(g_default_stream.q.back().done);  // and they wait for its earlier work
        }
        if (token) { *token = op.done; }
        s->q.push_back(std::move(op));
    }
    return cudaSuccess;
}

// EMU_STREAMS=random: a pageable host buffer (not cudaMallocHost, not device memory)
static bool is_pageable(const void* p) {
    std::lock_guard<std::mutex> lk(g_mem_mu);
    return find_alloc(p, 1, nullptr) == nullptr;
}

}  // namespace emu

extern "C" int emu_stream_enqueue(void* stream, void (*fn)(void*), void* arg, void (*free_arg)(void*)) {
    // the closure owns arg; a captured op keeps it for every replay
    std::shared_ptr<void> owner(arg, free_arg ? free_arg : [](void*) {});
    return emu::enqueue((cudaStream_t)stream, [fn, owner] { fn(owner.get()); }) == cudaSuccess ? 0 : 1;
}

namespace emu {

// ----------------------------------------------------------------------------
// launches

void check_kernel_pointer(const char* name, int index, const void* p, const char* file, int line) {
    if (p == nullptr || is_device_range(p, 1)) { return; }
    fprintf(stderr, "emu: error: %s:%d: argument %d of kernel %s is %p, not device memory (a host pointer?)\n", file,
            line, index, name, p);
    exit(1);
}

void launch(const void* func, const char* name, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
            KernelBody* body, const char* file, int line) {
    char where[512];
    snprintf(where, sizeof(where), "%s:%d", file, line);
    uint64_t threads = (uint64_t)block.x * block.y * block.z;
    if (threads == 0 || threads > EMU_MAX_THREADS || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
        grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
        if (settings().verbose) {
            fprintf(stderr, "emu: %s: launch of %s with grid (%u,%u,%u) block (%u,%u,%u): invalid configuration\n", where,
                    name, grid.x, grid.y, grid.z, block.x, block.y, block.z);
        }
        delete body;
        set_error(cudaErrorInvalidConfiguration);
        return;
    }
    FuncInfo& fi = func_info(func);
    if (smem > fi.max_dyn_smem) {
        if (settings().verbose) {
            fprintf(stderr, "emu: %s: launch of %s with %zu bytes of dynamic shared memory; the limit is %zu (+%zu static)\n",
                    where, name, smem, fi.max_dyn_smem, fi.static_smem);
        }
        delete body;
        set_error(cudaErrorInvalidValue);
        return;
    }
    if (!stream_of(stream)) {
        delete body;
        set_error(cudaErrorInvalidResourceHandle);
        return;
    }
    std::shared_ptr<LaunchRec> L(new LaunchRec{func, name, grid, block, smem, body, where}, [](LaunchRec* r) {
        delete r->body;
        delete r;
    });
    enqueue(stream, [L] { run_grid(L.get()); });
}

}  // namespace emu

// ----------------------------------------------------------------------------
// the runtime API

using emu::set_error;

extern "C" {

cudaError_t cudaGetLastError(void) {
    cudaError_t e = emu::t_last_error;
    emu::t_last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return emu::t_last_error; }

const char* cudaGetErrorName(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorNotReady: return "cudaErrorNotReady";
        case cudaErrorNoDevice: return "cudaErrorNoDevice";
        case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
        case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
        case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
        case cudaErrorIllegalState: return "cudaErrorIllegalState";
        case cudaErrorNotSupported: return "cudaErrorNotSupported";
        default: return "cudaErrorUnknown";
    }
}
const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorNotReady: return "device not ready";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
        case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
        case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
        case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
        case cudaErrorNotSupported: return "operation not supported";
        default: return "unknown error";
    }
}

// --- device

// EMU_DEVICES=N (1..8, default 1): the number of devices a process sees. They are
// all the same host memory and the same H100 model; the number matters to code that
// picks a device per rank, and to the emulated NCCL, which (as NCCL) refuses two
// ranks of one node on one device.
static int emu_device_count() {
    static int n = [] {
        const char* e = getenv("EMU_DEVICES");
        if (!e || !*e) { return 1; }
        char* end = nullptr;
        long v = strtol(e, &end, 10);
        if (*end != '\0' || v < 1 || v > 8) {
            fprintf(stderr, "emu: EMU_DEVICES=%s: expected a device count from 1 to 8\n", e);
            exit(1);
        }
        return (int)v;
    }();
    return n;
}
static int g_current_device = 0;  // this process's cudaSetDevice (one host thread sets it)
static bool valid_device(int d) { return d >= 0 && d < emu_device_count(); }

cudaError_t cudaGetDeviceCount(int* n) {
    *n = emu_device_count();
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) {
    if (!valid_device(d)) { return set_error(cudaErrorInvalidDevice); }
    g_current_device = d;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) {
    *d = g_current_device;
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
    if (emu::any_capture()) { return set_error(cudaErrorStreamCaptureUnsupported); }
    emu::drain_all();
    return cudaSuccess;
}
cudaError_t cudaDeviceReset(void) {
    emu::drain_all();
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp* p, int d) {
    if (!valid_device(d)) { return set_error(cudaErrorInvalidDevice); }
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "NVIDIA H100 80GB HBM3 (emulated on the CPU)");
    p->totalGlobalMem = EMU_GLOBAL_MEM;
    p->sharedMemPerBlock = EMU_SMEM_DEFAULT;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024;
    p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647;
    p->maxGridSize[1] = 65535;
    p->maxGridSize[2] = 65535;
    p->totalConstMem = 65536;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = EMU_NUM_SMS;
    p->concurrentKernels = 1;
    p->asyncEngineCount = 3;
    p->unifiedAddressing = 1;
    p->memoryBusWidth = 5120;
    p->l2CacheSize = 50 * 1024 * 1024;
    p->maxThreadsPerMultiProcessor = 2048;
    p->sharedMemPerMultiprocessor = EMU_SMEM_PER_SM;
    p->regsPerMultiprocessor = 65536;
    p->managedMemory = 1;
    p->sharedMemPerBlockOptin = EMU_SMEM_OPTIN;
    p->maxBlocksPerMultiProcessor = 32;
    p->reservedSharedMemPerBlock = EMU_SMEM_RESERVED;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, enum cudaDeviceAttr a, int d) {
    if (!valid_device(d)) { return set_error(cudaErrorInvalidDevice); }
    switch (a) {
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = EMU_SMEM_OPTIN; break;
        case cudaDevAttrMaxSharedMemoryPerBlock: *v = EMU_SMEM_DEFAULT; break;
        case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *v = EMU_SMEM_PER_SM; break;
        case cudaDevAttrMultiProcessorCount: *v = EMU_NUM_SMS; break;
        case cudaDevAttrMaxThreadsPerBlock: *v = 1024; break;
        case cudaDevAttrWarpSize: *v = 32; break;
        case cudaDevAttrComputeCapabilityMajor: *v = 9; break;
        case cudaDevAttrComputeCapabilityMinor: *v = 0; break;
        case cudaDevAttrMaxThreadsPerMultiProcessor: *v = 2048; break;
        case cudaDevAttrL2CacheSize: *v = 50 * 1024 * 1024; break;
        default:
            fprintf(stderr, "emu: cudaDeviceGetAttribute: attribute %d is not emulated\n", (int)a);
            return set_error(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_b, size_t* total) {
    std::lock_guard<std::mutex> lk(emu::g_mem_mu);
    *total = EMU_GLOBAL_MEM;
    *free_b = emu::g_device_bytes < EMU_GLOBAL_MEM ? EMU_GLOBAL_MEM - emu::g_device_bytes : 0;
    return cudaSuccess;
}

// --- memory

static cudaError_t emu_alloc(void** p, size_t n, emu::AllocKind kind) {
    if (!p) { return set_error(cudaErrorInvalidValue); }
    if (emu::any_capture()) { return set_error(cudaErrorStreamCaptureUnsupported); }
    *p = nullptr;
    if (n == 0) { return cudaSuccess; }
    {
        std::lock_guard<std::mutex> lk(emu::g_mem_mu);
        if (kind == emu::ALLOC_DEVICE && emu::g_device_bytes + n > EMU_GLOBAL_MEM) {
            return set_error(cudaErrorMemoryAllocation);
        }
    }
    void* q = nullptr;
    if (posix_memalign(&q, 256, n) != 0 || !q) { return set_error(cudaErrorMemoryAllocation); }
    if (kind == emu::ALLOC_DEVICE && emu::settings().poison) { memset(q, 0xff, n); }
    std::lock_guard<std::mutex> lk(emu::g_mem_mu);
    emu::g_allocs[(uintptr_t)q] = {n, kind};
    if (kind == emu::ALLOC_DEVICE) { emu::g_device_bytes += n; }
    *p = q;
    return cudaSuccess;
}
static cudaError_t emu_free(void* p, emu::AllocKind kind) {
    emu::drain_all();  // cudaFree and cudaFreeHost synchronize the device
    if (!p) { return cudaSuccess; }
    std::lock_guard<std::mutex> lk(emu::g_mem_mu);
    auto it = emu::g_allocs.find((uintptr_t)p);
    if (it == emu::g_allocs.end() || it->second.kind != kind) {
        fprintf(stderr, "emu: %s(%p): not a pointer from %s\n", kind == emu::ALLOC_DEVICE ? "cudaFree" : "cudaFreeHost", p,
                kind == emu::ALLOC_DEVICE ? "cudaMalloc" : "cudaMallocHost");
        return set_error(cudaErrorInvalidValue);
    }
    if (kind == emu::ALLOC_DEVICE) { emu::g_device_bytes -= it->second.size; }
    emu::g_allocs.erase(it);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMalloc(void** p, size_t n) { return emu_alloc(p, n, emu::ALLOC_DEVICE); }
cudaError_t cudaFree(void* p) { return emu_free(p, emu::ALLOC_DEVICE); }
cudaError_t cudaMallocHost(void** p, size_t n) { return emu_alloc(p, n, emu::ALLOC_PINNED); }
cudaError_t cudaHostAlloc(void** p, size_t n, unsigned int) { return emu_alloc(p, n, emu::ALLOC_PINNED); }
cudaError_t cudaFreeHost(void* p) { return emu_free(p, emu::ALLOC_PINNED); }

// a copy's direction against where its pointers are
static cudaError_t check_copy(void* dst, const void* src, size_t n, cudaMemcpyKind kind, const char* what) {
    if (n == 0) { return cudaSuccess; }
    if (!dst || !src) {
        fprintf(stderr, "emu: %s: null pointer\n", what);
        return set_error(cudaErrorInvalidValue);
    }
    bool dd = emu::is_device_range(dst, n), sd = emu::is_device_range(src, n);
    bool ok = true;
    const char* need = "";
    switch (kind) {
        case cudaMemcpyHostToDevice: ok = dd; need = "the destination to be device memory"; break;
        case cudaMemcpyDeviceToHost: ok = sd; need = "the source to be device memory"; break;
        case cudaMemcpyDeviceToDevice: ok = dd && sd; need = "both ranges to be device memory"; break;
        case cudaMemcpyHostToHost: ok = true; break;
        case cudaMemcpyDefault: ok = true; break;
        default: return set_error(cudaErrorInvalidMemcpyDirection);
    }
    if (!ok) {
        fprintf(stderr, "emu: %s of %zu bytes (dst %p, src %p): its direction needs %s (a range past the end of its "
                "allocation, or a host pointer?)\n", what, n, dst, src, need);
        return set_error(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
    if (emu::any_capture()) { return set_error(cudaErrorStreamCaptureUnsupported); }
    cudaError_t e = check_copy(dst, src, n, kind, "cudaMemcpy");
    if (e != cudaSuccess) { return e; }
    emu::drain_all();  // synchronous: after the earlier work (the legacy stream's implicit synchronization)
    if (n) { memmove(dst, src, n); }
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t stream) {
    cudaError_t e = check_copy(dst, src, n, kind, "cudaMemcpyAsync");
    if (e != cudaSuccess) { return e; }
    if (n && emu::deferred() && emu::stream_of(stream) && !emu::stream_of(stream)->capture && emu::is_pageable(src) &&
        !emu::is_pageable(dst)) {
        // from pageable memory the runtime stages the source at the call: the caller may reuse it at once
        std::shared_ptr<std::vector<char>> staged(new std::vector<char>((const char*)src, (const char*)src + n));
        return emu::enqueue(stream, [dst, staged] { memmove(dst, staged->data(), staged->size()); });
    }
    cudaError_t r = emu::enqueue(stream, [dst, src, n] {
        if (n) { memmove(dst, src, n); }
    });
    // to pageable memory the call returns only once the copy is done
    if (r == cudaSuccess && n && emu::deferred() && emu::is_pageable(dst) && !emu::stream_of(stream)->capture) { emu::drain_all(); }
    return r;
}
// 2D copies: height rows of width bytes, rows dpitch / spitch bytes apart
// A pitched copy checks its pitches and the first and last rows; the rows between lie inside those two ranges.
static cudaError_t check_copy_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                                 size_t height, cudaMemcpyKind kind, const char* what) {
    if (width > dpitch || width > spitch) { return set_error(cudaErrorInvalidPitchValue); }
    char first[64], last[64];
    snprintf(first, sizeof first, "%s (first row)", what);
    snprintf(last, sizeof last, "%s (last row)", what);
    cudaError_t e = check_copy(dst, src, width, kind, first);
    if (e != cudaSuccess) { return e; }
    return check_copy((char*)dst + dpitch * (height - 1), (const char*)src + spitch * (height - 1), width, kind, last);
}
static void copy_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height) {
    for (size_t r = 0; r < height; r++) { memmove((char*)dst + r * dpitch, (const char*)src + r * spitch, width); }
}
cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind) {
    if (emu::any_capture()) { return set_error(cudaErrorStreamCaptureUnsupported); }
    if (height == 0 || width == 0) { return cudaSuccess; }
    cudaError_t e = check_copy_2d(dst, dpitch, src, spitch, width, height, kind, "cudaMemcpy2D");
    if (e != cudaSuccess) { return e; }
    emu::drain_all();
    copy_2d(dst, dpitch, src, spitch, width, height);
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream) {
    if (height == 0 || width == 0) { return cudaSuccess; }
    cudaError_t e = check_copy_2d(dst, dpitch, src, spitch, width, height, kind, "cudaMemcpy2DAsync");
    if (e != cudaSuccess) { return e; }
    if (emu::deferred() && emu::stream_of(stream) && !emu::stream_of(stream)->capture && emu::is_pageable(src) &&
        !emu::is_pageable(dst)) {
        // staged at the call, as from pageable memory (packed rows)
        std::shared_ptr<std::vector<char>> staged(new std::vector<char>(width * height));
        copy_2d(staged->data(), width, src, spitch, width, height);
        return emu::enqueue(stream, [=] { copy_2d(dst, dpitch, staged->data(), width, width, height); });
    }
    cudaError_t r = emu::enqueue(stream, [=] { copy_2d(dst, dpitch, src, spitch, width, height); });
    if (r == cudaSuccess && emu::deferred() && emu::is_pageable(dst) && !emu::stream_of(stream)->capture) { emu::drain_all(); }
    return r;
}
static cudaError_t check_set(void* p, size_t n, const char* what) {
    if (n && !emu::is_device_range(p, n)) {
        fprintf(stderr, "emu: %s(%p, %zu bytes): not device memory\n", what, p, n);
        return set_error(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int v, size_t n) {
    if (emu::any_capture()) { return set_error(cudaErrorStreamCaptureUnsupported); }
    cudaError_t e = check_set(p, n, "cudaMemset");
    if (e != cudaSuccess || !n) { return e; }
    // on the legacy default stream (asynchronous to the host, as the runtime's is for device memory)
    return emu::enqueue(nullptr, [p, v, n] { memset(p, v, n); });
}
cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t stream) {
    cudaError_t e = check_set(p, n, "cudaMemsetAsync");
    if (e != cudaSuccess) { return e; }
    return emu::enqueue(stream, [p, v, n] {
        if (n) { memset(p, v, n); }
    });
}

// --- streams and events

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int flags) {
    *s = new CUstream_st{EMU_STREAM_MAGIC, nullptr, (flags & cudaStreamNonBlocking) ? 1 : 0, {}};
    emu::live_streams().push_back(*s);
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithPriority(cudaStream_t* s, unsigned int flags, int) {
    return cudaStreamCreateWithFlags(s, flags);
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (!s || s->magic != EMU_STREAM_MAGIC) { return set_error(cudaErrorInvalidResourceHandle); }
    emu::drain_all();  // the runtime finishes a destroyed stream's work; here it runs now
    auto& v = emu::live_streams();
    v.erase(std::remove(v.begin(), v.end(), s), v.end());
    s->magic = 0;
    delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    CUstream_st* st = emu::stream_of(s);
    if (!st) { return set_error(cudaErrorInvalidResourceHandle); }
    if (st->capture) { return set_error(cudaErrorStreamCaptureUnsupported); }
    if (!st->q.empty()) { emu::drain_all(); }  // every stream's queued work, not only this one's
    return cudaSuccess;
}
// honest: not ready while the stream has queued work; each query runs one ready operation
// (of any stream), so a polling loop makes progress
cudaError_t cudaStreamQuery(cudaStream_t s) {
    CUstream_st* st = emu::stream_of(s);
    if (!st) { return set_error(cudaErrorInvalidResourceHandle); }
    if (!st->q.empty()) { emu::progress(); }
    return st->q.empty() ? cudaSuccess : cudaErrorNotReady;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
    if (!emu::stream_of(s) || !e || e->magic != EMU_EVENT_MAGIC) { return set_error(cudaErrorInvalidResourceHandle); }
    // waits for the most recent record at this call (none yet, or done: nothing to wait for)
    if (e->latest && !*e->latest) { return emu::enqueue(s, std::function<void()>(), nullptr, e->latest); }
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) {
    *e = new CUevent_st{EMU_EVENT_MAGIC, 1, 0.0, nullptr};
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int flags) {
    *e = new CUevent_st{EMU_EVENT_MAGIC, (flags & cudaEventDisableTiming) ? 0 : 1, 0.0, nullptr};
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    if (!e || e->magic != EMU_EVENT_MAGIC) { return set_error(cudaErrorInvalidResourceHandle); }
    if (e->latest && !*e->latest) { emu::drain_all(); }  // its pending record writes into it
    e->magic = 0;
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    if (!e || e->magic != EMU_EVENT_MAGIC) { return set_error(cudaErrorInvalidResourceHandle); }
    std::shared_ptr<bool> token;
    cudaError_t r = emu::enqueue(s, [e] { e->t = emu::now_s(); }, &token);
    if (r == cudaSuccess && !emu::stream_of(s)->capture) { e->latest = token; }  // null when it ran at once
    return r;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (!e || e->magic != EMU_EVENT_MAGIC) { return set_error(cudaErrorInvalidResourceHandle); }
    if (e->latest && !*e->latest) { emu::drain_all(); }
    return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
    if (!e || e->magic != EMU_EVENT_MAGIC) { return set_error(cudaErrorInvalidResourceHandle); }
    if (e->latest && !*e->latest) { emu::progress(); }
    return e->latest && !*e->latest ? cudaErrorNotReady : cudaSuccess;
}
// a host function as a stream operation (it must not call the runtime, as on the GPU)
cudaError_t cudaLaunchHostFunc(cudaStream_t s, cudaHostFn_t fn, void* user) {
    if (!fn) { return set_error(cudaErrorInvalidValue); }
    return emu::enqueue(s, [fn, user] { fn(user); });
}
// host time between the records: it says nothing of a GPU's speed
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
    if (!a || !b || a->magic != EMU_EVENT_MAGIC || b->magic != EMU_EVENT_MAGIC) {
        return set_error(cudaErrorInvalidResourceHandle);
    }
    if (!a->timing || !b->timing) { return set_error(cudaErrorInvalidResourceHandle); }
    if ((a->latest && !*a->latest) || (b->latest && !*b->latest)) { return cudaErrorNotReady; }
    *ms = (float)((b->t - a->t) * 1e3);
    return cudaSuccess;
}

// --- stream capture and graphs

cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode) {
    CUstream_st* st = emu::stream_of(s);
    if (!st) { return set_error(cudaErrorInvalidResourceHandle); }
    if (st == &emu::g_default_stream) {
        fprintf(stderr, "emu: cudaStreamBeginCapture on the legacy default stream\n");
        return set_error(cudaErrorStreamCaptureUnsupported);
    }
    if (st->capture) { return set_error(cudaErrorIllegalState); }
    st->capture = new CUgraph_st();
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
    CUstream_st* st = emu::stream_of(s);
    if (!st) { return set_error(cudaErrorInvalidResourceHandle); }
    if (!st->capture) { return set_error(cudaErrorIllegalState); }
    *g = st->capture;
    st->capture = nullptr;
    return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, enum cudaStreamCaptureStatus* status) {
    CUstream_st* st = emu::stream_of(s);
    if (!st) { return set_error(cudaErrorInvalidResourceHandle); }
    *status = st->capture ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t g, unsigned long long) {
    if (!g) { return set_error(cudaErrorInvalidValue); }
    *exec = new CUgraphExec_st{g->ops};
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
    if (!exec) { return set_error(cudaErrorInvalidValue); }
    for (auto& op : exec->ops) {
        cudaError_t e = emu::enqueue(s, op);
        if (e != cudaSuccess) { return e; }
    }
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
    delete e;
    return cudaSuccess;
}

// --- functions

cudaError_t cudaFuncSetAttribute(const void* func, enum cudaFuncAttribute attr, int value) {
    emu::FuncInfo& fi = emu::func_info(func);
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || (size_t)value + fi.static_smem > EMU_SMEM_OPTIN) {
            fprintf(stderr, "emu: cudaFuncSetAttribute(MaxDynamicSharedMemorySize, %d): with %zu static bytes it exceeds "
                    "the H100's %d bytes per block\n", value, fi.static_smem, EMU_SMEM_OPTIN);
            return set_error(cudaErrorInvalidValue);
        }
        fi.max_dyn_smem = (size_t)value;
        return cudaSuccess;
    }
    if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) { return cudaSuccess; }
    fprintf(stderr, "emu: cudaFuncSetAttribute: attribute %d is not emulated\n", (int)attr);
    return set_error(cudaErrorInvalidValue);
}
cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes* a, const void* func) {
    emu::FuncInfo& fi = emu::func_info(func);
    memset(a, 0, sizeof(*a));
    a->sharedSizeBytes = fi.static_smem;
    a->maxThreadsPerBlock = 1024;
    a->maxDynamicSharedSizeBytes = (int)fi.max_dyn_smem;
    a->ptxVersion = 90;
    a->binaryVersion = 90;
    return cudaSuccess;
}
// blocks per SM from threads and shared memory alone (registers are not modelled)
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* n, const void* func, int block_size, size_t dyn) {
    emu::FuncInfo& fi = emu::func_info(func);
    if (block_size <= 0 || block_size > 1024) { return set_error(cudaErrorInvalidValue); }
    int by_threads = 2048 / block_size;
    size_t per = fi.static_smem + dyn + EMU_SMEM_RESERVED;
    int by_smem = (int)(EMU_SMEM_PER_SM / per);
    *n = std::min(std::min(by_threads, by_smem), 32);
    return cudaSuccess;
}
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int* n, const void* func, int block_size, size_t dyn,
                                                                    unsigned int) {
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(n, func, block_size, dyn);
}

}  // extern "C"
