#include "abaw/feature_cache.hpp"

#include <spdlog/spdlog.h>

#include <cstring>
#include <fstream>
#include <iterator>

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

// Reads fixed-size values from a byte buffer; any read past the end marks it truncated.
class Reader {
 public:
  explicit Reader(const std::string& bytes) : bytes_(bytes) {}
  template <typename T>
  bool get(T* value) {
    if (offset_ + sizeof(T) > bytes_.size()) return false;
    std::memcpy(value, bytes_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return true;
  }
  bool get_bytes(void* out, size_t size) {
    if (size > bytes_.size() - offset_) return false;
    std::memcpy(out, bytes_.data() + offset_, size);
    offset_ += size;
    return true;
  }
  size_t offset() const { return offset_; }

 private:
  const std::string& bytes_;
  size_t offset_ = 0;
};

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

std::optional<CachedFeatures> FeatureCache::load(const VideoEntry& video, uint64_t input_key,
                                                 bool crops_unknown) const {
  const fs::path file = file_for(video);
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto reject = [&](const std::string& why) -> std::optional<CachedFeatures> {
    spdlog::warn("{}: {}; recomputing", file.string(), why);
    return std::nullopt;
  };
  Reader r(bytes);
  char magic[8];
  uint32_t version = 0, dim = 0;
  uint64_t encoder = 0, crops = 0, count = 0;
  int64_t frames = 0;
  if (!r.get_bytes(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) return reject("not a feature cache file");
  if (!r.get(&version) || version != kVersion) return reject("cache format version differs");
  if (!r.get(&encoder) || !r.get(&crops) || !r.get(&dim) || !r.get(&frames) || !r.get(&count))
    return reject("truncated");
  if (bytes.size() < sizeof(uint64_t)) return reject("truncated");
  uint64_t stored_sum = 0;
  std::memcpy(&stored_sum, bytes.data() + bytes.size() - sizeof stored_sum, sizeof stored_sum);
  if (fnv1a(bytes.data(), bytes.size() - sizeof stored_sum) != stored_sum) return reject("checksum mismatch (corrupt)");
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
  if (count > bytes.size()) return reject("truncated");  // before allocating per crop
  features.readable.resize(count);
  features.crop_frames.resize(count);
  for (uint64_t i = 0; i < count; ++i) {
    int64_t frame = 0;
    if (!r.get(&frame) || !r.get(&features.readable[i])) return reject("truncated");
    if (!crops_unknown && frame != video.crops[i].frame) return reject("frame numbers differ from the crops");
    features.crop_frames[i] = static_cast<long>(frame);
  }
  features.rows.resize(count * dim);
  if (!r.get_bytes(features.rows.data(), features.rows.size() * sizeof(float))) return reject("truncated");
  if (r.offset() + sizeof stored_sum != bytes.size()) return reject("unexpected trailing bytes");
  return features;
}

void FeatureCache::store(const VideoEntry& video, uint64_t input_key, const CachedFeatures& features) const {
  std::string out;
  out.reserve(64 + video.crops.size() * 9 + features.rows.size() * sizeof(float));
  out.append(kMagic, 8);
  put(out, kVersion);
  put(out, encoder_key_);
  put(out, input_key);
  put(out, static_cast<uint32_t>(feature_dim_));
  put(out, static_cast<int64_t>(video.frames));
  put(out, static_cast<uint64_t>(video.crops.size()));
  for (size_t i = 0; i < video.crops.size(); ++i) {
    put(out, static_cast<int64_t>(video.crops[i].frame));
    put(out, features.readable[i]);
  }
  out.append(reinterpret_cast<const char*>(features.rows.data()), features.rows.size() * sizeof(float));
  put(out, fnv1a(out.data(), out.size()));
  write_file_atomically(file_for(video), out, Durability::kProcessKill);  // checksummed: a cut entry is recomputed
}

}  // namespace abaw
