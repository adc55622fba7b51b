#include "abaw/enum_names.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "abaw/bench.hpp"
#include "abaw/face_crop.hpp"
#include "abaw/manifest.hpp"
#include "abaw/preprocess_spec.hpp"

namespace abaw {
namespace {

// The table names each of the enum's `count` values (0 .. count-1) once, with distinct names,
// and parsing a name gives its value back.
template <class Enum, size_t N>
void expect_one_name_per_value(const EnumName<Enum> (&table)[N], int count) {
  EXPECT_EQ(N, static_cast<size_t>(count));
  std::set<std::string> names;
  for (int i = 0; i < count; ++i) {
    const Enum value = static_cast<Enum>(i);
    const std::string name = name_of(table, value);
    EXPECT_NE(name, "?") << "value " << i << " has no name";
    EXPECT_TRUE(names.insert(name).second) << name << " names two values";
    EXPECT_EQ(parse_name(table, name), value) << name;
  }
  EXPECT_EQ(parse_name(table, ""), std::nullopt);
  EXPECT_EQ(parse_name(table, "no such name"), std::nullopt);
}

TEST(EnumNames, EveryEnumHasOneNamePerValue) {
  expect_one_name_per_value(kResizeModeNames, 2);
  expect_one_name_per_value(kInterpolationNames, 8);
  expect_one_name_per_value(kColorOrderNames, 3);
  expect_one_name_per_value(kExifOrientationNames, 2);
  expect_one_name_per_value(kPreprocessPlaceNames, 3);
  expect_one_name_per_value(kMergeNames, 2);
  expect_one_name_per_value(kMissingFramesNames, 3);
  expect_one_name_per_value(kActivationNames, 4);
  expect_one_name_per_value(kPrecisionNames, 3);
  expect_one_name_per_value(kMemoryFormatNames, 2);
  expect_one_name_per_value(kFeatureNormalizationNames, 2);
  expect_one_name_per_value(kBenchStageNames, 2);
  expect_one_name_per_value(kCropStyleNames, 2);
}

TEST(EnumNames, NamesAreCaseSensitiveAndListedInTableOrder) {
  EXPECT_EQ(parse_name(kColorOrderNames, "GRAY"), ColorOrder::kGray);
  EXPECT_EQ(parse_name(kColorOrderNames, "gray"), std::nullopt);
  EXPECT_EQ(all_names(kPrecisionNames), (std::vector<std::string>{"fp32", "fp16", "bf16"}));
}

}  // namespace
}  // namespace abaw
