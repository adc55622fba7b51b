// The model-commands module (libabaw-infer-models.so beside the binary): every subcommand,
// including those that load LibTorch and OpenCV. main() loads it only for those, so that the
// text commands start without LibTorch's start-up cost.
#include <memory>

#include "cli/commands.hpp"

namespace abaw::cli {

void add_model_commands(CLI::App& app, Commands& actions) {
  auto remember = [&](Action action) { actions[app.get_subcommands({}).back()] = std::move(action); };
  auto run_options = std::make_shared<RunOptions>();
  auto run = add_run_command(app, *run_options);
  remember([run_options, run] { return run(); });
  remember(add_info_command(app));
  remember(add_crop_command(app));
  remember(add_render_command(app));
  auto bench_options = std::make_shared<BenchOptions>();
  auto bench = add_bench_command(app, *bench_options);
  remember([bench_options, bench] { return bench(); });
}

}  // namespace abaw::cli

// What main() looks up after loading the module (C linkage: a plain symbol name for dlsym).
extern "C" int abaw_infer_models_main(int argc, char** argv) {
  return abaw::cli::cli_main(argc, argv, abaw::cli::add_model_commands);
}
