// The three ABAW tasks and the column names every file format shares.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace abaw {

enum class Task { kVA, kEXPR, kAU };

// VA, EXPR, AU: the order files and summaries list them in.
const std::vector<Task>& all_tasks();

// "VA", "EXPR", "AU": file names and messages.
const char* task_name(Task task);

// "va", "expr", "au": manifest and command-line keys.
const char* task_key(Task task);

// Accepts "va", "expr", "au" in any case; nothing for anything else.
std::optional<Task> parse_task(std::string_view text);

// Score columns of a task: valence,arousal / the 8 classes in ABAW order / the 12 AUs.
const std::vector<std::string>& task_columns(Task task);

// Number of score columns: 2, 8 or 12.
int task_width(Task task);

// The annotation-file header, e.g. "valence,arousal".
std::string annotation_header(Task task);

// The submission header, "image_location," + annotation header.
std::string submission_header(Task task);

}  // namespace abaw
