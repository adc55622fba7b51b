#include "abaw/feature_cache.hpp"

#include <spdlog/spdlog.h>

#include <cstring>
#include <fstream>
#include <algorithm>
#include <vector>

#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"
#include "abaw/writers.hpp"

namespace fs = std::filesystem;

namespace abaw {
namespace {

constexpr char kMagic[8] = {'A', 'B', 'A', 'W', 'F', 'E', 'A', 'T'};
constexpr uint32_t kVersion = 2;  // 2: the video's frame count (streamed videos)

template <typename T>
void put(std::string& out, const T& value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

// Reads fixed-size values from a file, `left` bytes at most; any read past them marks it truncated.
class Reader {
 public:
  Reader(std::istream& in, uint64_t left) : in_(in), left_(left) {}
  template <typename T>
  bool get(T* value) {
    return get_bytes(value, sizeof(T));
  }
  bool get_bytes(void* out, uint64_t size) {
    if (size > left_ || !in_.read(static_cast<char*>(out), static_cast<std::streamsize>(size))) return false;
    left_ -= size;
    return true;
  }
  uint64_t left() const { return left_; }

 private:
  std::istream& in_;
  uint64_t left_;
};

// Rows read or written per piece: the entry of a long video is never whole in memory.
constexpr size_t kRowsPerPiece = 1024;

}  // namespace

uint64_t fnv1a(const void* data, size_t size, uint64_t seed) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  uint64_t hash = seed;
  for (size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

uint64_t encoder_key(const Manifest& manifest, uint64_t encoder_file_hash) {
  const PreprocessSpec& p = manifest.encoder.preprocess;
  const std::string spec = std::to_string(p.resize) + name_of(kResizeModeNames, p.resize_mode) +
                           name_of(kInterpolationNames, p.interpolation) + (p.antialias ? " antialias" : "") +
                           std::to_string(p.crop) + name_of(kColorOrderNames, p.color_order) +
                           std::to_string(manifest.encoder.feature_dim) +
                           name_of(kPrecisionNames, manifest.encoder.precision) +
                           name_of(kMemoryFormatNames, manifest.encoder.memory_format) +
                           (manifest.encoder.normalize == FeatureNormalization::kL2 ? " l2" : "") + "exif " +
                           name_of(kExifOrientationNames, p.exif);
  uint64_t hash = fnv1a(spec.data(), spec.size(), encoder_file_hash);
  hash = fnv1a(&p.scale, sizeof p.scale, hash);
  hash = fnv1a(p.mean.data(), p.mean.size() * sizeof(float), hash);
  return fnv1a(p.std.data(), p.std.size() * sizeof(float), hash);
}

FeatureCache::FeatureCache(fs::path folder, uint64_t encoder_key, int feature_dim)
    : folder_(std::move(folder)), encoder_key_(encoder_key), feature_dim_(feature_dim) {
  std::error_code ec;
  fs::create_directories(folder_, ec);
  if (ec) throw Error(ErrorKind::kOutput, "cannot create the feature cache folder: " + ec.message(), folder_.string());
}

fs::path FeatureCache::file_for(const VideoEntry& video) const { return video_path(folder_, video.name, ".features"); }

uint64_t hash_file(const fs::path& file, uint64_t seed) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorKind::kModel, "cannot read the file", file.string());
  uint64_t hash = seed;
  std::vector<char> chunk(1 << 20);
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    hash = fnv1a(chunk.data(), static_cast<size_t>(in.gcount()), hash);
  }
  return hash;
}

uint64_t crop_files_key(const VideoEntry& video) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (const CropFile& crop : video.crops) {
    std::error_code ec;
    const int64_t size = static_cast<int64_t>(fs::file_size(crop.path, ec));
    const int64_t mtime = static_cast<int64_t>(fs::last_write_time(crop.path, ec).time_since_epoch().count());
    const int64_t fields[3] = {crop.frame, ec ? -1 : size, ec ? -1 : mtime};
    hash = fnv1a(fields, sizeof fields, hash);
  }
  return hash;
}

std::optional<CachedFeatures> FeatureCache::load(const VideoEntry& video, uint64_t input_key, FeatureRows rows,
                                                 bool crops_unknown) const {
  const fs::path file = file_for(video);
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  auto reject = [&](const std::string& why) -> std::optional<CachedFeatures> {
    spdlog::warn("{}: {}; recomputing", file.string(), why);
    return std::nullopt;
  };
  // The checksum first, a piece at a time: nothing of a corrupt entry is believed.
  uint64_t sum = fnv1a(nullptr, 0), stored_sum = 0, size = 0;
  {
    std::vector<char> piece(1 << 20);
    std::vector<char> last;  // the final 8 bytes seen so far
    while (in.read(piece.data(), static_cast<std::streamsize>(piece.size())) || in.gcount() > 0) {
      const size_t got = static_cast<size_t>(in.gcount());
      last.insert(last.end(), piece.begin(), piece.begin() + static_cast<long>(got));
      if (last.size() > sizeof stored_sum) {
        const size_t settled = last.size() - sizeof stored_sum;
        sum = fnv1a(last.data(), settled, sum);
        last.erase(last.begin(), last.begin() + static_cast<long>(settled));
      }
      size += got;
    }
    if (last.size() < sizeof stored_sum) return reject("truncated");
    std::memcpy(&stored_sum, last.data(), sizeof stored_sum);
  }
  in.clear();
  in.seekg(0);
  Reader r(in, size - sizeof stored_sum);
  char magic[8];
  uint32_t version = 0, dim = 0;
  uint64_t encoder = 0, crops = 0, count = 0;
  int64_t frames = 0;
  if (!r.get_bytes(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) return reject("not a feature cache file");
  if (!r.get(&version) || version != kVersion) return reject("cache format version differs");
  if (!r.get(&encoder) || !r.get(&crops) || !r.get(&dim) || !r.get(&frames) || !r.get(&count))
    return reject("truncated");
  if (sum != stored_sum) return reject("checksum mismatch (corrupt)");
  if (encoder != encoder_key_ || dim != static_cast<uint32_t>(feature_dim_)) {
    spdlog::info("{}: made by another encoder or preprocessing; recomputing", file.string());
    return std::nullopt;
  }
  if ((!crops_unknown && count != video.crops.size()) || crops != input_key) {
    spdlog::info("{}: the video's crop files changed; recomputing", file.string());
    return std::nullopt;
  }
  CachedFeatures features;
  features.frames = static_cast<long>(frames);
  if (count > r.left()) return reject("truncated");  // before allocating per crop
  features.readable.resize(count);
  features.crop_frames.resize(count);
  for (uint64_t i = 0; i < count; ++i) {
    int64_t frame = 0;
    if (!r.get(&frame) || !r.get(&features.readable[i])) return reject("truncated");
    if (!crops_unknown && frame != video.crops[i].frame) return reject("frame numbers differ from the crops");
    features.crop_frames[i] = static_cast<long>(frame);
  }
  if (count * dim * sizeof(float) != r.left()) {
    return reject(count * dim * sizeof(float) > r.left() ? "truncated" : "unexpected trailing bytes");
  }
  features.rows = std::move(rows);
  features.rows.resize(count);
  std::vector<float> piece(kRowsPerPiece * dim);
  for (uint64_t first = 0; first < count; first += kRowsPerPiece) {
    const uint64_t n = std::min<uint64_t>(kRowsPerPiece, count - first);
    if (!r.get_bytes(piece.data(), n * dim * sizeof(float))) return reject("truncated");
    for (uint64_t i = 0; i < n; ++i) features.rows.set(first + i, piece.data() + i * dim);
  }
  return features;
}

void FeatureCache::store(const VideoEntry& video, uint64_t input_key, const FeatureRows& rows,
                         const std::vector<uint8_t>& readable) const {
  // Checksummed: a cut entry is recomputed, so a process kill is all it must survive.
  AtomicFile file(file_for(video), Durability::kProcessKill);
  uint64_t sum = fnv1a(nullptr, 0);
  auto write = [&](const std::string& bytes) {
    sum = fnv1a(bytes.data(), bytes.size(), sum);
    file.write(bytes);
  };
  std::string out;
  out.reserve(64 + video.crops.size() * 9);
  out.append(kMagic, 8);
  put(out, kVersion);
  put(out, encoder_key_);
  put(out, input_key);
  put(out, static_cast<uint32_t>(feature_dim_));
  put(out, static_cast<int64_t>(video.frames));
  put(out, static_cast<uint64_t>(video.crops.size()));
  for (size_t i = 0; i < video.crops.size(); ++i) {
    put(out, static_cast<int64_t>(video.crops[i].frame));
    put(out, readable[i]);
  }
  write(out);
  const size_t dim = static_cast<size_t>(feature_dim_);
  std::vector<float> row(dim);
  for (size_t first = 0; first < rows.size(); first += kRowsPerPiece) {
    out.clear();
    for (size_t r = first; r < std::min(rows.size(), first + kRowsPerPiece); ++r) {
      rows.get(r, row.data());
      out.append(reinterpret_cast<const char*>(row.data()), dim * sizeof(float));
    }
    write(out);
  }
  out.clear();
  put(out, sum);
  file.write(out);
  file.commit();
}

}  // namespace abaw
