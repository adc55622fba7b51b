// The encoder's rows of one video while a run needs them. A row is feature_dim floats; rows are
// held in memory up to a limit and beyond it in an unnamed file in a given folder (the run's
// output folder), so that a run's memory does not grow with a video's length: a 30-minute video
// has 54000 rows, 55 MB for the default set and 166 MB for a ViT-L/14 encoder.
#pragma once

#include <cstddef>
#include <filesystem>
#include <vector>

namespace abaw {

class FeatureRows {
 public:
  // A placeholder of width 0 (dim() == 0) until rows of a real width are assigned.
  FeatureRows() = default;
  // Rows of `dim` floats, in memory while they take at most `memory_limit_bytes`, then in a file
  // created in `spill_folder` and unlinked at once (a killed run leaves nothing behind).
  FeatureRows(int dim, std::filesystem::path spill_folder, size_t memory_limit_bytes);
  ~FeatureRows();
  FeatureRows(FeatureRows&& other) noexcept;
  FeatureRows& operator=(FeatureRows&& other) noexcept;
  FeatureRows(const FeatureRows&) = delete;
  FeatureRows& operator=(const FeatureRows&) = delete;

  // Grows (new rows are zeros) or shrinks to `rows` rows. Throws Error(kOutput) when the spill
  // file cannot be created or grown (e.g. a full disk), naming the folder.
  void resize(size_t rows);
  size_t size() const { return rows_; }
  int dim() const { return dim_; }
  // Whether the rows live in the spill file.
  bool spilled() const { return fd_ >= 0; }

  // Copies `dim` floats into row `row` (< size()) / out of it. Throw Error(kOutput) on an I/O error.
  void set(size_t row, const float* values);
  void get(size_t row, float* out) const;

 private:
  void spill();
  void close_file();

  int dim_ = 0;
  std::filesystem::path spill_folder_;
  size_t memory_limit_bytes_ = 0;
  size_t rows_ = 0;
  std::vector<float> memory_;  // rows_ x dim_ while not spilled
  int fd_ = -1;
};

}  // namespace abaw
