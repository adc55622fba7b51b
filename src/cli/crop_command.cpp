#include <spdlog/spdlog.h>

#include "abaw/error.hpp"
#include "abaw/face_crop.hpp"
#include "abaw/face_models.hpp"
#include "abaw/frame_names.hpp"
#include "abaw/runtime.hpp"
#include "cli/commands.hpp"

namespace fs = std::filesystem;

namespace abaw::cli {

Action add_crop_command(CLI::App& app) {
  struct Options {
    std::string videos, output, device = "auto";
    FaceFinderOptions faces;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("crop", "Detect and crop faces of plain videos into the Aff-Wild2 layout");
  cmd->add_option("--videos", o->videos,
                  "A video file, or a folder of them (.mp4 .avi .mov .mkv .webm; .jpg .png count as one-frame videos)")
      ->required()
      ->check(CLI::ExistingPath);
  cmd->add_option("--output", o->output, "Crop folder: <output>/<video>/00001.jpg ...")->required();
  auto store_face_options = add_face_options(*cmd, o->faces);
  cmd->add_option("--threads", o->faces.threads,
                  "LibTorch threads for the face models (0: one per usable CPU; default 1, or one per usable CPU "
                  "with --faces N above 1, where the face descriptor is most of the work); decoding and JPEG "
                  "writing have threads of their own")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--batch", o->faces.batch_frames, "Frames decoded, detected and cropped together")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--device", o->device, "Where the face models run: auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->callback(store_face_options);
  return [o]() -> int {
    o->faces.threads = face_model_threads(o->faces);
    configure_runtime(o->faces.threads, 1);
    FaceFinder finder = make_face_finder(o->faces, FacePipelineSpec{}, resolve_device(o->device));
    const std::vector<fs::path> videos = list_video_files({o->videos});
    finder.crop.output = o->output;
    // A killed earlier crop leaves its half-written staging folders behind; they are never read.
    remove_stale_crop_staging(o->output);
    // With several people the description says so ("up to N people").
    spdlog::info("{} video(s), {}{}", videos.size(), finder.description,
                 finder.crop.max_people > 1 ? "" : "; one face is tracked per video");
    std::vector<CroppedVideo> done;
    std::vector<std::string> removed;
    long failed = 0;
    for (const auto& video : videos) {
      try {
        const std::vector<CroppedVideo> folders = crop_video(video, *finder.detector, finder.crop);
        for (const CroppedVideo& folder : folders) {
          std::printf("%s: %ld frames, %ld with a face -> %s\n", folder.name.c_str(), folder.frames_decoded,
                      folder.frames_with_face, (fs::path(o->output) / folder.name).string().c_str());
        }
        done.insert(done.end(), folders.begin(), folders.end());
        const std::vector<std::string> replaced = remove_replaced_crops(o->output, video, folders);
        removed.insert(removed.end(), replaced.begin(), replaced.end());
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::kOutput) throw;  // the next video would fail the same way
        spdlog::error("{}", e.what());
        ++failed;
      }
      // Written after each video, so an interrupted crop still tells `run` what it finished.
      if (!done.empty()) {
        write_frame_counts(o->output, done, removed);
        write_crop_record(o->output, done, finder.crop, removed);
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
