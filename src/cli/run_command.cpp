#include <spdlog/spdlog.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "abaw/annotations.hpp"
#include "abaw/metrics.hpp"
#include "abaw/writers.hpp"
#include "abaw/error.hpp"
#include "cli/commands.hpp"

namespace abaw::cli {

Action add_run_command(CLI::App& app, RunOptions& options) {
  CLI::App* run = app.add_subcommand("run", "Predict VA / EXPR / AU for every frame and write ABAW submission files");
  // Raw strings first: cross-option checks and TASK= parsing happen after CLI11 validated them.
  struct Raw {
    RowsArguments rows;
    std::vector<std::string> videos;
    std::string video_list;
  };
  auto raw = std::make_shared<Raw>();
  run->add_option("--model-set", options.model_set, "Model-set folder (manifest.json + TorchScript files)")
      ->required()
      ->check(CLI::ExistingDirectory);
  CLI::Option* crops = run->add_option("--crops", options.crops, "Crop folder: <crops>/<video>/00001.jpg ...")
                           ->check(CLI::ExistingDirectory);
  CLI::Option* videos =
      run->add_option("--videos", options.video_inputs,
                      "Instead of --crops: video files or folders of them (.mp4 .avi .mov .mkv .webm); faces are "
                      "found, cropped and encoded as the frames are decoded, as `crop` would cut them (see the face "
                      "options below and the model set's \"faces\")")
          ->check(CLI::Validator(
              [](const std::string& path) -> std::string {
                std::error_code ec;
                if (std::filesystem::exists(path, ec)) return "";
                return "no such video file or folder: " + path +
                       " (--videos takes videos to decode; to run only some videos use --only NAME,...)";
              },
              "PATH"));
  run->add_option("--output", options.output, "Output folder (created; submission/, raw/, run.json)")->required();
  add_rows_options(*run, raw->rows,
                   "Tasks to predict, e.g. va,expr (default: those with a frame list or annotations, else all the "
                   "model set provides)",
                   "TASK=FILE: official test example file; the submission gets exactly its rows, in its order "
                   "(repeatable)");
  run->add_option("--only", raw->videos, "Only these videos (comma-separated names)")->delimiter(',');
  run->add_option("--video-list", raw->video_list, "Only the videos in this file (e.g. *_test_set_release.txt)")
      ->check(CLI::ExistingFile);
  run->add_option("--window", options.window, "Override the manifest's window (frames per head call)")
      ->check(CLI::PositiveNumber);
  run->add_option("--stride", options.stride, "Override the manifest's stride")->check(CLI::PositiveNumber);
  run->add_option("--features", options.features,
                  "Feature cache folder: the encoder's output per video is stored there and reused by later "
                  "runs with the same encoder and crops (another head or post-processing skips the encoder)");
  run->add_option("--features-in-memory", options.features_in_memory_mib,
                  "MiB of one video's features kept in memory; the rest waits in an unnamed file in the output "
                  "folder, so memory does not grow with a video's length (feature_dim x 4 bytes per frame: 16 MiB "
                  "holds 16000 frames of the default set, 5400 of a ViT-L/14). 0: always in the file")
      ->check(CLI::Range(0L, 1L << 30))
      ->capture_default_str();
  run->add_flag("--resume", options.resume,
                "Reuse the outputs of videos a previous run into the same --output finished with the same "
                "model files, settings and crops; compute the rest, then write the submissions");
  auto store_compute_options = add_compute_options(*run, options.compute);
  auto store_face_options = add_face_options(*run, options.faces);
  run->add_option("--face-threads", options.faces.threads,
                  "With --videos: LibTorch threads of the face models, on their own thread beside the encoder's "
                  "--threads (0: one per usable CPU). Default as `crop --threads` (1, or one per usable CPU "
                  "with --faces N above 1), so both cut the same crops: a convolution's last bits depend on how "
                  "many threads split it")
      ->check(CLI::Range(0, 1024));
  auto save_crops = std::make_shared<std::string>();
  run->add_option("--save-crops", *save_crops,
                  "With --videos: also write the crops it encoded there, in the layout `crop` writes (crop folders, "
                  "boxes CSVs, frame_counts.csv, crop.json): `run --crops` on them predicts the same")
      ->needs(videos);
  auto shard = std::make_shared<std::string>();
  run->add_option("--shard", *shard,
                  "K/N: handle only every N-th video (name order), starting with the K-th; writes raw outputs "
                  "only, for `abaw-infer merge`");
  auto score_after = std::make_shared<bool>(false);
  run->add_flag("--eval", *score_after,
                "Score each task that has --annotations right after predicting (table on stdout, "
                "evaluation.json in the output folder)");

  run->callback([raw, score_after, shard, store_compute_options, store_face_options, save_crops, crops, videos,
                 &options] {
    store_compute_options();
    store_face_options();
    if (crops->count() > 0 && videos->count() > 0) {
      throw CLI::ValidationError("--videos",
                                 "takes video files instead of --crops, not with it; to run only some videos of "
                                 "a crop folder use --only NAME,...");
    }
    if (crops->count() == 0 && videos->count() == 0) {
      throw CLI::RequiredError("--crops (a crop folder) or --videos (video files)");
    }
    if (!save_crops->empty()) options.save_crops = *save_crops;
    if (!shard->empty()) {
      int k = 0, n = 0;
      char tail = 0;
      if (std::sscanf(shard->c_str(), "%d/%d%c", &k, &n, &tail) != 2 || n < 1 || k < 1 || k > n) {
        throw CLI::ValidationError("--shard", "expected K/N with 1 <= K <= N, got '" + *shard + "'");
      }
      options.shard_index = k;
      options.shard_count = n;
    }
    store_rows_options(raw->rows, options.rows);
    if (*score_after && options.rows.annotations.empty()) {
      throw CLI::ValidationError("--eval", "needs --annotations (the labels to score against)");
    }
    options.videos = raw->videos;
    if (!raw->video_list.empty()) {
      for (auto& name : read_video_list(raw->video_list)) options.videos.push_back(std::move(name));
    }
  });

  return [score_after, &options]() -> int {
    RunResult result = run_pipeline(options);
    if (result.interrupted) {
      spdlog::warn(
          "interrupted: {} of {} videos finished and kept; no submission written. Continue with the "
          "same command plus --resume",
          result.videos_done, result.videos_total);
      return kExitInterrupted;
    }
    for (const auto& [task, path] : result.submissions) {
      std::printf("%s submission: %s\n", task_name(task), path.string().c_str());
    }
    std::printf("summary: %s\n", result.summary.string().c_str());
    if (*score_after) {
      nlohmann::json scores = nlohmann::json::object();
      for (const auto& [task, folder] : options.rows.annotations) {
        auto submission = result.submissions.find(task);
        if (submission == result.submissions.end()) continue;  // not run, or failed: logged already
        const Evaluation evaluation = evaluate(read_predictions(submission->second, task), folder, false);
        std::printf("\n%s", format_evaluation(evaluation).c_str());
        scores[task_name(task)] = evaluation_to_json(evaluation);
      }
      write_json(options.output / "evaluation.json", scores);
    }
    if (!result.failed_videos.empty()) {
      spdlog::error("{} video(s) failed (see above and {}); exit code {}", result.failed_videos.size(),
                    result.summary.string(), static_cast<int>(kExitPartial));
      return kExitPartial;
    }
    return kExitOk;
  };
}

}  // namespace abaw::cli
