#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "abaw/error.hpp"
#include "abaw/face_crop.hpp"
#include "cli/commands.hpp"

namespace fs = std::filesystem;

namespace abaw::cli {

Action add_crop_command(CLI::App& app) {
  struct Options {
    std::string videos, output, detector = "haar", yunet_model, cascade;
    float score_threshold = 0.6f;
    int min_face = 40;
    CropOptions crop;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("crop", "Detect and crop faces of plain videos into the Aff-Wild2 layout");
  cmd->add_option("--videos", o->videos, "A video file, or a folder of them (.mp4 .avi .mov .mkv .webm; .jpg .png count as one-frame videos)")
      ->required()
      ->check(CLI::ExistingPath);
  cmd->add_option("--output", o->output, "Crop folder: <output>/<video>/00001.jpg ...")->required();
  cmd->add_option("--detector", o->detector, "haar (OpenCV's cascade from opencv-data) or yunet (needs --yunet-model)")
      ->check(CLI::IsMember({"haar", "yunet"}))
      ->capture_default_str();
  cmd->add_option("--yunet-model", o->yunet_model, "YuNet ONNX file (2023 layout, 640x640 input)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--cascade", o->cascade, "Haar cascade XML (default: Debian's frontal-face cascade)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--score-threshold", o->score_threshold, "YuNet: minimum face score")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--min-face", o->min_face, "Smallest face side in pixels")->check(CLI::Range(8, 4096))->capture_default_str();
  cmd->add_option("--size", o->crop.size, "Side of the square crops")->check(CLI::Range(16, 4096))->capture_default_str();
  cmd->add_option("--margin", o->crop.margin, "Extra side around the face box, as a fraction of its side")
      ->check(CLI::Range(0.0, 3.0))
      ->capture_default_str();
  cmd->add_option("--jpeg-quality", o->crop.jpeg_quality, "JPEG quality")->check(CLI::Range(1, 100))->capture_default_str();
  return [o]() -> int {
    if (o->detector == "yunet" && o->yunet_model.empty()) {
      throw Error(ErrorKind::kUsage, "--detector yunet needs --yunet-model FILE");
    }
    std::unique_ptr<FaceDetector> detector =
        o->detector == "yunet" ? make_yunet_detector(o->yunet_model, o->score_threshold, o->min_face)
                               : make_haar_detector(o->cascade, o->min_face);
    std::vector<fs::path> videos;
    if (fs::is_directory(o->videos)) {
      // Still images are one-frame videos (OpenCV opens them the same way).
      const std::set<std::string> extensions{".mp4", ".avi", ".mov", ".mkv", ".webm", ".jpg", ".jpeg", ".png"};
      std::error_code ec;
      for (auto it = fs::directory_iterator(o->videos, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        const fs::directory_entry& entry = *it;
        if (entry.path().filename().string().front() == '.') continue;  // hidden, e.g. macOS "._clip.mp4"
        std::string extension = entry.path().extension().string();
        std::transform(extension.begin(), extension.end(), extension.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (std::error_code kind; entry.is_regular_file(kind) && extensions.count(extension)) {
          videos.push_back(entry.path());
        }
      }
      if (ec) throw Error(ErrorKind::kInput, "cannot list the video folder: " + ec.message(), o->videos);
      std::sort(videos.begin(), videos.end());
      if (videos.empty()) throw Error(ErrorKind::kInput, "no video files in the folder", o->videos);
    } else {
      videos.push_back(o->videos);
    }
    o->crop.output = o->output;
    // A killed earlier crop leaves its half-written staging folders behind; they are never read.
    remove_stale_crop_staging(o->output);
    spdlog::info("{} video(s), detector {}; one face is tracked per video", videos.size(), detector->description());
    std::vector<CroppedVideo> done;
    long failed = 0;
    for (const auto& video : videos) {
      try {
        done.push_back(crop_video(video, *detector, o->crop));
        std::printf("%s: %ld frames, %ld with a face -> %s\n", done.back().name.c_str(), done.back().frames_decoded,
                    done.back().frames_with_face, (fs::path(o->output) / done.back().name).string().c_str());
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::kOutput) throw;  // the next video would fail the same way
        spdlog::error("{}", e.what());
        ++failed;
      }
      // Written after each video, so an interrupted crop still tells `run` what it finished.
      if (!done.empty()) {
        write_frame_counts(o->output, done);
        write_crop_record(o->output, done, o->crop);
      }
    }
    if (failed > 0) {
      spdlog::error("{} of {} video(s) failed", failed, videos.size());
      return kExitPartial;
    }
    return kExitOk;
  };
}

}  // namespace abaw::cli
