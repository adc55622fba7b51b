// The process-wide runtime settings `run` and `bench` apply (runtime.hpp).
#include "abaw/runtime.hpp"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "test_util.hpp"

namespace abaw {
namespace {

#if defined(__SANITIZE_ADDRESS__)
#define ABAW_OWN_ALLOCATOR 1  // ASan replaces malloc: glibc's heap statistics say nothing
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ABAW_OWN_ALLOCATOR 1
#endif
#endif

// Allocates `megabytes` 1 MB blocks, touches them and frees every other one: about half of them
// stays free but resident inside the heap, which malloc gives back by itself neither through mmap
// (off) nor by trimming the heap top (off), since the blocks still held sit above the holes.
std::vector<std::unique_ptr<char[]>> fragment_heap(int megabytes) {
  std::vector<std::unique_ptr<char[]>> blocks;
  for (int i = 0; i < megabytes; ++i) {
    blocks.emplace_back(new char[1 << 20]);
    std::fill_n(blocks.back().get(), 1 << 20, 1);  // resident
  }
  for (size_t i = 0; i < blocks.size(); i += 2) blocks[i].reset();
  return blocks;
}

TEST(HeapMemory, FreedMemoryIsKeptAndHandedBackOnlyPastTheLimit) {
#if defined(ABAW_OWN_ALLOCATOR) || !defined(__GLIBC__)
  GTEST_SKIP() << "needs glibc's malloc";
#else
  keep_freed_memory_for_reuse();
  HeapTrimmer patient(size_t{1} << 30), strict(size_t{16} << 20);
  const auto first = fragment_heap(96);  // ~48 MB free
  const size_t before = resident_set_bytes();
  EXPECT_FALSE(patient.trim_if_grown());  // within its limit: kept for reuse
  EXPECT_TRUE(strict.trim_if_grown());    // past its limit: handed back
  EXPECT_LT(resident_set_bytes() + (size_t{32} << 20), before);

  // What the next batch faults in again after a trim is memory in use: the first check after a
  // trim takes it as the new baseline instead of trimming after every batch.
  std::unique_ptr<char[]> working_set(new char[size_t{64} << 20]);
  std::fill_n(working_set.get(), size_t{64} << 20, 1);
  EXPECT_FALSE(strict.trim_if_grown());
  EXPECT_FALSE(strict.trim_if_grown());   // nothing grew since: still no trim
  const auto second = fragment_heap(96);  // growth past the limit beyond the new baseline
  EXPECT_TRUE(strict.trim_if_grown());
#endif
}

TEST(UsableCpus, CgroupQuotasRoundUpToWholeCpus) {
  EXPECT_EQ(cpus_in_cpu_quota(100000, 100000), 1);
  EXPECT_EQ(cpus_in_cpu_quota(150000, 100000), 2);  // 1.5 CPUs: two threads, not one
  EXPECT_EQ(cpus_in_cpu_quota(50000, 100000), 1);
  EXPECT_EQ(cpus_in_cpu_quota(-1, 100000), 0);  // cgroup v1's "no limit"
  EXPECT_EQ(cpus_in_cpu_quota(100000, 0), 0);
  EXPECT_EQ(cpus_in_cgroup_cpu_max("400000 100000"), 4);
  EXPECT_EQ(cpus_in_cgroup_cpu_max("250000 100000\n"), 3);
  EXPECT_EQ(cpus_in_cgroup_cpu_max("max 100000"), 0);
  for (const char* unreadable : {"", "100000", "abc 100000", "12x 100000", "100000 abc"}) {
    EXPECT_EQ(cpus_in_cgroup_cpu_max(unreadable), 0) << unreadable;
  }
}

TEST(UsableCpus, TheTightestCgroupQuotaOnTheWayToTheRootBinds) {
  testing::ScratchDir scratch;
  const std::filesystem::path v2 = scratch / "v2", v1 = scratch / "v1";
  // v2: the pod allows 3 CPUs, the container below it has no limit of its own.
  testing::write_text(v2 / "cpu.max", "max 100000\n");
  testing::write_text(v2 / "kubepods/pod1/cpu.max", "300000 100000\n");
  testing::write_text(v2 / "kubepods/pod1/ctr/cpu.max", "max 100000\n");
  EXPECT_EQ(cpus_in_cgroup_limits("0::/kubepods/pod1/ctr\n", v2), 3);
  EXPECT_EQ(cpus_in_cgroup_limits("0::/\n", v2), 0);
  // A path that is not visible (a container without its own cgroup namespace): the mount's root.
  testing::write_text(v2 / "cpu.max", "200000 100000\n");
  EXPECT_EQ(cpus_in_cgroup_limits("0::/elsewhere/ctr\n", v2), 2);
  // v1: only the hierarchy holding the cpu controller counts.
  testing::write_text(v1 / "cpu,cpuacct/slurm/job7/cpu.cfs_quota_us", "400000\n");
  testing::write_text(v1 / "cpu,cpuacct/slurm/job7/cpu.cfs_period_us", "100000\n");
  testing::write_text(v1 / "cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  testing::write_text(v1 / "cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  testing::write_text(v1 / "memory/slurm/job7/cpu.cfs_quota_us", "100000\n");
  testing::write_text(v1 / "memory/slurm/job7/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(cpus_in_cgroup_limits("5:memory:/slurm/job7\n3:cpu,cpuacct:/slurm/job7\n1:name=systemd:/\n", v1), 4);
  EXPECT_EQ(cpus_in_cgroup_limits("", v1), 0);
  EXPECT_EQ(cpus_in_cgroup_limits("not a cgroup line\n", v1), 0);
}

TEST(UsableCpus, FollowTheAffinityMask) {
  cpu_set_t original;
  ASSERT_EQ(sched_getaffinity(0, sizeof(original), &original), 0);
  const int allowed = CPU_COUNT(&original);
  EXPECT_GE(usable_cpu_count(), 1);
  EXPECT_LE(usable_cpu_count(), allowed);
  int first = 0;
  while (!CPU_ISSET(first, &original)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  const int pinned = usable_cpu_count();
  ASSERT_EQ(sched_setaffinity(0, sizeof(original), &original), 0);
  EXPECT_EQ(pinned, 1);
}

TEST(TorchThreads, AScopeSetsTheCallingThreadsCountAndGivesItBack) {
  const int before = at::get_num_threads();
  if (!set_calling_thread_torch_threads(before)) GTEST_SKIP() << "LibTorch's threads are not OpenMP's";
  {
    const CallingThreadTorchThreads inside(before + 1);
    EXPECT_EQ(at::get_num_threads(), before + 1);
  }
  EXPECT_EQ(at::get_num_threads(), before);
}

}  // namespace
}  // namespace abaw
