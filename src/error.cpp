#include "abaw/error.hpp"

namespace abaw {
namespace {

std::string located(const std::string& message, const std::string& path, long line) {
  if (path.empty()) return message;
  if (line > 0) return path + ":" + std::to_string(line) + ": " + message;
  return path + ": " + message;
}

}  // namespace

Error::Error(ErrorKind kind, const std::string& message, const std::string& path, long line)
    : std::runtime_error(located(message, path, line)), kind_(kind), message_(message), path_(path), line_(line) {}

int exit_code_for(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kUsage:
      return kExitUsage;
    case ErrorKind::kInput:
      return kExitInput;
    case ErrorKind::kModel:
      return kExitModel;
    case ErrorKind::kOutput:
      return kExitOutput;
    case ErrorKind::kRuntime:
      return kExitRuntime;
  }
  return kExitRuntime;
}

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kUsage:
      return "usage";
    case ErrorKind::kInput:
      return "input";
    case ErrorKind::kModel:
      return "model";
    case ErrorKind::kOutput:
      return "output";
    case ErrorKind::kRuntime:
      return "runtime";
  }
  return "runtime";
}

}  // namespace abaw
