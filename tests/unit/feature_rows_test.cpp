// A video's feature rows: the same values in memory and after spilling to a file, zeros for rows
// not yet written, nothing left in the folder, and a clear error when the folder is unusable.
#include "abaw/feature_rows.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "abaw/error.hpp"
#include "test_util.hpp"

namespace abaw {
namespace {

constexpr int kDim = 5;

std::vector<float> row_values(size_t row) {
  std::vector<float> values(kDim);
  for (int i = 0; i < kDim; ++i) values[i] = static_cast<float>(row * 10 + i) + 0.25f;
  return values;
}

std::vector<float> read_row(const FeatureRows& rows, size_t row) {
  std::vector<float> values(kDim, -1.0f);
  rows.get(row, values.data());
  return values;
}

bool folder_is_empty(const std::filesystem::path& folder) {
  return std::filesystem::directory_iterator(folder) == std::filesystem::directory_iterator();
}

TEST(FeatureRows, SpillsPastTheLimitAndKeepsEveryValue) {
  testing::ScratchDir dir;
  // Room for 3 rows in memory.
  FeatureRows rows(kDim, dir.path(), 3 * kDim * sizeof(float));
  rows.resize(2);
  rows.set(0, row_values(0).data());
  EXPECT_FALSE(rows.spilled());
  EXPECT_EQ(read_row(rows, 1), std::vector<float>(kDim, 0.0f));

  rows.resize(7);  // past the limit: the rows move to the file
  ASSERT_TRUE(rows.spilled());
  EXPECT_EQ(rows.size(), 7u);
  EXPECT_TRUE(folder_is_empty(dir.path())) << "the spill file is unlinked at once";
  EXPECT_EQ(read_row(rows, 0), row_values(0));
  EXPECT_EQ(read_row(rows, 6), std::vector<float>(kDim, 0.0f));
  for (size_t r = 1; r < 7; ++r) rows.set(r, row_values(r).data());
  rows.resize(12);
  rows.set(11, row_values(11).data());
  for (size_t r = 0; r < 7; ++r) EXPECT_EQ(read_row(rows, r), row_values(r)) << "row " << r;
  EXPECT_EQ(read_row(rows, 9), std::vector<float>(kDim, 0.0f));
  EXPECT_EQ(read_row(rows, 11), row_values(11));

  FeatureRows moved = std::move(rows);
  EXPECT_EQ(read_row(moved, 11), row_values(11));
  EXPECT_EQ(rows.size(), 0u);
}

TEST(FeatureRows, StaysInMemoryWithoutASpillFolder) {
  FeatureRows rows(kDim, {}, 0);
  rows.resize(50);
  rows.set(49, row_values(49).data());
  EXPECT_FALSE(rows.spilled());
  EXPECT_EQ(read_row(rows, 49), row_values(49));
  rows.resize(10);
  EXPECT_EQ(rows.size(), 10u);
}

TEST(FeatureRows, AnUnusableFolderIsAnOutputErrorNamingIt) {
  testing::ScratchDir dir;
  FeatureRows rows(kDim, dir / "gone", kDim * sizeof(float));
  rows.resize(1);  // within the limit: no file yet
  try {
    rows.resize(2);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kOutput);
    EXPECT_EQ(e.path(), (dir / "gone").string());
    EXPECT_NE(std::string(e.what()).find("spill"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace abaw
