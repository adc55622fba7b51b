// Names of enum values as files and the command line spell them. Each enum has one table (e.g.
// kPrecisionNames in manifest.hpp); the manifest parser, the CLI's option checks, messages,
// `info` and run.json all read that table, so a name is written once and a new value cannot be
// accepted in one place and unknown in another.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace abaw {

// One entry of a name table.
template <class Enum>
struct EnumName {
  const char* name;
  Enum value;
};

// The name of `value` in `table`; "?" for a value the table lacks (a table missing a value is a
// bug the unit tests look for, not an input error).
template <class Enum, size_t N>
constexpr const char* name_of(const EnumName<Enum> (&table)[N], Enum value) {
  for (const auto& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return "?";
}

// The value named `text` exactly (names are case-sensitive); nothing for an unknown name.
template <class Enum, size_t N>
std::optional<Enum> parse_name(const EnumName<Enum> (&table)[N], std::string_view text) {
  for (const auto& entry : table) {
    if (text == entry.name) return entry.value;
  }
  return std::nullopt;
}

// Every name in table order: what help texts and the CLI's choice checks list.
template <class Enum, size_t N>
std::vector<std::string> all_names(const EnumName<Enum> (&table)[N]) {
  std::vector<std::string> names;
  for (const auto& entry : table) names.emplace_back(entry.name);
  return names;
}

}  // namespace abaw
