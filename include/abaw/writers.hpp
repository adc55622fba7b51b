// Output files: ABAW submission files, per-video raw scores and JSON summaries. Every file is
// written atomically (a temporary file in the same folder, renamed into place when complete), so
// a killed run never leaves a file that looks complete but is not.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "abaw/annotations.hpp"
#include "abaw/postprocess.hpp"
#include "abaw/tasks.hpp"

namespace abaw {

// What a committed file survives.
enum class Durability {
  // fsync before the rename: the file survives a power loss or OS crash complete or not at all.
  kPowerLoss,
  // rename only: it survives the process being killed complete or not at all, but a power loss
  // may leave it empty or cut. For per-video files a later reader checks before trusting (raw
  // scores and done markers, which --resume re-reads and validates; checksummed feature cache
  // entries): one fsync per file cost 1-2 ms per video, more than a short video's model time.
  kProcessKill,
};

// A file that appears under its final name only when commit() succeeds. Until then the data
// goes to `<name>.tmp-<pid>` beside it; the destructor removes that if commit() never ran.
class AtomicFile {
 public:
  explicit AtomicFile(const std::filesystem::path& path, Durability durability = Durability::kPowerLoss);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends bytes; throws Error(kOutput) on a write error (e.g. a full disk).
  void write(const std::string& text);
  // Flushes, syncs (kPowerLoss) and renames into place; throws Error(kOutput) on failure.
  void commit();

 private:
  std::filesystem::path path_;
  std::filesystem::path temp_path_;
  std::FILE* file_ = nullptr;
  Durability durability_;
};

// Writes `text` to `path` atomically, creating parent folders.
void write_file_atomically(const std::filesystem::path& path, const std::string& text,
                           Durability durability = Durability::kPowerLoss);

// The results of one task for one video, as the writers need them.
struct VideoResult {
  ScoreMatrix raw;                // frames x task_width: raw scores (models/README.md step 2)
  ScoreMatrix predicted;          // frames x (2 | 1 | 12): clipped VA, EXPR label, AU labels
  std::vector<uint8_t> has_crop;  // per frame
};

// Writes the submission file of `task`: the exact header, then one line per row of `rows`, in
// order, with the final values of that frame. Every row's video and frame must be in `results`.
void write_submission(const std::filesystem::path& path, Task task, const std::vector<FrameRow>& rows,
                      const std::map<std::string, VideoResult>& results);

// Writes pretty-printed JSON with a final newline.
void write_json(const std::filesystem::path& path, const nlohmann::json& value);

}  // namespace abaw
