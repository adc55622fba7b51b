#include "abaw/writers.hpp"

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "abaw/error.hpp"
#include "abaw/submission.hpp"

namespace fs = std::filesystem;

namespace abaw {
namespace {

[[noreturn]] void output_error(const std::string& what, const fs::path& path) {
  throw Error(ErrorKind::kOutput, what + ": " + std::strerror(errno), path.string());
}

void append_float(std::string& line, const char* format, float value) {
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, format, value);
  line += buffer;
}

}  // namespace

AtomicFile::AtomicFile(const fs::path& path, Durability durability) : path_(path), durability_(durability) {
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  if (ec) throw Error(ErrorKind::kOutput, "cannot create folder: " + ec.message(), path.parent_path().string());
  temp_path_ = path;
  temp_path_ += ".tmp-" + std::to_string(::getpid());
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (!file_) output_error("cannot create file", temp_path_);
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    std::error_code ec;
    fs::remove(temp_path_, ec);
  }
}

void AtomicFile::write(const std::string& text) {
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size()) output_error("write failed", temp_path_);
}

void AtomicFile::commit() {
  if (std::fflush(file_) != 0) output_error("write failed", temp_path_);
  if (durability_ == Durability::kPowerLoss && ::fsync(::fileno(file_)) != 0) output_error("sync failed", temp_path_);
  const int closed = std::fclose(file_);
  file_ = nullptr;
  if (closed != 0) {
    std::error_code ec;
    fs::remove(temp_path_, ec);
    output_error("close failed", temp_path_);
  }
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const int saved = errno;
    std::error_code ec;
    fs::remove(temp_path_, ec);
    errno = saved;
    output_error("cannot rename into place", path_);
  }
}

void write_file_atomically(const fs::path& path, const std::string& text, Durability durability) {
  AtomicFile file(path, durability);
  file.write(text);
  file.commit();
}

void write_submission(const fs::path& path, Task task, const std::vector<FrameRow>& rows,
                      const std::map<std::string, VideoResult>& results) {
  AtomicFile file(path);
  std::string chunk = submission_header(task) + "\n";
  for (const FrameRow& row : rows) {
    auto it = results.find(row.video);
    if (it == results.end() || row.frame < 1 || row.frame > it->second.predicted.frames) {
      throw Error(ErrorKind::kRuntime, "internal: no prediction for " + row.image_location, path.string());
    }
    const float* values = it->second.predicted.row(row.frame - 1);
    chunk += row.image_location;
    if (task == Task::kVA) {
      for (int c = 0; c < 2; ++c) {
        chunk += ',';
        append_float(chunk, "%.6f", values[c]);
      }
    } else {
      for (int c = 0; c < it->second.predicted.width; ++c) {
        chunk += ',';
        chunk += std::to_string(static_cast<int>(values[c]));
      }
    }
    chunk += '\n';
    if (chunk.size() > (1 << 16)) {
      file.write(chunk);
      chunk.clear();
    }
  }
  file.write(chunk);
  file.commit();
}

void write_json(const fs::path& path, const nlohmann::json& value) {
  write_file_atomically(path, value.dump(2) + "\n");
}

}  // namespace abaw
