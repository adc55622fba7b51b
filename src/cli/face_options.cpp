// The face-finding options `crop` and `run --videos` share, declared once.
#include <filesystem>

#include "abaw/face_models.hpp"
#include "cli/commands.hpp"

namespace fs = std::filesystem;

namespace abaw::cli {

fs::path default_face_models() {
  const fs::path here = kDefaultFaceModels;
  std::error_code ec;
  if (fs::exists(here / kFaceModelsFile, ec)) return here;
  const fs::path beside_build = fs::read_symlink("/proc/self/exe", ec).parent_path().parent_path() / kDefaultFaceModels;
  if (!ec && fs::exists(beside_build / kFaceModelsFile, ec)) return beside_build;
  return here;
}

std::function<void()> add_face_options(CLI::App& command, FaceFinderOptions& options) {
  // Optional values: only what the command line gives overrides a model set's "faces".
  struct Given {
    std::string detector, style;
    int size = 112;
    float margin = 0.1f;
    std::string face_models;
  };
  auto given = std::make_shared<Given>();
  CLI::Option* detector =
      command
          .add_option("--detector", given->detector,
                      "tiny (face-api's TinyFaceDetector, from --face-models), haar (OpenCV's cascade from "
                      "opencv-data, no download) or yunet (needs --yunet-model); default: the model set's "
                      "\"faces\", else tiny")
          ->check(CLI::IsMember(all_names(kDetectorNames)));
  CLI::Option* style =
      command
          .add_option("--style", given->style,
                      "box: the square around the face box, with --margin; aligned: eyes, nose tip and mouth "
                      "corners (68-point landmark net, from --face-models) moved onto the ArcFace template; "
                      "default: the model set's \"faces\", else box")
          ->check(CLI::IsMember(all_names(kCropStyleNames)));
  command.add_option("--face-models", given->face_models,
                     "Folder with faces.json, for --detector tiny and --style aligned (default: models/default/faces "
                     "under the current folder, else beside the build folder; made by "
                     "scripts/make_default_model_set.sh)");
  command
      .add_option("--detect-size", options.detect_size,
                  "tiny: side of the square the frame is scaled into for detection, a multiple of 32 (face-api "
                  "uses 416, which misses faces taller than ~290 of its pixels; frames without a face are searched "
                  "again at twice and half the size)")
      ->check(CLI::Range(32, 4096))
      ->capture_default_str();
  command
      .add_option("--detect-every", options.detect_every,
                  "tiny: search the whole frame every K frames, and in between only near the tracked face "
                  "(a region 1.5 times its side, at 160 pixels; the whole frame again wherever it is not found there); 1: every frame")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  command
      .add_option("--near-every", options.near_every,
                  "tiny, between whole-frame searches: search near the face only on every K-th frame and "
                  "interpolate the box on the frames between, where the searched frames on both sides found "
                  "the face (elsewhere the frame is searched); 1: every frame")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  command.add_option("--yunet-model", options.yunet_model, "YuNet ONNX file (2023 layout, 640x640 input)")
      ->check(CLI::ExistingFile);
  command.add_option("--cascade", options.cascade, "Haar cascade XML (default: Debian's frontal-face cascade)")
      ->check(CLI::ExistingFile);
  command
      .add_option("--score-threshold", options.score_threshold,
                  "Minimum face score (default: YuNet 0.6, tiny faces.json's, face-api's 0.5)")
      ->check(CLI::Range(0.0, 1.0));
  command.add_option("--min-face", options.min_face, "Smallest face side in pixels")
      ->check(CLI::Range(8, 4096))
      ->capture_default_str();
  CLI::Option* size = command
                          .add_option("--size", given->size,
                                      "Side of the square crops (default: the model set's \"faces\", else 112)")
                          ->check(CLI::Range(16, 4096));
  CLI::Option* margin =
      command
          .add_option("--margin", given->margin,
                      "box: extra side around the face box, as a fraction of its side (default 0.1); aligned: the "
                      "template shrunk by 1 / (1 + margin) (default 0: the template as is); a model set's "
                      "\"faces\" may set another default")
          ->check(CLI::Range(0.0, 3.0));
  command
      .add_option("--faces", options.max_people,
                  "People followed per video. 1: one face, named as the video. More: each person matched frame "
                  "to frame by face descriptor and box, and named <video>_left and <video>_right when two are "
                  "found (by mean horizontal position, as Aff-Wild2 names them), <video>_face1.. (left to right) "
                  "when more, <video> when one; every frame is then searched whole")
      ->check(CLI::Range(1, kMaxPeople))
      ->capture_default_str();
  command.add_option("--jpeg-quality", options.jpeg_quality, "JPEG quality of the crops")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  return [given, detector, style, size, margin, &options] {
    if (detector->count()) options.pipeline.detector = parse_name(kDetectorNames, given->detector);
    if (style->count()) options.pipeline.style = parse_name(kCropStyleNames, given->style);
    if (size->count()) options.pipeline.size = given->size;
    if (margin->count()) options.pipeline.margin = given->margin;
    options.face_models = given->face_models.empty() ? default_face_models() : fs::path(given->face_models);
  };
}

}  // namespace abaw::cli
