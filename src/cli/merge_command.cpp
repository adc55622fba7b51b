#include "abaw/annotations.hpp"
#include "abaw/merge.hpp"
#include "cli/commands.hpp"

namespace abaw::cli {

Action add_merge_command(CLI::App& app) {
  struct Raw {
    RowsArguments rows;
    std::vector<std::string> inputs;
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
  add_rows_options(*cmd, raw->rows, "Tasks to merge (default: all with raw scores)",
                   "TASK=FILE: the rows of the submission (repeatable)");
  cmd->add_option("--model-set", raw->model_set, "Whose post-processing to apply (default: plain)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--manifest-patch", raw->manifest_patch, "JSON merged into that manifest first")
      ->check(CLI::ExistingFile);
  auto options = std::make_shared<MergeOptions>();
  // At parse time, as in `run`: a repeated --frame-list is then a usage error (exit 2).
  cmd->callback([raw, options] {
    for (const auto& input : raw->inputs) options->inputs.emplace_back(input);
    options->weights = raw->weights;
    options->output = raw->output;
    store_rows_options(raw->rows, options->rows);
    if (!raw->model_set.empty()) options->model_set = raw->model_set;
    if (!raw->manifest_patch.empty()) options->manifest_patch = raw->manifest_patch;
  });
  return [options]() -> int {
    const MergeResult result = merge_runs(*options);
    for (const auto& [task, path] : result.submissions) {
      std::printf("%s submission: %s\n", task_name(task), path.string().c_str());
    }
    return 0;
  };
}

}  // namespace abaw::cli
