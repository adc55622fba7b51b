// Video names become folder and file names under folders the user gave: whatever bytes a frame
// list, annotation file name or video list holds, an accepted name joined to a folder must stay
// one component inside it and must not break the submission's comma-separated rows.
#include <cstdint>
#include <filesystem>
#include <string>

#include "abaw/frame_names.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto name = abaw::VideoName::parse(text);
  if (name.has_value() != abaw::video_name_problem(text).empty()) __builtin_trap();
  if (name) {
    const std::filesystem::path root = "/root-folder";
    const std::filesystem::path path = abaw::video_path(root, *name, ".csv");
    if (path.parent_path() != root || path.lexically_normal() != path) __builtin_trap();
    if (path.filename().string() != name->str() + ".csv") __builtin_trap();
    if (text.find_first_of(",\n\r") != std::string::npos) __builtin_trap();
    if (text.size() > abaw::kMaxVideoNameBytes) __builtin_trap();
  }
  // The video part of an accepted image location is an accepted video name.
  if (auto location = abaw::parse_image_location(text)) {
    if (!abaw::VideoName::parse(location->video.str())) __builtin_trap();
  }
  return 0;
}
