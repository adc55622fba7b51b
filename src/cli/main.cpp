// abaw-infer: the command-line tool. The text commands (eval, check, tune, merge, compare,
// report) run from this binary, which links neither LibTorch nor OpenCV; every other command line (run, info,
// crop, bench, and the top-level help) is handed to the model-commands module built beside it, so
// only those pay for loading LibTorch.
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>

#include "abaw/error.hpp"
#include "cli/commands.hpp"

namespace {

// The subcommand a command line names: its first argument that is neither an option nor the
// value of the one top-level option that takes a separate value (--log-level).
std::string subcommand_of(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument == "--log-level") {
      ++i;
      continue;
    }
    if (!argument.empty() && argument[0] == '-') continue;
    return argument;
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  const auto& text_commands = abaw::cli::text_command_names();
  if (std::count(text_commands.begin(), text_commands.end(), subcommand_of(argc, argv))) {
    return abaw::cli::cli_main(argc, argv, nullptr);
  }
  std::error_code ec;
  const std::filesystem::path module =
      std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "libabaw-infer-models.so";
  void* handle = ec ? nullptr : dlopen(module.c_str(), RTLD_NOW | RTLD_LOCAL);
  using Main = int (*)(int, char**);
  Main models_main = handle ? reinterpret_cast<Main>(dlsym(handle, "abaw_infer_models_main")) : nullptr;
  if (!models_main) {
    std::fprintf(stderr,
                 "abaw-infer: cannot load the model commands from %s (%s); it is built beside the abaw-infer "
                 "binary, which must stay next to it\n",
                 module.c_str(), ec ? ec.message().c_str() : dlerror());
    return abaw::kExitRuntime;
  }
  const int code = models_main(argc, argv);
#if defined(__SANITIZE_ADDRESS__)
  return code;  // LeakSanitizer checks at exit
#else
  // Every output is complete and renamed into place by now. What exit() would still run is the
  // static destructors of LibTorch, OpenCV and their libraries: ~0.1 s of a 2 s run, for nothing.
  std::fflush(nullptr);
  _exit(code);
#endif
}
