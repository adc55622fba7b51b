#include "abaw/frame_names.hpp"

#include <cctype>
#include <cstdio>

namespace abaw {
namespace {

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i) {
    char a = static_cast<char>(std::tolower(static_cast<unsigned char>(s[s.size() - suffix.size() + i])));
    if (a != suffix[i]) return false;
  }
  return true;
}

}  // namespace

std::optional<long> parse_crop_file_name(std::string_view name) {
  std::string_view stem;
  for (std::string_view ext : {".jpg", ".jpeg", ".png"}) {
    if (ends_with_ci(name, ext)) {
      stem = name.substr(0, name.size() - ext.size());
      break;
    }
  }
  if (stem.empty()) return std::nullopt;
  long value = 0;
  for (char c : stem) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
    if (value > kMaxFrameNumber) return std::nullopt;  // also keeps `long` from overflowing
  }
  if (value == 0) return std::nullopt;
  return value;
}

std::string format_crop_file_name(long frame) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%05ld.jpg", frame);
  return buffer;
}

std::optional<ImageLocation> parse_image_location(std::string_view location) {
  size_t slash = location.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  auto frame = parse_crop_file_name(location.substr(slash + 1));
  if (!frame) return std::nullopt;
  return ImageLocation{std::string(location.substr(0, slash)), *frame};
}

std::string format_image_location(const std::string& video, long frame) {
  return video + "/" + format_crop_file_name(frame);
}

std::string image_location_form() {
  return "'video/NNNNN.jpg' (frame 1 to " + std::to_string(kMaxFrameNumber) + ")";
}

}  // namespace abaw
