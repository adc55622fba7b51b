#include "abaw/frame_source.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <fstream>

#include "abaw/face_crop.hpp"
#include "abaw/feature_cache.hpp"
#include "abaw/frame_names.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace abaw {

CropFolderSource::CropFolderSource(fs::path folder, PreprocessSpec spec, PreprocessPlace place, bool pinned,
                                   long long max_image_pixels)
    : folder_(std::move(folder)),
      spec_(std::move(spec)),
      place_(place),
      pinned_(pinned),
      max_image_pixels_(max_image_pixels) {}

VideoIndex CropFolderSource::index(const RowsOptions& rows, const std::vector<std::string>& videos) const {
  return build_video_index(IndexRequest{folder_, rows, videos});
}

DecodedImages CropFolderSource::decode(const VideoIndex& index, const std::vector<CropItem>& items) const {
  std::vector<fs::path> files;
  files.reserve(items.size());
  for (const auto& [video, crop] : items) files.push_back(index.videos[video].crops[crop].path);
  return decode_batch(files, spec_, place_, pinned_, max_image_pixels_);
}

uint64_t CropFolderSource::input_key(const VideoEntry& video) const { return crop_files_key(video); }

fs::path CropFolderSource::location(const VideoEntry& video) const { return video_path(folder_, video.name); }

json CropFolderSource::describe(const VideoIndex& index) const {
  json record = nullptr;
  const fs::path file = folder_ / kCropRecordFile;
  if (std::ifstream in(file); in) {
    const json written = json::parse(in, nullptr, false);
    if (!written.is_object() || !written.contains("videos") || !written["videos"].is_object()) {
      spdlog::warn("{}: not a crop record abaw-infer wrote; run.json leaves it out", file.string());
    } else {
      json videos = json::object();
      for (const auto& video : index.videos) {
        if (written["videos"].contains(video.name.str()))
          videos[video.name.str()] = written["videos"][video.name.str()];
      }
      record = {{"file", fs::absolute(file).string()}, {"videos", videos}};
    }
  }
  return {{"path", fs::absolute(folder_).string()}, {"crop_record", record}};
}

}  // namespace abaw
