// abaw-infer: the command-line tool. main() only registers the subcommands, dispatches, and
// turns errors into one line on stderr and a documented exit code (README, "Exit codes").
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include <csignal>

#include "abaw/error.hpp"
#include "cli/commands.hpp"

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) a write should fail with EFBIG and be reported like a
  // full disk, not kill the process half way through a file.
  std::signal(SIGXFSZ, SIG_IGN);
  spdlog::set_default_logger(spdlog::stderr_color_mt("abaw-infer"));
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");

  CLI::App app{"abaw-infer: ABAW / Aff-Wild2 inference with TorchScript encoders and temporal heads"};
  app.require_subcommand(1);
  app.set_version_flag("--version", ABAW_INFER_VERSION);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();

  abaw::RunOptions run_options;
  abaw::BenchOptions bench_options;
  std::map<CLI::App*, abaw::cli::Action> actions;
  auto remember = [&](abaw::cli::Action action) { actions[app.get_subcommands({}).back()] = std::move(action); };
  remember(abaw::cli::add_run_command(app, run_options));
  remember(abaw::cli::add_info_command(app));
  remember(abaw::cli::add_eval_command(app));
  remember(abaw::cli::add_check_command(app));
  remember(abaw::cli::add_tune_command(app));
  remember(abaw::cli::add_crop_command(app));
  remember(abaw::cli::add_merge_command(app));
  remember(abaw::cli::add_bench_command(app, bench_options));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? abaw::kExitOk : abaw::kExitUsage;
  } catch (const abaw::Error& e) {  // raised while option callbacks read lists
    spdlog::error("{}", e.what());
    return abaw::exit_code_for(e.kind());
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  try {
    for (CLI::App* sub : app.get_subcommands()) return actions.at(sub)();
    return abaw::kExitUsage;
  } catch (const abaw::Error& e) {
    spdlog::error("{}", e.what());
    return abaw::exit_code_for(e.kind());
  } catch (const std::exception& e) {
    spdlog::error("unexpected failure: {}", e.what());
    return abaw::kExitRuntime;
  }
}
