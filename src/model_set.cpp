#include "abaw/model_set.hpp"

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
namespace {

std::string shape_of(const torch::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

std::string shape_of(const std::vector<int64_t>& sizes) {
  std::ostringstream s;
  s << c10::IntArrayRef(sizes);
  return s.str();
}

// LibTorch's messages carry a C++ backtrace; the first line says what happened.
std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

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

}  // namespace

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
      spdlog::warn("BLAS is {} (pthread flavour): it oversubscribes against LibTorch's OpenMP threads; "
                   "apt-get install libopenblas0-openmp",
                   blas);
    } else {
      spdlog::warn("BLAS is {} (reference BLAS?): models run ~50x slower; apt-get install libopenblas0-openmp",
                   blas);
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

ModelSet::ModelSet(Manifest manifest, torch::Device device) : manifest_(std::move(manifest)), device_(device) {
  select_graph_executor();
  encoder_ = load_module(manifest_.encoder.file);
  const Precision precision = manifest_.encoder.precision;
  if (precision == Precision::kFp16 && !device_.is_cuda()) {
    throw Error(ErrorKind::kUsage, "fp16 encoders need a CUDA device (LibTorch's CPU kernels lack fp16); use bf16 "
                                   "or fp32 on the CPU");
  }
  if (precision != Precision::kFp32) {
    encoder_dtype_ = precision == Precision::kFp16 ? torch::kHalf : torch::kBFloat16;
    encoder_.to(encoder_dtype_);
  }
  for (const auto& [task, config] : manifest_.tasks) {
    if (heads_.count(config.head_file)) continue;
    heads_[config.head_file] = Head{config.head_file, load_module(config.head_file), !config.output_key.empty()};
  }
}

torch::jit::script::Module ModelSet::load_module(const std::string& file) {
  const auto path = manifest_.file(file);
  try {
    auto module = torch::jit::load(path.string(), device_);
    module.eval();
    return module;
  } catch (const c10::Error& e) {
    throw Error(ErrorKind::kModel, "cannot load TorchScript: " + first_line(e.what_without_backtrace()),
                path.string());
  }
}

torch::Tensor ModelSet::encode(const torch::Tensor& images) {
  c10::InferenceMode guard;
  const auto path = manifest_.file(manifest_.encoder.file).string();
  torch::Tensor output;
  try {
    torch::Tensor input = images.scalar_type() == torch::kByte
                              ? normalise_pixels(images, manifest_.encoder.preprocess, device_).to(encoder_dtype_)
                              : images.to(device_, encoder_dtype_, /*non_blocking=*/true);
    input = input.contiguous(manifest_.encoder.memory_format == MemoryFormat::kChannelsLast
                                 ? torch::MemoryFormat::ChannelsLast
                                 : torch::MemoryFormat::Contiguous);
    output = encoder_.forward({input}).toTensor();
  } catch (const c10::Error& e) {
    throw Error(ErrorKind::kModel, "encoder failed on input " + shape_of(images) + ": " +
                                       first_line(e.what_without_backtrace()),
                path);
  }
  if (output.dim() != 2 || output.size(0) != images.size(0) || output.size(1) != manifest_.encoder.feature_dim) {
    throw Error(ErrorKind::kModel, "encoder output is " + shape_of(output) + " for input " + shape_of(images) +
                                       ", the manifest expects [" + std::to_string(images.size(0)) + ", " +
                                       std::to_string(manifest_.encoder.feature_dim) + "] (feature_dim)",
                path);
  }
  return output.to(torch::kCPU, torch::kFloat32).contiguous();
}

torch::Tensor ModelSet::head_output(const torch::IValue& output, const TaskConfig& config, const std::string& file,
                                    const std::vector<int64_t>& input_shape) {
  const auto path = manifest_.file(file).string();
  torch::Tensor tensor;
  if (!config.output_key.empty()) {
    if (!output.isGenericDict()) {
      throw Error(ErrorKind::kModel, std::string("task ") + task_key(config.task) + " reads output '" +
                                         config.output_key + "', but the head does not return a dict",
                  path);
    }
    auto dict = output.toGenericDict();
    if (!dict.contains(config.output_key)) {
      std::string keys;
      for (const auto& entry : dict) keys += (keys.empty() ? "" : ", ") + entry.key().toStringRef();
      throw Error(ErrorKind::kModel, "the head's dict has no '" + config.output_key + "' (it has: " + keys + ")",
                  path);
    }
    tensor = dict.at(config.output_key).toTensor();
  } else {
    if (!output.isTensor()) {
      throw Error(ErrorKind::kModel, "the head returns a " + output.tagKind() +
                                         "; a plain head must return a tensor (use {\"file\", \"output\"} for dicts)",
                  path);
    }
    tensor = output.toTensor();
  }
  const int64_t frames = input_shape[1];
  if (tensor.dim() != 3 || tensor.size(0) != 1 || tensor.size(1) != frames || tensor.size(2) != config.head_outputs) {
    throw Error(ErrorKind::kModel, std::string("task ") + task_key(config.task) + ": head output is " +
                                       shape_of(tensor) + " for input " + shape_of(input_shape) + ", expected [1, " +
                                       std::to_string(frames) + ", " + std::to_string(config.head_outputs) + "]",
                path);
  }
  tensor = tensor[0].to(torch::kCPU, torch::kFloat32);
  switch (config.activation) {
    case Activation::kNone: break;
    case Activation::kTanh: tensor = torch::tanh(tensor); break;
    case Activation::kSoftmax: tensor = torch::softmax(tensor, 1); break;
    case Activation::kSigmoid: tensor = torch::sigmoid(tensor); break;
  }
  if (config.task == Task::kEXPR) {
    torch::Tensor mapped = torch::zeros({frames, 8}, tensor.options());
    for (int c = 0; c < 8; ++c) {
      if (config.class_map[c] >= 0) mapped.select(1, c).copy_(tensor.select(1, config.class_map[c]));
    }
    tensor = mapped;
  }
  return tensor.contiguous();
}

std::map<Task, torch::Tensor> ModelSet::run_heads(const torch::Tensor& features, const std::vector<Task>& tasks) {
  c10::InferenceMode guard;
  torch::Tensor input = features.unsqueeze(0).to(device_);
  const std::vector<int64_t> input_shape = input.sizes().vec();
  std::map<std::string, torch::IValue> outputs;
  std::map<Task, torch::Tensor> results;
  for (Task task : tasks) {
    const TaskConfig& config = manifest_.tasks.at(task);
    auto cached = outputs.find(config.head_file);
    if (cached == outputs.end()) {
      try {
        cached = outputs.emplace(config.head_file, heads_.at(config.head_file).module.forward({input})).first;
      } catch (const c10::Error& e) {
        throw Error(ErrorKind::kModel, "head failed on input " + shape_of(input_shape) + " (feature_dim " +
                                           std::to_string(manifest_.encoder.feature_dim) +
                                           "): " + first_line(e.what_without_backtrace()),
                    manifest_.file(config.head_file).string());
      }
    }
    results[task] = head_output(cached->second, config, config.head_file, input_shape);
  }
  return results;
}

nlohmann::json ModelSet::self_check(long window_frames) {
  c10::InferenceMode guard;
  const auto& spec = manifest_.encoder.preprocess;
  const int side = spec.output_side();
  torch::Tensor images = torch::zeros({2, spec.channels(), side, side});
  torch::Tensor features = encode(images);
  nlohmann::json report;
  report["encoder"] = {{"file", manifest_.encoder.file},
                       {"input", images.sizes().vec()},
                       {"output", features.sizes().vec()}};
  std::vector<Task> tasks;
  for (const auto& [task, config] : manifest_.tasks) tasks.push_back(task);
  // Two lengths: a head that only works for one T (e.g. traced with a fixed length) must fail here.
  for (long frames : {window_frames, std::max(1L, window_frames / 2 + 1)}) {
    torch::Tensor window = torch::randn({frames, manifest_.encoder.feature_dim});
    auto outputs = run_heads(window, tasks);
    for (const auto& [task, output] : outputs) {
      report["heads"][task_key(task)].push_back({{"file", manifest_.tasks.at(task).head_file},
                                                 {"input", std::vector<int64_t>{1, frames, window.size(1)}},
                                                 {"output", output.sizes().vec()}});
    }
  }
  return report;
}

}  // namespace abaw
