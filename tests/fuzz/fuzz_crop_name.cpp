#include <cstdint>
#include <string>

#include "abaw/frame_names.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (auto frame = abaw::parse_crop_file_name(text)) {
    if (*frame < 1) __builtin_trap();
    // Formatting and parsing again is the identity on frame numbers.
    if (abaw::parse_crop_file_name(abaw::format_crop_file_name(*frame)) != frame) __builtin_trap();
  }
  if (auto location = abaw::parse_image_location(text)) {
    if (location->video.empty() || location->frame < 1) __builtin_trap();
    auto again = abaw::parse_image_location(abaw::format_image_location(location->video, location->frame));
    if (!again || again->video != location->video || again->frame != location->frame) __builtin_trap();
  }
  return 0;
}
