#include <cmath>
#include <cstdint>
#include <string>

#include "abaw/error.hpp"
#include "abaw/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    abaw::Manifest m = abaw::parse_manifest(text, "/set", "fuzz");
    // What parse_manifest accepts, the pipeline relies on.
    if (m.tasks.empty() || m.encoder.feature_dim < 1 || m.sequence.window < 1 || m.sequence.stride < 1) {
      __builtin_trap();
    }
    for (const auto& [task, config] : m.tasks) {
      if (task == abaw::Task::kEXPR && config.class_map.size() != 8) __builtin_trap();
      if (task == abaw::Task::kAU && config.thresholds.size() != 12) __builtin_trap();
      for (int index : config.class_map) {
        if (index >= config.head_outputs) __builtin_trap();
      }
      for (float t : config.thresholds) {
        if (!std::isfinite(t)) __builtin_trap();
      }
    }
    const abaw::PreprocessSpec& p = m.encoder.preprocess;
    if (p.resize < 1 || p.crop < 0 || p.crop > p.resize || !std::isfinite(p.scale)) __builtin_trap();
    for (float v : p.mean) {
      if (!std::isfinite(v)) __builtin_trap();
    }
    for (float v : p.std) {
      if (!(v > 0.0f) || !std::isfinite(v)) __builtin_trap();
    }
  } catch (const abaw::Error&) {
  }
  return 0;
}
