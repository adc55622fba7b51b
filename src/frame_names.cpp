#include "abaw/frame_names.hpp"

#include <cctype>
#include <cstdio>

#include "abaw/error.hpp"

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

// A byte for messages: printable as itself, anything else as \xNN.
std::string shown(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x20 && byte < 0x7f) return std::string(1, c);
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "\\x%02x", byte);
  return buffer;
}

}  // namespace

std::string video_name_problem(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name == "." || name == "..") return "is a relative folder reference, not a name";
  if (name.size() > kMaxVideoNameBytes) {
    return "is " + std::to_string(name.size()) + " bytes long (at most " + std::to_string(kMaxVideoNameBytes) + ")";
  }
  if (name.front() == '-') return "starts with '-'";
  if (name.front() == '.') return "starts with '.' (hidden names are not videos)";
  for (char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '/' || c == '\\') return "contains a path separator ('" + shown(c) + "'): a video name is one folder name";
    if (c == ',') return "contains ',', which would split the submission's image_location field";
    if (byte < 0x20 || byte == 0x7f) return "contains the control character " + shown(c);
  }
  return {};
}

VideoName VideoName::checked(std::string_view name, const std::string& file, long line, std::string_view hint) {
  const std::string problem = video_name_problem(name);
  if (!problem.empty()) {
    std::string quoted(name.substr(0, 80));
    for (char& c : quoted) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    std::string message = "video name '" + quoted + "' " + problem;
    if (!hint.empty()) message += " (" + std::string(hint) + ")";
    throw Error(ErrorKind::kInput, message, file, line);
  }
  return VideoName(std::string(name));
}

std::optional<VideoName> VideoName::parse(std::string_view name) {
  if (!video_name_problem(name).empty()) return std::nullopt;
  return VideoName(std::string(name));
}

std::filesystem::path video_path(const std::filesystem::path& folder, const VideoName& video, std::string_view suffix) {
  // Both only through a bug: every VideoName but the default one passed video_name_problem.
  if (video.empty()) throw Error(ErrorKind::kRuntime, "internal: a path for an empty video name", folder.string());
  if (suffix.find('/') != std::string_view::npos) {
    throw Error(ErrorKind::kRuntime, "internal: a video path suffix with '/'", folder.string());
  }
  return folder / (video.str() + std::string(suffix));
}

VideoName video_name_of_file(const std::filesystem::path& file) {
  return VideoName::checked(file.stem().string(), file.string());
}

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

std::optional<ImageLocation> parse_image_location(std::string_view location, std::string* problem) {
  auto fail = [&](std::string why) -> std::optional<ImageLocation> {
    if (problem) *problem = std::move(why);
    return std::nullopt;
  };
  const size_t slash = location.rfind('/');
  if (slash == std::string_view::npos) return fail("no '/' between video and frame");
  const std::string_view video = location.substr(0, slash);
  if (std::string why = video_name_problem(video); !why.empty()) {
    return fail("the video name '" + std::string(video.substr(0, 80)) + "' " + why);
  }
  auto frame = parse_crop_file_name(location.substr(slash + 1));
  if (!frame) return fail("'" + std::string(location.substr(slash + 1, 40)) + "' is not a frame file name");
  return ImageLocation{*VideoName::parse(video), *frame};
}

std::string format_image_location(const std::string& video, long frame) {
  return video + "/" + format_crop_file_name(frame);
}

std::string image_location_form() { return "'video/NNNNN.jpg' (frame 1 to " + std::to_string(kMaxFrameNumber) + ")"; }

std::vector<std::filesystem::directory_entry> list_folder(const std::filesystem::path& folder, const char* what) {
  std::vector<std::filesystem::directory_entry> entries;
  std::error_code ec;
  std::filesystem::directory_iterator it(folder, ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) entries.push_back(*it);
  if (ec) throw Error(ErrorKind::kInput, std::string("cannot list the ") + what + ": " + ec.message(), folder.string());
  return entries;
}

}  // namespace abaw
