#include "abaw/annotations.hpp"
#include "abaw/merge.hpp"
#include "cli/commands.hpp"

namespace abaw::cli {

Action add_merge_command(CLI::App& app) {
  struct Raw {
    std::vector<std::string> inputs, tasks, frame_lists, annotations;
    std::vector<double> weights;
    std::string output, model_set, manifest_patch;
  };
  auto raw = std::make_shared<Raw>();
  CLI::App* cmd = app.add_subcommand(
      "merge", "Assemble submissions from the raw scores of shard outputs, or ensemble several runs");
  cmd->add_option("--inputs", raw->inputs, "Run output folders (each with raw/<TASK>/)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--weights", raw->weights, "One weight per input for the ensemble mean (default: equal)")
      ->delimiter(',');
  cmd->add_option("--output", raw->output, "Output folder (submission/, raw/)")->required();
  cmd->add_option("--tasks", raw->tasks, "Tasks to merge (default: all with raw scores)")
      ->delimiter(',')
      ->check(CLI::IsMember({"va", "expr", "au", "VA", "EXPR", "AU"}));
  cmd->add_option("--frame-list", raw->frame_lists, "TASK=FILE: the rows of the submission (repeatable)");
  cmd->add_option("--annotations", raw->annotations, "[TASK=]DIR: rows from an annotation folder (repeatable)");
  cmd->add_option("--model-set", raw->model_set, "Whose post-processing to apply (default: plain)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--manifest-patch", raw->manifest_patch, "JSON merged into that manifest first")
      ->check(CLI::ExistingFile);
  return [raw]() -> int {
    MergeOptions options;
    for (const auto& input : raw->inputs) options.inputs.emplace_back(input);
    options.weights = raw->weights;
    options.output = raw->output;
    for (const auto& name : raw->tasks) options.tasks.push_back(*parse_task(name));
    for (const auto& text : raw->frame_lists) {
      auto [task, file] = parse_task_assignment(text, "--frame-list");
      options.frame_lists[task] = file;
    }
    for (const auto& text : raw->annotations) {
      const size_t equals = text.find('=');
      if (equals != std::string::npos && parse_task(text.substr(0, equals))) {
        auto [task, folder] = parse_task_assignment(text, "--annotations");
        options.annotations[task] = folder;
      } else {
        options.annotations[annotation_folder_task(text)] = text;
      }
    }
    if (!raw->model_set.empty()) options.model_set = raw->model_set;
    if (!raw->manifest_patch.empty()) options.manifest_patch = raw->manifest_patch;
    const MergeResult result = merge_runs(options);
    for (const auto& [task, path] : result.submissions) {
      std::printf("%s submission: %s\n", task_name(task), path.string().c_str());
    }
    return 0;
  };
}

}  // namespace abaw::cli
