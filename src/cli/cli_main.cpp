// The body of abaw-infer's main(), shared by the binary (text commands) and the model-commands
// module (every command): registers the subcommands, parses, dispatches, and turns errors into
// one line on stderr and a documented exit code (README, "Exit codes").
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include <csignal>

#include "abaw/error.hpp"
#include "cli/commands.hpp"

namespace abaw::cli {

const std::vector<std::string>& text_command_names() {
  static const std::vector<std::string> names{"eval", "check", "tune", "merge", "compare", "report"};
  return names;
}

int cli_main(int argc, char** argv, const AddCommands& add_model_commands) {
  // Past a file-size limit (ulimit -f) a write should fail with EFBIG and be reported like a
  // full disk, not kill the process half way through a file.
  std::signal(SIGXFSZ, SIG_IGN);
  if (!spdlog::get("abaw-infer")) spdlog::set_default_logger(spdlog::stderr_color_mt("abaw-infer"));
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");

  CLI::App app{"abaw-infer: ABAW / Aff-Wild2 inference with TorchScript encoders and temporal heads"};
  app.require_subcommand(1);
  app.set_version_flag("--version", ABAW_INFER_VERSION);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();

  Commands actions;
  auto remember = [&](Action action) { actions[app.get_subcommands({}).back()] = std::move(action); };
  if (add_model_commands) add_model_commands(app, actions);
  remember(add_eval_command(app));
  remember(add_check_command(app));
  remember(add_tune_command(app));
  remember(add_merge_command(app));
  remember(add_compare_command(app));
  remember(add_report_command(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  } catch (const Error& e) {  // raised while option callbacks read lists
    spdlog::error("{}", e.what());
    return exit_code_for(e.kind());
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  try {
    for (CLI::App* sub : app.get_subcommands()) return actions.at(sub)();
    return kExitUsage;
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    return exit_code_for(e.kind());
  } catch (const std::exception& e) {
    spdlog::error("unexpected failure: {}", e.what());
    return kExitRuntime;
  }
}

}  // namespace abaw::cli
