// The one error type of the library, and the exit codes of the abaw-infer tool.
//
// Every failure the library reports is an abaw::Error carrying what failed, a kind that decides
// the exit code, and, where one is involved, the file and line. Only main() catches it.
#pragma once

#include <stdexcept>
#include <string>

namespace abaw {

// What went wrong, coarse enough to choose an exit code from.
enum class ErrorKind {
  kUsage,    // bad command-line options or option combinations
  kInput,    // crops, frame lists, annotations, submissions: missing, unreadable or malformed
  kModel,    // manifest or TorchScript files: invalid, missing, or shapes that disagree
  kOutput,   // an output could not be written (permissions, full disk)
  kRuntime,  // anything else (e.g. a model produced NaN, CUDA unavailable)
};

// Exit codes of abaw-infer, documented in the README.
enum ExitCode : int {
  kExitOk = 0,
  kExitRuntime = 1,
  kExitUsage = 2,
  kExitInput = 3,
  kExitModel = 4,
  kExitOutput = 5,
  kExitPartial = 6,        // the run finished, but at least one video failed
  kExitBelowMinScore = 7,  // eval: the score is below --min-score
  kExitInterrupted = 130,  // run: stopped by SIGINT / SIGTERM (continue with --resume)
};

// The library's only exception type. what() reads "file:line: message" (file and line when
// known), so one line tells the user what failed and where.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message, const std::string& path = {}, long line = 0);

  ErrorKind kind() const { return kind_; }
  // The message without the location prefix.
  const std::string& message() const { return message_; }
  // The file involved, or empty.
  const std::string& path() const { return path_; }
  // 1-based line in path, or 0 when not about a line.
  long line() const { return line_; }

 private:
  ErrorKind kind_;
  std::string message_;
  std::string path_;
  long line_;
};

// The exit code main() returns for an error of this kind.
int exit_code_for(ErrorKind kind);

// Short name of a kind ("input", "model", ...) for logs and the run summary.
const char* error_kind_name(ErrorKind kind);

}  // namespace abaw
