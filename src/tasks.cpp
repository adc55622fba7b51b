#include "abaw/tasks.hpp"

#include <cctype>

namespace abaw {

const std::vector<Task>& all_tasks() {
  static const std::vector<Task> tasks{Task::kVA, Task::kEXPR, Task::kAU};
  return tasks;
}

const char* task_name(Task task) {
  switch (task) {
    case Task::kVA:
      return "VA";
    case Task::kEXPR:
      return "EXPR";
    case Task::kAU:
      return "AU";
  }
  return "?";
}

const char* task_key(Task task) {
  switch (task) {
    case Task::kVA:
      return "va";
    case Task::kEXPR:
      return "expr";
    case Task::kAU:
      return "au";
  }
  return "?";
}

std::optional<Task> parse_task(std::string_view text) {
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (Task task : all_tasks()) {
    if (lower == task_key(task)) return task;
  }
  return std::nullopt;
}

const std::vector<std::string>& task_columns(Task task) {
  static const std::vector<std::string> va{"valence", "arousal"};
  static const std::vector<std::string> expr{"Neutral",   "Anger",   "Disgust",  "Fear",
                                             "Happiness", "Sadness", "Surprise", "Other"};
  static const std::vector<std::string> au{"AU1",  "AU2",  "AU4",  "AU6",  "AU7",  "AU10",
                                           "AU12", "AU15", "AU23", "AU24", "AU25", "AU26"};
  switch (task) {
    case Task::kVA:
      return va;
    case Task::kEXPR:
      return expr;
    case Task::kAU:
      return au;
  }
  return va;
}

int task_width(Task task) { return static_cast<int>(task_columns(task).size()); }

std::string annotation_header(Task task) {
  std::string header;
  for (const auto& column : task_columns(task)) {
    if (!header.empty()) header += ',';
    header += column;
  }
  return header;
}

std::string submission_header(Task task) { return "image_location," + annotation_header(task); }

}  // namespace abaw
