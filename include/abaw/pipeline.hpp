// One `run`: index the videos, decode and encode every crop in batches (see plan_encoder_batches), run the
// temporal heads per video, post-process, and write submissions, raw scores and a summary.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "abaw/compute_options.hpp"
#include "abaw/face_spec.hpp"
#include "abaw/tasks.hpp"
#include "abaw/video_index.hpp"

namespace abaw {

// Everything `abaw-infer run` can be asked to do.
struct RunOptions {
  std::filesystem::path model_set;
  std::filesystem::path crops;                    // crop folder (--crops), or:
  std::vector<std::filesystem::path> video_inputs;  // video files and folders (--videos)
  FaceFinderOptions faces;                          // with video_inputs; the manifest's "faces" fill the rest
  std::optional<std::filesystem::path> save_crops;  // with video_inputs: write the crops there too
  std::filesystem::path output;
  RowsOptions rows;                 // no tasks: the tasks given frame lists / annotations, else all the set provides
  std::vector<std::string> videos;  // subset (--only); empty = all
  ComputeOptions compute;
  std::optional<long> window;
  std::optional<long> stride;
  std::optional<std::filesystem::path> features;  // encoder output cache folder (--features)
  long features_in_memory_mib = 16;  // of one video's features; the rest waits in a file in `output`
  bool resume = false;  // reuse the outputs of videos an earlier run finished with the same key
  int shard_index = 1;  // --shard K/N: this run handles the videos at positions K-1, K-1+N, ...
  int shard_count = 1;  // (name order); with N > 1 only raw outputs are written (see `merge`)
};

// What a finished run produced.
struct RunResult {
  std::map<Task, std::filesystem::path> submissions;  // written submission files
  std::vector<std::string> failed_videos;             // each also logged with its error
  std::filesystem::path summary;                      // run.json
  bool interrupted = false;                           // SIGINT / SIGTERM: stopped after a batch, no submission written
  long videos_done = 0;                               // finished (this run or resumed)
  long videos_total = 0;
};

// Runs the pipeline. SIGINT / SIGTERM stop it cleanly after the current batch (videos finished so
// far keep their outputs; `resume` picks up from there). Throws Error for problems that stop the whole run (bad options, model set,
// frame lists, output folder); a video that fails is logged, listed in the result and the
// summary, and the others still finish. Submission files of a task are written only when every
// video in it succeeded, so a written submission always has every row.
RunResult run_pipeline(const RunOptions& options);

}  // namespace abaw
