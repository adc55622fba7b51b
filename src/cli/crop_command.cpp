#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "abaw/error.hpp"
#include "abaw/face_crop.hpp"
#include "abaw/face_models.hpp"
#include "abaw/frame_names.hpp"
#include "abaw/runtime.hpp"
#include "cli/commands.hpp"

namespace fs = std::filesystem;

namespace abaw::cli {
namespace {

// models/default/faces under the current folder, else in the repository the running binary was
// built in (build/abaw-infer -> build/../models/default/faces); the former when neither has one,
// so that the error names where to make them.
fs::path default_face_models() {
  const fs::path here = kDefaultFaceModels;
  std::error_code ec;
  if (fs::exists(here / kFaceModelsFile, ec)) return here;
  const fs::path beside_build = fs::read_symlink("/proc/self/exe", ec).parent_path().parent_path() / kDefaultFaceModels;
  if (!ec && fs::exists(beside_build / kFaceModelsFile, ec)) return beside_build;
  return here;
}

}  // namespace

Action add_crop_command(CLI::App& app) {
  struct Options {
    std::string videos, output, detector = "tiny", yunet_model, cascade, device = "auto";
    std::string face_models;
    float score_threshold = -1.0f;
    int min_face = 40, detect_size = 224, threads = 1;
    CropOptions crop;
  };
  auto o = std::make_shared<Options>();
  o->crop.detect_every = 10;
  CLI::App* cmd = app.add_subcommand("crop", "Detect and crop faces of plain videos into the Aff-Wild2 layout");
  cmd->add_option("--videos", o->videos,
                  "A video file, or a folder of them (.mp4 .avi .mov .mkv .webm; .jpg .png count as one-frame videos)")
      ->required()
      ->check(CLI::ExistingPath);
  cmd->add_option("--output", o->output, "Crop folder: <output>/<video>/00001.jpg ...")->required();
  cmd->add_option("--detector", o->detector,
                  "tiny (face-api's TinyFaceDetector, from --face-models), haar (OpenCV's cascade from opencv-data, "
                  "no download) or yunet (needs --yunet-model)")
      ->check(CLI::IsMember({"haar", "yunet", "tiny"}))
      ->capture_default_str();
  add_enum_option(*cmd, "--style", o->crop.style, kCropStyleNames,
                  "box: the square around the face box, with --margin; aligned: eyes, nose tip and mouth corners "
                  "(68-point landmark net, from --face-models) moved onto the ArcFace template");
  cmd->add_option("--face-models", o->face_models,
                  "Folder with faces.json, for --detector tiny and --style aligned (default: models/default/faces "
                  "under the current folder, else beside the build folder; made by scripts/make_default_model_set.sh)");
  cmd->add_option("--detect-size", o->detect_size,
                  "tiny: side of the square the frame is scaled into for detection, a multiple of 32 (face-api "
                  "uses 416, which misses faces taller than ~290 of its pixels; frames without a face are searched "
                  "again at twice and half the size)")
      ->check(CLI::Range(32, 4096))
      ->capture_default_str();
  cmd->add_option("--detect-every", o->crop.detect_every,
                  "tiny: search the whole frame every K frames, and in between only near the tracked face "
                  "(at 128 pixels; the whole frame again wherever it is not found there); 1: every frame")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--threads", o->threads,
                  "LibTorch threads for the face models (0: one per usable CPU); decoding has a thread of its own")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_option("--batch", o->crop.batch_frames, "Frames decoded, detected and cropped together")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--device", o->device, "Where the face models run: auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--yunet-model", o->yunet_model, "YuNet ONNX file (2023 layout, 640x640 input)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--cascade", o->cascade, "Haar cascade XML (default: Debian's frontal-face cascade)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--score-threshold", o->score_threshold,
                  "Minimum face score (default: YuNet 0.6, tiny faces.json's, face-api's 0.5)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-face", o->min_face, "Smallest face side in pixels")
      ->check(CLI::Range(8, 4096))
      ->capture_default_str();
  cmd->add_option("--size", o->crop.size, "Side of the square crops")
      ->check(CLI::Range(16, 4096))
      ->capture_default_str();
  CLI::Option* margin =
      cmd->add_option("--margin", o->crop.margin,
                      "box: extra side around the face box, as a fraction of its side (default 0.1); aligned: the "
                      "template shrunk by 1 / (1 + margin) (default 0: the template as is)")
          ->check(CLI::Range(0.0, 3.0));
  cmd->add_option("--jpeg-quality", o->crop.jpeg_quality, "JPEG quality")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  return [o, margin]() -> int {
    if (o->detector == "yunet" && o->yunet_model.empty()) {
      throw Error(ErrorKind::kUsage, "--detector yunet needs --yunet-model FILE");
    }
    if (margin->count() == 0) o->crop.margin = o->crop.style == CropStyle::kAligned ? 0.0f : 0.1f;
    std::shared_ptr<FaceModels> face_models;
    if (o->detector == "tiny" || o->crop.style == CropStyle::kAligned) {
      configure_runtime(o->threads, 1);
      if (o->face_models.empty()) o->face_models = default_face_models().string();
      face_models =
          std::make_shared<FaceModels>(o->face_models, resolve_device(o->device), o->detect_size, o->score_threshold);
      o->crop.landmarks = face_models.get();
      const FaceModelsConfig& config = face_models->config();
      o->crop.face_models = (fs::path(o->face_models) / kFaceModelsFile).string() + " (" + config.detector_file + ", " +
                            config.landmarks_file + "; " + config.source + ")";
    }
    std::unique_ptr<FaceDetector> detector;
    if (o->detector == "tiny") {
      detector = make_tiny_face_detector(face_models, o->min_face);
    } else if (o->detector == "yunet") {
      detector = make_yunet_detector(o->yunet_model, o->score_threshold < 0 ? 0.6f : o->score_threshold, o->min_face);
    } else {
      detector = make_haar_detector(o->cascade, o->min_face);
    }
    std::vector<fs::path> videos;
    if (fs::is_directory(o->videos)) {
      // Still images are one-frame videos (OpenCV opens them the same way).
      const std::set<std::string> extensions{".mp4", ".avi", ".mov", ".mkv", ".webm", ".jpg", ".jpeg", ".png"};
      for (const fs::directory_entry& entry : list_folder(o->videos, "video folder")) {
        if (entry.path().filename().string().front() == '.') continue;  // hidden, e.g. macOS "._clip.mp4"
        std::string extension = entry.path().extension().string();
        std::transform(extension.begin(), extension.end(), extension.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (std::error_code kind; entry.is_regular_file(kind) && extensions.count(extension)) {
          videos.push_back(entry.path());
        }
      }
      std::sort(videos.begin(), videos.end());
      if (videos.empty()) throw Error(ErrorKind::kInput, "no video files in the folder", o->videos);
    } else {
      videos.push_back(o->videos);
    }
    o->crop.output = o->output;
    // A killed earlier crop leaves its half-written staging folders behind; they are never read.
    remove_stale_crop_staging(o->output);
    spdlog::info("{} video(s), detector {}, {} crops; one face is tracked per video", videos.size(),
                 detector->description(), name_of(kCropStyleNames, o->crop.style));
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
