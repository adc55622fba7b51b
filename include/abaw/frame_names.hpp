// Names that become paths: video names (checked once where they enter, see VideoName) and
// Aff-Wild2 crop names, `<video>/<NNNNN>.jpg`, 1-based frame numbers, five digits (the plain
// number once it no longer fits).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace abaw {

// The longest video name accepted, in bytes: file names are at most 255 bytes on Linux file
// systems, and outputs append suffixes such as ".features.tmp-<pid>" to the name.
inline constexpr size_t kMaxVideoNameBytes = 200;

// Why `name` cannot be a video name, or "" when it can. A video name becomes one folder or file
// name under a folder the user gave (crops, output, feature cache) and the first field of a
// submission row, so it must be a single harmless path component: not empty, not "." or "..",
// no '/', '\', ',', NUL or other control character, not starting with '-' (read as an option by
// shell tools) or '.' (hidden, and the prefix of the tool's own temporary folders), at most
// kMaxVideoNameBytes.
std::string video_name_problem(std::string_view name);

// A video name that passed video_name_problem. Paths are built only from roots the user gave
// and VideoNames (video_path), so no input line can name a file outside those roots.
class VideoName {
 public:
  VideoName() = default;  // empty: not a usable name; video_path refuses it
  // Throws Error(kInput) "video name '...' <problem>[ (<hint>)]" located at `file`:`line` when
  // given; `hint` says what the line should have held.
  static VideoName checked(std::string_view name, const std::string& file = {}, long line = 0,
                           std::string_view hint = {});
  // The name, or nothing when it is not a valid video name.
  static std::optional<VideoName> parse(std::string_view name);

  const std::string& str() const { return name_; }
  operator const std::string&() const { return name_; }  // NOLINT: a checked name reads as a string
  bool empty() const { return name_.empty(); }
  bool operator==(const VideoName& other) const { return name_ == other.name_; }
  bool operator!=(const VideoName& other) const { return name_ != other.name_; }
  bool operator<(const VideoName& other) const { return name_ < other.name_; }
  friend bool operator==(const VideoName& a, std::string_view b) { return a.name_ == b; }

 private:
  explicit VideoName(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

// `<folder>/<video><suffix>`: the only way a video name is joined to a folder. `suffix` is the
// tool's own (".csv", ".done"); it must not contain '/'.
std::filesystem::path video_path(const std::filesystem::path& folder, const VideoName& video,
                                 std::string_view suffix = {});

// The video name of a per-video file (`<video>.txt`, `<video>.csv`): its stem, checked. Throws
// Error(kInput) naming the file when the stem is not a valid video name.
VideoName video_name_of_file(const std::filesystem::path& file);

// The largest frame number any reader accepts (92 hours at 30 fps, far past any Aff-Wild2 video).
// A video gets one row per frame up to its frame count, so a stray name such as a Unix timestamp
// ("1700000000.jpg") must be refused, not turned into a 1.7-billion-frame video.
inline constexpr long kMaxFrameNumber = 9'999'999;

// The frame number of a crop file name such as "00042.jpg" (also "123456.jpg", "7.jpg"),
// or nothing when the name is not a frame number 1..kMaxFrameNumber with a .jpg/.jpeg/.png
// extension.
std::optional<long> parse_crop_file_name(std::string_view file_name);

// "00042.jpg" for frame 42; frames past 99999 are written as the plain number.
std::string format_crop_file_name(long frame);

// One `image_location` of a frame list or submission: video name and 1-based frame number.
struct ImageLocation {
  VideoName video;
  long frame = 0;
};

// Parses "video/00042.jpg"; nothing when it has no '/', the part before it is not a valid video
// name, or the part after it is not a crop file name. With `problem`, says which (for messages).
std::optional<ImageLocation> parse_image_location(std::string_view location, std::string* problem = nullptr);

// "video/00042.jpg".
std::string format_image_location(const std::string& video, long frame);

// What parse_image_location accepts, for error messages: "'video/NNNNN.jpg' (frame 1 to 9999999)".
std::string image_location_form();

// Every entry of `folder`, in no particular order. Throws Error(kInput) "cannot list the <what>:
// <reason>" naming the folder when it is missing, not a folder, or unreadable, instead of the
// filesystem_error a plain directory_iterator throws midway.
std::vector<std::filesystem::directory_entry> list_folder(const std::filesystem::path& folder, const char* what);

}  // namespace abaw
