#include "abaw/output_layout.hpp"

namespace abaw {

std::filesystem::path OutputLayout::submission(Task task) const {
  return root / "submission" / (std::string(task_name(task)) + ".txt");
}

std::filesystem::path OutputLayout::raw_scores_folder(Task task) const { return root / "raw" / task_name(task); }

std::filesystem::path OutputLayout::raw_scores(Task task, const VideoName& video) const {
  return video_path(raw_scores_folder(task), video, ".csv");
}

std::filesystem::path OutputLayout::done_marker(const VideoName& video) const {
  return video_path(root / "state", video, ".done");
}

std::filesystem::path OutputLayout::people_pass(const VideoName& file) const {
  return video_path(root / "state", file, ".people.json");
}

std::filesystem::path OutputLayout::summary() const { return root / "run.json"; }

}  // namespace abaw
