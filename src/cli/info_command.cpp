#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <iostream>

#include "abaw/model_set.hpp"
#include "abaw/runtime.hpp"
#include "cli/commands.hpp"

namespace abaw::cli {
namespace {

struct InfoOptions {
  std::string model_set;
  std::string device = "cpu";
  bool json = false;
};

void print_text(const Manifest& m, const nlohmann::json& check) {
  const auto& p = m.encoder.preprocess;
  std::cout << "model set   " << m.name << "  (" << m.folder.string() << ")\n";
  if (!m.description.empty()) std::cout << "            " << m.description << "\n";
  std::cout << "encoder     " << m.encoder.file << "  feature_dim " << m.encoder.feature_dim << ", "
            << name_of(kPrecisionNames, m.encoder.precision) << ", "
            << name_of(kMemoryFormatNames, m.encoder.memory_format)
            << (m.encoder.normalize == FeatureNormalization::kL2 ? ", L2-normalised" : "") << "\n"
            << "preprocess  resize " << p.resize << " (" << name_of(kResizeModeNames, p.resize_mode) << ", "
            << name_of(kInterpolationNames, p.interpolation) << (p.antialias ? ", antialias" : "") << ")";
  if (p.crop > 0) std::cout << ", centre crop " << p.crop;
  std::cout << ", " << name_of(kColorOrderNames, p.color_order) << ", scale " << p.scale << ", mean [";
  for (size_t i = 0; i < p.mean.size(); ++i) std::cout << (i ? ", " : "") << p.mean[i];
  std::cout << "], std [";
  for (size_t i = 0; i < p.std.size(); ++i) std::cout << (i ? ", " : "") << p.std[i];
  std::cout << "], EXIF orientation " << name_of(kExifOrientationNames, p.exif) << "\n"
            << "sequence    window " << m.sequence.window << ", stride " << m.sequence.stride << ", merge "
            << name_of(kMergeNames, m.sequence.merge) << ", missing frames "
            << name_of(kMissingFramesNames, m.sequence.missing_frames) << "\n";
  const FacePipelineSpec& f = m.faces;
  if (f.detector || f.style || f.size || f.margin) {
    std::cout << "faces       (run --videos)";
    if (f.detector) std::cout << " detector " << name_of(kDetectorNames, *f.detector);
    if (f.style) std::cout << " style " << name_of(kCropStyleNames, *f.style);
    if (f.size) std::cout << " size " << *f.size;
    if (f.margin) std::cout << " margin " << *f.margin;
    std::cout << "\n";
  }
  for (const auto& [task, c] : m.tasks) {
    std::cout << "task " << task_key(task) << std::string(7 - std::string(task_key(task)).size(), ' ')
              << head_description(c);
    std::cout << "  K " << c.head_outputs << ", activation " << name_of(kActivationNames, c.activation);
    if (task == Task::kEXPR) {
      std::cout << ", class_map [";
      for (size_t i = 0; i < c.class_map.size(); ++i) {
        std::cout << (i ? "," : "") << (c.class_map[i] < 0 ? std::string("null") : std::to_string(c.class_map[i]));
      }
      std::cout << "], mode_filter " << c.mode_filter;
    }
    if (task == Task::kAU) {
      std::cout << ", thresholds [";
      for (size_t i = 0; i < c.thresholds.size(); ++i) std::cout << (i ? "," : "") << c.thresholds[i];
      std::cout << "]";
    }
    std::cout << ", mean_filter " << c.mean_filter << "\n";
  }
  const auto& encoder = check["encoder"];
  std::cout << "check       encoder " << encoder["input"].dump() << " -> " << encoder["output"].dump() << "\n";
  for (const auto& [task, runs] : check["heads"].items()) {
    for (const auto& r : runs) {
      std::cout << "            " << task << " head " << r["input"].dump() << " -> scores " << r["output"].dump()
                << "\n";
    }
  }
  const auto versions = runtime_versions();
  std::cout << "runtime     LibTorch " << versions["libtorch"].get<std::string>() << ", OpenCV "
            << versions["opencv"].get<std::string>() << ", BLAS " << versions["blas"].get<std::string>() << "\n"
            << "OK: every file loads and the shapes agree with the manifest\n";
}

}  // namespace

Action add_info_command(CLI::App& app) {
  auto options = std::make_shared<InfoOptions>();
  CLI::App* info =
      app.add_subcommand("info", "Describe a model set and prove it runs (dummy batch through every file)");
  info->add_option("--model-set", options->model_set, "Model-set folder")->required()->check(CLI::ExistingDirectory);
  info->add_option("--device", options->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  info->add_flag("--json", options->json, "Print the description as JSON");
  return [options]() -> int {
    Manifest manifest = load_manifest(options->model_set);
    ModelSet models(manifest, resolve_device(options->device));
    warn_about_slow_blas();
    // A short window keeps the check fast; two lengths are tried inside.
    const nlohmann::json check = models.self_check(std::min<long>(manifest.sequence.window, 16));
    if (options->json) {
      std::cout << nlohmann::json{{"name", manifest.name}, {"check", check}, {"runtime", runtime_versions()}}.dump(2)
                << "\n";
    } else {
      print_text(manifest, check);
    }
    return 0;
  };
}

}  // namespace abaw::cli
