#include "abaw/feature_rows.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "abaw/error.hpp"

namespace fs = std::filesystem;

namespace abaw {
namespace {

Error spill_error(const std::string& what, const fs::path& where) {
  return Error(ErrorKind::kOutput, "features spill file: " + what + ": " + std::strerror(errno), where.string());
}

// Writes `size` bytes at `offset`, however many calls it takes; false on an error (errno says).
bool write_all(int fd, const void* data, size_t size, off_t offset) {
  const char* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = ::pwrite(fd, bytes, size, offset);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return false;
    bytes += written;
    offset += written;
    size -= static_cast<size_t>(written);
  }
  return true;
}

}  // namespace

FeatureRows::FeatureRows(int dim, fs::path spill_folder, size_t memory_limit_bytes)
    : dim_(dim), spill_folder_(std::move(spill_folder)), memory_limit_bytes_(memory_limit_bytes) {}

FeatureRows::~FeatureRows() { close_file(); }

FeatureRows::FeatureRows(FeatureRows&& other) noexcept { *this = std::move(other); }

FeatureRows& FeatureRows::operator=(FeatureRows&& other) noexcept {
  if (this == &other) return *this;
  close_file();
  dim_ = other.dim_;
  spill_folder_ = std::move(other.spill_folder_);
  memory_limit_bytes_ = other.memory_limit_bytes_;
  rows_ = std::exchange(other.rows_, 0);
  memory_ = std::move(other.memory_);
  fd_ = std::exchange(other.fd_, -1);
  return *this;
}

void FeatureRows::close_file() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void FeatureRows::spill() {
  std::string name = (spill_folder_ / ".features-spill-XXXXXX").string();
  fd_ = ::mkstemp(name.data());
  if (fd_ < 0) throw spill_error("cannot create it", spill_folder_);
  ::unlink(name.c_str());  // the open descriptor keeps it; nothing is left if the run is killed
  if (!write_all(fd_, memory_.data(), memory_.size() * sizeof(float), 0)) {
    throw spill_error("cannot write it", spill_folder_);
  }
  std::vector<float>().swap(memory_);
}

void FeatureRows::resize(size_t rows) {
  const size_t bytes = rows * dim_ * sizeof(float);
  if (fd_ < 0 && (spill_folder_.empty() || bytes <= memory_limit_bytes_)) {
    // Grown by half again rather than doubled: a long video in memory stays under 1.5x its rows.
    const size_t floats = rows * dim_;
    if (floats > memory_.capacity()) memory_.reserve(std::max(floats, memory_.capacity() + memory_.capacity() / 2));
    memory_.resize(floats, 0.0f);
    rows_ = rows;
    return;
  }
  if (fd_ < 0) spill();
  // Sparse: the new rows read as zeros and take no disk until written.
  if (::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) throw spill_error("cannot grow it", spill_folder_);
  rows_ = rows;
}

void FeatureRows::set(size_t row, const float* values) {
  if (fd_ < 0) {
    std::copy_n(values, dim_, memory_.data() + row * dim_);
    return;
  }
  if (!write_all(fd_, values, dim_ * sizeof(float), static_cast<off_t>(row * dim_ * sizeof(float)))) {
    throw spill_error("cannot write it", spill_folder_);
  }
}

void FeatureRows::get(size_t row, float* out) const {
  if (fd_ < 0) {
    std::copy_n(memory_.data() + row * dim_, dim_, out);
    return;
  }
  char* bytes = reinterpret_cast<char*>(out);
  size_t left = dim_ * sizeof(float);
  off_t offset = static_cast<off_t>(row * dim_ * sizeof(float));
  while (left > 0) {
    const ssize_t got = ::pread(fd_, bytes, left, offset);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      if (got == 0) errno = EIO;  // the file is never shorter than its rows: ftruncate sized it
      throw spill_error("cannot read it", spill_folder_);
    }
    bytes += got;
    offset += got;
    left -= static_cast<size_t>(got);
  }
}

}  // namespace abaw
