// Fuzz targets feed bytes to the file readers through a scratch file (the readers take paths,
// as the tool does). Any abaw::Error is an accepted outcome; a crash, a sanitizer report or
// any other exception is a bug.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace abaw::fuzz {

inline const std::filesystem::path& scratch_file() {
  static const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("abaw-fuzz-" + std::to_string(::getpid()) + ".txt");
  return path;
}

inline const std::filesystem::path& write_scratch(const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(scratch_file().c_str(), "wb");
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return scratch_file();
}

}  // namespace abaw::fuzz
