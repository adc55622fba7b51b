// The raw-score files `run` writes per task and video (raw/<TASK>/<video>.csv) and `merge`,
// `tune`, `eval` and `run --resume` read back: the scores before post-processing, so a later
// step can filter, threshold or average them again. Format (models/README.md step 2):
//   frame,has_crop,<task columns>     header
//   1,1,0.125,-0.5                    one line per frame 1..T in order; scores as %.9g (float exact)
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "abaw/postprocess.hpp"
#include "abaw/tasks.hpp"
#include "abaw/writers.hpp"

namespace abaw {

// "frame,has_crop," + the task's columns: the header of a raw-score file.
std::string raw_score_header(Task task);

// Reads one raw-score file (frames 1..T in order) into T x task_width scores, and the has_crop
// column into `has_crop` when given. Throws Error(kInput) naming file and line.
ScoreMatrix read_raw_scores(const std::filesystem::path& file, Task task, std::vector<uint8_t>* has_crop = nullptr);

// The raw-score files of one task in a run output folder, by video name: `<run>/raw/<TASK>/*.csv`
// whose stem is a valid video name (others are not a video's). Empty when the folder is absent.
std::map<std::string, std::filesystem::path> raw_score_files(const std::filesystem::path& run, Task task);

// Writes one video's raw scores (result.raw and result.has_crop) atomically.
void write_raw_scores(const std::filesystem::path& path, Task task, const VideoResult& result,
                      Durability durability = Durability::kPowerLoss);

}  // namespace abaw
