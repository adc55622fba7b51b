// Fields of one comma-separated line, as submissions, raw scores and per-video prediction files
// are read: split at every comma, each field trimmed of spaces and tabs, numbers only when the
// whole field is one.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

namespace abaw {

// "a, b,,c" -> {"a", "b", "", "c"}; "" -> {""}.
inline std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (true) {
    size_t comma = line.find(',', start);
    std::string field = line.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const size_t b = field.find_first_not_of(" \t"), e = field.find_last_not_of(" \t");
    fields.push_back(b == std::string::npos ? std::string() : field.substr(b, e - b + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return fields;
}

// Whole-field strtod; false for an empty field, trailing text or an out-of-range value.
inline bool to_double(const std::string& text, double* value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  *value = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && errno != ERANGE;
}

// Whole-field base-10 strtol; false for an empty field, trailing text or overflow.
inline bool to_long(const std::string& text, long* value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  *value = std::strtol(text.c_str(), &end, 10);
  return end == text.c_str() + text.size() && errno == 0;
}

}  // namespace abaw
