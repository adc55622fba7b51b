// The subcommands of abaw-infer. Each registers its options on a CLI11 subcommand (declared once,
// with help and validation) and returns the action that runs it; main() only dispatches.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "abaw/pipeline.hpp"

namespace abaw::cli {

// Runs a parsed subcommand and returns the process exit code.
using Action = std::function<int()>;

// `run`: options are parsed into `options` (exposed so parser tests can inspect them).
Action add_run_command(CLI::App& app, RunOptions& options);

// `info`: describe a model set and prove it runs.
Action add_info_command(CLI::App& app);

// Parses "TASK=VALUE" (TASK one of va, expr, au, any case). Throws CLI::ValidationError.
std::pair<Task, std::string> parse_task_assignment(const std::string& text, const std::string& option);

}  // namespace abaw::cli
