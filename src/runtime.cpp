#include "abaw/runtime.hpp"

#include <dlfcn.h>
#include <link.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/torch.h>

#include <ATen/Parallel.h>
#include <opencv2/core.hpp>
#include <opencv2/core/version.hpp>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "abaw/error.hpp"

namespace abaw {

torch::Device resolve_device(const std::string& spec) {
  if (spec == "cpu") return torch::kCPU;
  if (spec == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    long index = 0;
    if (spec.size() > 5) {
      char* end = nullptr;
      index = std::strtol(spec.c_str() + 5, &end, 10);
      if (*end != '\0' || index < 0) throw Error(ErrorKind::kUsage, "--device '" + spec + "': expected cuda:N");
    }
    if (!torch::hasCUDA()) {
      throw Error(ErrorKind::kUsage, "--device " + spec +
                                         ": this build of LibTorch has no CUDA support; use --device cpu, or build "
                                         "abaw-infer against a CUDA LibTorch (see README)");
    }
    if (!torch::cuda::is_available() || index >= static_cast<long>(torch::cuda::device_count())) {
      throw Error(ErrorKind::kUsage, "--device " + spec + ": no such CUDA device (" +
                                         std::to_string(torch::cuda::device_count()) + " visible)");
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw Error(ErrorKind::kUsage, "--device '" + spec + "': expected auto, cpu, cuda or cuda:N");
}

std::string loaded_blas_library() {
  std::string found;
  dl_iterate_phdr(
      [](struct dl_phdr_info* info, size_t, void* data) {
        const std::string name = info->dlpi_name ? info->dlpi_name : "";
        const std::string base = std::filesystem::path(name).filename().string();
        if (base.rfind("libblas", 0) == 0 || base.rfind("libopenblas", 0) == 0 || base.rfind("libmkl", 0) == 0) {
          char resolved[PATH_MAX];
          *static_cast<std::string*>(data) = realpath(name.c_str(), resolved) ? resolved : name;
          return 1;
        }
        return 0;
      },
      &found);
  return found;
}

void warn_about_slow_blas() {
  const std::string blas = loaded_blas_library();
  if (blas.find("/blas/") != std::string::npos || blas.find("libblas.so") != std::string::npos) {
    if (blas.find("openblas-openmp") != std::string::npos) return;
    if (blas.find("openblas-pthread") != std::string::npos) {
      spdlog::warn(
          "BLAS is {} (pthread flavour): it oversubscribes against LibTorch's OpenMP threads; "
          "apt-get install libopenblas0-openmp",
          blas);
    } else {
      spdlog::warn("BLAS is {} (reference BLAS?): models run ~50x slower; apt-get install libopenblas0-openmp", blas);
    }
  }
}

int cpus_in_cpu_quota(long long quota_us, long long period_us) {
  if (quota_us <= 0 || period_us <= 0) return 0;
  const long long cpus = (quota_us + period_us - 1) / period_us;
  return static_cast<int>(std::min<long long>(cpus, INT_MAX));
}

int cpus_in_cgroup_cpu_max(const std::string& cpu_max) {
  std::istringstream fields(cpu_max);
  std::string quota;
  long long period_us = 0;
  if (!(fields >> quota >> period_us) || quota == "max") return 0;
  char* end = nullptr;
  const long long quota_us = std::strtoll(quota.c_str(), &end, 10);
  if (end == quota.c_str() || *end != '\0') return 0;
  return cpus_in_cpu_quota(quota_us, period_us);
}

namespace {

std::string first_line_of(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

int cpus_in_cgroup_limits(const std::string& membership, const std::filesystem::path& cgroup_root) {
  int tightest = 0;
  const auto consider = [&tightest](int cpus) {
    if (cpus > 0 && (tightest == 0 || cpus < tightest)) tightest = cpus;
  };
  std::istringstream lines(membership);
  std::string line;
  while (std::getline(lines, line)) {
    // "<id>:<controllers>:<path>"; id 0 with no controllers is cgroup v2.
    const size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    std::filesystem::path path = std::filesystem::path(line.substr(second + 1)).relative_path();
    const bool v2 = controllers.empty();
    bool v1_cpu = false;
    std::istringstream names(controllers);
    for (std::string name; std::getline(names, name, ',');) v1_cpu = v1_cpu || name == "cpu";
    if (!v2 && !v1_cpu) continue;
    const std::filesystem::path mount = v2 ? cgroup_root : cgroup_root / controllers;
    for (;; path = path.parent_path()) {
      const std::filesystem::path dir = mount / path;
      if (v2) {
        consider(cpus_in_cgroup_cpu_max(first_line_of(dir / "cpu.max")));
      } else {
        const std::string quota = first_line_of(dir / "cpu.cfs_quota_us");
        const std::string period = first_line_of(dir / "cpu.cfs_period_us");
        if (!quota.empty() && !period.empty()) consider(cpus_in_cgroup_cpu_max(quota + " " + period));
      }
      if (path.empty()) break;
    }
  }
  return tightest;
}

int usable_cpu_count() {
  int cpus = static_cast<int>(std::thread::hardware_concurrency());
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) cpus = CPU_COUNT(&allowed);
  std::ifstream membership_file("/proc/self/cgroup");
  std::stringstream membership;
  membership << membership_file.rdbuf();
  const int quota = cpus_in_cgroup_limits(membership.str(), "/sys/fs/cgroup");
  if (quota > 0 && (cpus <= 0 || quota < cpus)) cpus = quota;
  return std::max(1, cpus);
}

bool set_calling_thread_torch_threads(int threads) {
  // First the thread's lazy initialisation, which would otherwise reset it to the process default
  // at its first parallel call.
  at::internal::lazy_init_num_threads();
  // Looked up at run time: LibTorch brings its OpenMP runtime (and MKL, in official builds) into
  // the process, so this library links neither.
  using SetThreads = void (*)(int);
  static const auto set_omp = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  static const auto set_mkl = reinterpret_cast<int (*)(int)>(dlsym(RTLD_DEFAULT, "mkl_set_num_threads_local"));
  if (set_mkl) set_mkl(threads);
  if (!set_omp) return false;
  set_omp(threads);
  return true;
}

CallingThreadTorchThreads::CallingThreadTorchThreads(int threads) : previous_(at::get_num_threads()) {
  set_calling_thread_torch_threads(threads);
}

CallingThreadTorchThreads::~CallingThreadTorchThreads() { set_calling_thread_torch_threads(previous_); }

int configure_runtime(int threads, int decode_threads) {
  keep_freed_memory_for_reuse();
  const int cpus = usable_cpu_count();
  at::set_num_threads(threads > 0 ? threads : cpus);
  cv::setNumThreads(1);
  // On 2 CPUs one decoder keeps up with the encoders measured (scripts/README.md, "Benchmarks"); a GPU host
  // needs many, and half the CPUs leaves the rest to the model thread and LibTorch.
  return decode_threads > 0 ? decode_threads : std::max(1, cpus / 2);
}

void keep_freed_memory_for_reuse() {
#ifdef __GLIBC__
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::string(tunables).find("glibc.malloc.") != std::string::npos) {
    spdlog::debug("GLIBC_TUNABLES sets malloc options; keeping them");
    return;
  }
  // Every allocation from the heap (large ones too), and no automatic release of the heap top:
  // a ViT-B/16 layer frees over 256 MB of activations, and releasing them at each free (the
  // earlier 256 MB threshold) made every layer fault them in again, 15-20% of the encoder's time.
  // HeapTrimmer releases memory between batches instead.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
}

size_t resident_set_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t total_pages = 0, resident_pages = 0;
  if (!(statm >> total_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

HeapTrimmer::HeapTrimmer(size_t growth_limit_bytes)
    : growth_limit_bytes_(growth_limit_bytes), baseline_bytes_(resident_set_bytes()) {}

bool HeapTrimmer::trim_if_grown() {
#ifdef __GLIBC__
  const size_t before = resident_set_bytes();
  if (baseline_at_next_check_) {
    baseline_at_next_check_ = false;
    baseline_bytes_ = before;
    return false;
  }
  if (before <= baseline_bytes_ + growth_limit_bytes_) return false;
  malloc_trim(0);
  baseline_bytes_ = resident_set_bytes();
  baseline_at_next_check_ = true;
  spdlog::debug("resident set {} MB -> {} MB after returning free heap memory", before >> 20, baseline_bytes_ >> 20);
  return true;
#else
  return false;
#endif
}

double peak_rss_megabytes() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0.0;
  return usage.ru_maxrss / 1024.0;  // KiB on Linux
}

nlohmann::json runtime_versions() {
  const std::string blas = loaded_blas_library();
  return {{"libtorch", TORCH_VERSION},
          {"opencv", CV_VERSION},
          {"blas", blas.empty() ? "built into LibTorch" : blas},
          {"cuda_available", torch::cuda::is_available()}};
}

// TorchScript's default (profiling) executor specialises each graph to the input shapes it has
// seen and profiles again when they change, as they do with every video's last batch and every
// window length; its optimised plans also kept more memory: ViT-B/16's peak RSS over 200 frames
// was 1222 MB with the profiling executor (optimiser off), 1033 MB with the legacy one (optimiser
// on), with identical outputs and no measurable speed difference on the default set. The legacy
// executor optimises once per input type, not per shape. ABAW_JIT_EXECUTOR=profiling restores
// PyTorch's default (e.g. to try its fusers on a GPU).
void select_graph_executor() {
  const char* choice = std::getenv("ABAW_JIT_EXECUTOR");
  const std::string executor = choice ? choice : "legacy";
  if (executor != "legacy" && executor != "profiling") {
    throw Error(ErrorKind::kUsage, "ABAW_JIT_EXECUTOR='" + executor + "': expected legacy or profiling");
  }
  torch::jit::getExecutorMode() = executor == "profiling";
  torch::jit::setGraphExecutorOptimize(true);
}

torch::jit::script::Module load_torchscript(const std::filesystem::path& file, c10::Device device) {
  try {
    auto module = torch::jit::load(file.string(), device);
    module.eval();
    return module;
  } catch (const c10::Error& e) {
    throw Error(ErrorKind::kModel, "cannot load TorchScript: " + torch_error_line(e), file.string());
  }
}

std::string torch_error_line(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    const std::string text = c10_error->what_without_backtrace();
    return text.substr(0, text.find('\n'));
  }
  std::string text = e.what();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.substr(text.rfind('\n') + 1);
}

}  // namespace abaw
