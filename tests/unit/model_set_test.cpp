// The process-wide runtime settings `run` and `bench` apply (model_set.hpp).
#include "abaw/model_set.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace abaw {
namespace {

#if defined(__SANITIZE_ADDRESS__)
#define ABAW_OWN_ALLOCATOR 1  // ASan replaces malloc: glibc's heap statistics say nothing
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ABAW_OWN_ALLOCATOR 1
#endif
#endif

TEST(HeapMemory, FreedMemoryIsKeptAndHandedBackOnlyPastTheLimit) {
#if defined(ABAW_OWN_ALLOCATOR) || !defined(__GLIBC__)
  GTEST_SKIP() << "needs glibc's malloc";
#else
  keep_freed_memory_for_reuse();
  HeapTrimmer patient(size_t{1} << 30), strict(size_t{16} << 20);
  // 96 MB in 1 MB blocks; freeing every other one leaves ~48 MB free but resident inside the
  // heap, which neither mmap (off) nor the heap-top trim (256 MB) gives back by itself.
  std::vector<std::unique_ptr<char[]>> blocks;
  for (int i = 0; i < 96; ++i) {
    blocks.emplace_back(new char[1 << 20]);
    std::fill_n(blocks.back().get(), 1 << 20, 1);  // resident
  }
  for (size_t i = 0; i < blocks.size(); i += 2) blocks[i].reset();
  const size_t before = resident_set_bytes();
  EXPECT_FALSE(patient.trim_if_grown());  // within its limit: kept for reuse
  EXPECT_TRUE(strict.trim_if_grown());    // past its limit: handed back
  EXPECT_LT(resident_set_bytes() + (size_t{32} << 20), before);
  EXPECT_FALSE(strict.trim_if_grown());  // what is left is in use: no second trim
#endif
}

}  // namespace
}  // namespace abaw
