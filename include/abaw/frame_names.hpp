// Aff-Wild2 crop names: `<video>/<NNNNN>.jpg`, 1-based frame numbers, five digits (the plain
// number once it no longer fits).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace abaw {

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
  std::string video;
  long frame = 0;
};

// Parses "video/00042.jpg"; nothing when it has no '/' or the part after the last '/' is not a
// crop file name. Video names may themselves contain '/'-free characters only.
std::optional<ImageLocation> parse_image_location(std::string_view location);

// "video/00042.jpg".
std::string format_image_location(const std::string& video, long frame);

// What parse_image_location accepts, for error messages: "'video/NNNNN.jpg' (frame 1 to 9999999)".
std::string image_location_form();

}  // namespace abaw
