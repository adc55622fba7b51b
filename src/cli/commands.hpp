// The subcommands of abaw-infer. Each registers its options on a CLI11 subcommand (declared once,
// with help and validation) and returns the action that runs it; main() only dispatches.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "abaw/bench.hpp"
#include "abaw/pipeline.hpp"

namespace abaw::cli {

// Runs a parsed subcommand and returns the process exit code.
using Action = std::function<int()>;

// `run`: options are parsed into `options` (exposed so parser tests can inspect them).
Action add_run_command(CLI::App& app, RunOptions& options);

// `info`: describe a model set and prove it runs.
Action add_info_command(CLI::App& app);

// `eval`: score predictions against annotations (ABAW metrics).
Action add_eval_command(CLI::App& app);

// `check`: validate a submission against its frame list.
Action add_check_command(CLI::App& app);

// `tune`: tune thresholds / filter widths on validation raw scores.
Action add_tune_command(CLI::App& app);

// `crop`: videos -> Aff-Wild2 crop folders.
Action add_crop_command(CLI::App& app);

// `merge`: shards and ensembles -> submissions.
Action add_merge_command(CLI::App& app);

// `bench`: one pipeline stage timed alone (exposed like `run` for parser tests).
Action add_bench_command(CLI::App& app, BenchOptions& options);

// Parses "TASK=VALUE" (TASK one of va, expr, au, any case). Throws CLI::ValidationError.
std::pair<Task, std::string> parse_task_assignment(const std::string& text, const std::string& option);

}  // namespace abaw::cli
