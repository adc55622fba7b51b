// Process policy `run`, `bench` and `info` share, apart from any model: the device, the CPUs this
// process may use and the thread pools sized from them, glibc's allocator settings and the heap
// trimming that bounds memory, the BLAS in use, and the versions recorded in run.json.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

#include <c10/core/Device.h>
#include <nlohmann/json_fwd.hpp>
#include <torch/script.h>

namespace abaw {

// "auto" (CUDA when this LibTorch build and a GPU allow it, else CPU), "cpu", "cuda" or
// "cuda:N". Throws Error(kUsage) for CUDA on a CPU-only build or without a visible GPU.
c10::Device resolve_device(const std::string& spec);

// Loads a TorchScript file onto `device` in eval mode. Throws Error(kModel) naming the file, with
// LibTorch's message in one line, when it cannot be loaded.
torch::jit::script::Module load_torchscript(const std::filesystem::path& file, c10::Device device);

// What LibTorch threw, in one line: a c10::Error's first line (a C++ backtrace follows it); for
// errors raised inside TorchScript code (torch::jit::JITException, not a c10::Error) the last
// line, which follows the TorchScript traceback: "RuntimeError: shape '[7, -1]' ...".
std::string torch_error_line(const std::exception& e);

// LibTorch, OpenCV and BLAS in use, for `info` and the run summary.
nlohmann::json runtime_versions();

// The path of the BLAS library this process loaded, or "" when LibTorch brings its own.
std::string loaded_blas_library();

// Logs a warning when the BLAS in use is known to make Debian's LibTorch very slow.
void warn_about_slow_blas();

// The CPUs this process may run on: its affinity mask (taskset, Slurm's --cpus-per-task cpuset)
// capped by any cgroup CPU quota on its way to the root (Kubernetes' limits.cpu, docker --cpus),
// rounded up, at least 1. std::thread::hardware_concurrency() counts every CPU of the machine:
// on a 64-core node with a 4-CPU slot, threads sized by it would oversubscribe the slot 16x.
int usable_cpu_count();

// A cgroup CPU quota as whole CPUs, rounded up (150000 us per 100000 us -> 2); 0 when
// `quota_us` is not positive (no limit) or `period_us` is not positive.
int cpus_in_cpu_quota(long long quota_us, long long period_us);

// cgroup v2's cpu.max text ("max 100000" or "150000 100000") as whole CPUs, rounded up; 0 for no
// limit or text that is not a quota (an unreadable limit must not shrink the thread pools).
int cpus_in_cgroup_cpu_max(const std::string& cpu_max);

// The tightest CPU quota, in whole CPUs (0: none), on the way from each cgroup named in
// `membership` (/proc/self/cgroup's text) to the root of its hierarchy under `cgroup_root`
// (/sys/fs/cgroup): v2's cpu.max, v1's cpu.cfs_quota_us over cpu.cfs_period_us. Limits set on an
// ancestor (a Kubernetes pod, a systemd slice) bind its children too; inside a container whose
// cgroup path is not visible, the walk ends at the mount's root, the container's own cgroup.
int cpus_in_cgroup_limits(const std::string& membership, const std::filesystem::path& cgroup_root);

// Applies the process-wide policy `run` and `bench` share and returns the number of decode threads:
// intra-op threads = `threads` (0: one per usable CPU); decode threads = `decode_threads` (0: half
// the usable CPUs, at least 1); OpenCV's own thread pool off, since each decode thread handles whole
// images; and keep_freed_memory_for_reuse().
int configure_runtime(int threads, int decode_threads);

// Sets the LibTorch intra-op thread count of the calling thread alone (OpenMP's per-thread
// setting, and MKL's where present), leaving the process default and other threads as they are:
// `run --videos` runs the face models on a thread of their own with as many threads as `crop`
// would use, because a convolution's float results depend on how many threads split it. Returns
// false where LibTorch's threads are not OpenMP's (the count then stays the process default).
bool set_calling_thread_torch_threads(int threads);

// set_calling_thread_torch_threads(threads) for as long as it lives; then the calling thread gets
// its earlier count back.
class CallingThreadTorchThreads {
 public:
  explicit CallingThreadTorchThreads(int threads);
  ~CallingThreadTorchThreads();
  CallingThreadTorchThreads(const CallingThreadTorchThreads&) = delete;
  CallingThreadTorchThreads& operator=(const CallingThreadTorchThreads&) = delete;

 private:
  int previous_;
};

// Selects TorchScript's legacy graph executor (ABAW_JIT_EXECUTOR=profiling: PyTorch's default),
// which optimises a graph once per input type instead of once per input shape: every video's
// last batch and window has a shape of its own. Throws Error(kUsage) for another value.
void select_graph_executor();

// Makes glibc's malloc keep freed memory for reuse instead of returning it to the OS at once (the
// process-wide setting of `run` and `bench`, through configure_runtime). LibTorch allocates and frees each layer's
// activations on every batch; above glibc's mmap threshold (at most 32 MB) each is a fresh mmap
// whose pages fault in and are zeroed again, and a freed heap top beyond the trim threshold is
// released and faulted in again by the next layer. Measured: 30-40% of a default-set run was
// kernel time (runs took 1.5-2x as long), and ViT-B/16 encoded 15-20% slower with a 256 MB trim
// threshold than with none. So: no mmap, no automatic trimming; HeapTrimmer keeps what is held
// bounded. Skipped when GLIBC_TUNABLES sets malloc options: the user's choice wins.
void keep_freed_memory_for_reuse();

// Hands free heap pages back to the OS when the resident set has grown by more than a limit
// beyond its level between batches. `run` calls it after every encoder batch and every video:
// LibTorch's temporaries of each new shape fragment the heap, and without trimming the resident
// set creeps up with every video; trimming after every batch or video regardless instead makes
// the next batch fault its pages in again. The peak resident set is then bounded by the level
// between batches (the memory in use plus one batch's working set, kept for reuse), plus the limit.
class HeapTrimmer {
 public:
  explicit HeapTrimmer(size_t growth_limit_bytes);

  // Trims when the resident set exceeds the baseline by more than the limit. The baseline is the
  // resident set at construction and then at the first check after each trim: by then the next
  // batch has faulted its working set in again, which is memory in use, not growth, and must not
  // trigger a trim after every batch. Returns whether it trimmed.
  bool trim_if_grown();

 private:
  size_t growth_limit_bytes_;
  size_t baseline_bytes_;
  bool baseline_at_next_check_ = false;
};

// This process's resident set size now, in bytes (0 where /proc is unavailable).
size_t resident_set_bytes();

// This process's peak resident set size so far, in MiB (run.json, `bench`).
double peak_rss_megabytes();

}  // namespace abaw
