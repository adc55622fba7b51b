// A loaded model set: the manifest's TorchScript encoder and heads on one device, run in
// inference mode, with every input and output shape checked against the manifest.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/script.h>

#include "abaw/manifest.hpp"

namespace abaw {

class ModelSet {
 public:
  // Loads every TorchScript file the manifest names onto `device`, in eval mode. Throws
  // Error(kModel) naming the file when one cannot be loaded.
  ModelSet(Manifest manifest, torch::Device device);

  const Manifest& manifest() const { return manifest_; }
  torch::Device device() const { return device_; }

  // images: float32 [N, C, S, S], or decode_batch's uint8 [N, S, S, C] pixels (normalised here,
  // on the model's device), on any device. Passed on in the manifest's memory format. Returns
  // float32 [N, feature_dim] on the CPU.
  // Throws Error(kModel) naming the encoder file and both shapes when the output disagrees.
  torch::Tensor encode(const torch::Tensor& images);

  // features: float32 [T, feature_dim] on the CPU, one window. Returns, for each task, float32
  // [T, task_width] on the CPU: activated, and in ABAW class order for EXPR. Heads shared by
  // several tasks run once. Throws Error(kModel) naming the head file and shapes on mismatch.
  std::map<Task, torch::Tensor> run_heads(const torch::Tensor& features, const std::vector<Task>& tasks);

  // Pushes a dummy batch through the encoder and every head (with `window_frames` frames) and
  // returns what it saw, e.g. {"encoder": {"input": [2,3,224,224], "output": [2,512]}, ...}.
  // Throws the same errors as encode() / run_heads().
  nlohmann::json self_check(long window_frames);

 private:
  struct Head {
    std::string file;
    torch::jit::script::Module module;
    bool returns_dict = false;
  };

  torch::jit::script::Module load_module(const std::string& file);
  // The task's [C, feature_dim] class rows (torch.save of a tensor), checked and L2-normalised.
  torch::Tensor load_text_embeddings(const TaskConfig& config);
  torch::Tensor head_output(const torch::IValue& output, const TaskConfig& config, const std::string& file,
                            const std::vector<int64_t>& input_shape);

  Manifest manifest_;
  torch::Device device_;
  torch::jit::script::Module encoder_;
  torch::ScalarType encoder_dtype_ = torch::kFloat32;
  std::map<std::string, Head> heads_;               // by file name
  std::map<std::string, torch::Tensor> text_rows_;  // text-embeddings heads' unit rows, by file name
};

}  // namespace abaw
