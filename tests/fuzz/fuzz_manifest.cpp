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
    }
  } catch (const abaw::Error&) {
  }
  return 0;
}
