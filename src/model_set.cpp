#include "abaw/model_set.hpp"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

#include "abaw/error.hpp"
#include "abaw/preprocess.hpp"
#include "abaw/runtime.hpp"

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

// Rows of unit length; a zero row stays zero instead of dividing by zero (as F.normalize does).
torch::Tensor l2_normalised(const torch::Tensor& rows) {
  return rows / rows.norm(2, -1, /*keepdim=*/true).clamp_min(1e-12);
}

}  // namespace

ModelSet::ModelSet(Manifest manifest, torch::Device device) : manifest_(std::move(manifest)), device_(device) {
  select_graph_executor();
  encoder_ = load_module(manifest_.encoder.file);
  const Precision precision = manifest_.encoder.precision;
  if (precision == Precision::kFp16 && !device_.is_cuda()) {
    throw Error(ErrorKind::kUsage,
                "fp16 encoders need a CUDA device (LibTorch's CPU kernels lack fp16); use bf16 "
                "or fp32 on the CPU");
  }
  if (precision != Precision::kFp32) {
    encoder_dtype_ = precision == Precision::kFp16 ? torch::kHalf : torch::kBFloat16;
    encoder_.to(encoder_dtype_);
  }
  for (const auto& [task, config] : manifest_.tasks) {
    if (config.head_kind == HeadKind::kTextEmbeddings) {
      text_rows_[config.head_file] = load_text_embeddings(config);
      continue;
    }
    if (config.head_kind != HeadKind::kModule || heads_.count(config.head_file)) continue;
    heads_[config.head_file] = Head{config.head_file, load_module(config.head_file), !config.output_key.empty()};
  }
}

torch::Tensor ModelSet::load_text_embeddings(const TaskConfig& config) {
  const auto path = manifest_.file(config.head_file);
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw Error(ErrorKind::kModel, "cannot read the text embeddings", path.string());
  torch::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    throw Error(ErrorKind::kModel,
                "cannot read the text embeddings (expected a tensor saved with torch.save): " + torch_error_line(e),
                path.string());
  }
  if (!value.isTensor()) {
    throw Error(ErrorKind::kModel, "holds a " + value.tagKind() + "; expected the [classes, feature_dim] tensor",
                path.string());
  }
  torch::Tensor rows = value.toTensor();
  const long feature_dim = manifest_.encoder.feature_dim;
  if (rows.dim() != 2 || rows.size(1) != feature_dim || rows.size(0) != config.head_outputs) {
    throw Error(ErrorKind::kModel,
                "text embeddings are " + shape_of(rows) + ", expected [" + std::to_string(config.head_outputs) + ", " +
                    std::to_string(feature_dim) +
                    "]: one row per class the class_map uses, as wide as the "
                    "encoder's features (the image tower must be exported with its projection)",
                path.string());
  }
  if (!rows.is_floating_point()) {
    throw Error(ErrorKind::kModel, "text embeddings must be floating point", path.string());
  }
  rows = rows.to(torch::kFloat32);
  if (!torch::isfinite(rows).all().item<bool>()) {
    throw Error(ErrorKind::kModel, "text embeddings hold NaN or Inf", path.string());
  }
  const torch::Tensor norms = rows.norm(2, 1);
  for (int64_t c = 0; c < rows.size(0); ++c) {
    if (norms[c].item<float>() == 0.0f) {
      throw Error(ErrorKind::kModel, "text embedding row " + std::to_string(c) + " is all zeros", path.string());
    }
  }
  return l2_normalised(rows).to(device_).contiguous();
}

torch::jit::script::Module ModelSet::load_module(const std::string& file) {
  return load_torchscript(manifest_.file(file), device_);
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
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kModel, "encoder failed on input " + shape_of(images) + ": " + torch_error_line(e), path);
  }
  if (output.dim() != 2 || output.size(0) != images.size(0) || output.size(1) != manifest_.encoder.feature_dim) {
    throw Error(ErrorKind::kModel,
                "encoder output is " + shape_of(output) + " for input " + shape_of(images) +
                    ", the manifest expects [" + std::to_string(images.size(0)) + ", " +
                    std::to_string(manifest_.encoder.feature_dim) + "] (feature_dim)",
                path);
  }
  output = output.to(torch::kCPU, torch::kFloat32);
  if (manifest_.encoder.normalize == FeatureNormalization::kL2) {
    output = output / output.norm(2, 1, /*keepdim=*/true).clamp_min(1e-12);  // F.normalize
  }
  return output.contiguous();
}

torch::Tensor ModelSet::head_output(const torch::IValue& output, const TaskConfig& config, const std::string& file,
                                    const std::vector<int64_t>& input_shape) {
  const auto path = manifest_.file(file).string();
  torch::Tensor tensor;
  if (!config.output_key.empty()) {
    if (!output.isGenericDict()) {
      throw Error(ErrorKind::kModel,
                  std::string("task ") + task_key(config.task) + " reads output '" + config.output_key +
                      "', but the head does not return a dict",
                  path);
    }
    auto dict = output.toGenericDict();
    if (!dict.contains(config.output_key)) {
      std::string keys;
      for (const auto& entry : dict) keys += (keys.empty() ? "" : ", ") + entry.key().toStringRef();
      throw Error(ErrorKind::kModel, "the head's dict has no '" + config.output_key + "' (it has: " + keys + ")", path);
    }
    tensor = dict.at(config.output_key).toTensor();
  } else {
    if (!output.isTensor()) {
      throw Error(ErrorKind::kModel,
                  "the head returns a " + output.tagKind() +
                      "; a plain head must return a tensor (use {\"file\", \"output\"} for dicts)",
                  path);
    }
    tensor = output.toTensor();
  }
  const int64_t frames = input_shape[1];
  if (tensor.dim() != 3 || tensor.size(0) != 1 || tensor.size(1) != frames || tensor.size(2) != config.head_outputs) {
    throw Error(ErrorKind::kModel,
                std::string("task ") + task_key(config.task) + ": head output is " + shape_of(tensor) + " for input " +
                    shape_of(input_shape) + ", expected [1, " + std::to_string(frames) + ", " +
                    std::to_string(config.head_outputs) + "]",
                path);
  }
  tensor = tensor[0].to(torch::kCPU, torch::kFloat32);
  switch (config.activation) {
    case Activation::kNone:
      break;
    case Activation::kTanh:
      tensor = torch::tanh(tensor);
      break;
    case Activation::kSoftmax:
      tensor = torch::softmax(tensor, 1);
      break;
    case Activation::kSigmoid:
      tensor = torch::sigmoid(tensor);
      break;
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
    if (config.uses_columns()) {  // the encoder's own per-frame scores: no head to run
      const torch::Tensor columns = input.narrow(2, config.columns_first, config.columns_end - config.columns_first);
      results[task] = head_output(columns, config, manifest_.encoder.file, input_shape);
      continue;
    }
    if (config.head_kind == HeadKind::kTextEmbeddings) {  // per frame: scale * cos(feature, class row)
      const torch::Tensor& rows = text_rows_.at(config.head_file);
      const torch::Tensor logits =
          torch::matmul(l2_normalised(input.to(torch::kFloat32)), rows.t()) * config.logit_scale;
      results[task] = head_output(logits, config, config.head_file, input_shape);
      continue;
    }
    auto cached = outputs.find(config.head_file);
    if (cached == outputs.end()) {
      try {
        cached = outputs.emplace(config.head_file, heads_.at(config.head_file).module.forward({input})).first;
      } catch (const std::exception& e) {
        throw Error(ErrorKind::kModel,
                    "head failed on input " + shape_of(input_shape) + " (feature_dim " +
                        std::to_string(manifest_.encoder.feature_dim) + "): " + torch_error_line(e),
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
  report["encoder"] = {
      {"file", manifest_.encoder.file}, {"input", images.sizes().vec()}, {"output", features.sizes().vec()}};
  std::vector<Task> tasks;
  for (const auto& [task, config] : manifest_.tasks) tasks.push_back(task);
  // Two lengths: a head that only works for one T (e.g. traced with a fixed length) must fail here.
  for (long frames : {window_frames, std::max(1L, window_frames / 2 + 1)}) {
    torch::Tensor window = torch::randn({frames, manifest_.encoder.feature_dim});
    auto outputs = run_heads(window, tasks);
    for (const auto& [task, output] : outputs) {
      report["heads"][task_key(task)].push_back({{"file", head_description(manifest_.tasks.at(task))},
                                                 {"input", std::vector<int64_t>{1, frames, window.size(1)}},
                                                 {"output", output.sizes().vec()}});
    }
  }
  return report;
}

}  // namespace abaw
