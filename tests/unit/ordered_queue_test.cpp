// The decode pool's queue: order, bounded look-ahead, errors and early shutdown without deadlock.
#include "ordered_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <stdexcept>

namespace abaw {
namespace {

TEST(OrderedQueue, ReturnsEveryItemInOrderWhateverTheWorkersTiming) {
  std::atomic<int> in_flight{0}, most_ahead{0};
  std::atomic<size_t> consumed{0};
  const size_t capacity = 3;
  OrderedQueue<size_t> queue(500, 4, capacity, [&](size_t i) {
    // How far ahead of the consumer may a worker be? At most `capacity` items.
    const int ahead = static_cast<int>(i) - static_cast<int>(consumed.load());
    int seen = most_ahead.load();
    while (ahead > seen && !most_ahead.compare_exchange_weak(seen, ahead)) {
    }
    ++in_flight;
    std::this_thread::sleep_for(std::chrono::microseconds((i * 7919) % 200));
    --in_flight;
    return i * i;
  });
  for (size_t i = 0; i < 500; ++i) {
    auto item = queue.next();
    ASSERT_TRUE(item.has_value());
    EXPECT_EQ(*item, i * i);
    consumed = i + 1;
  }
  EXPECT_FALSE(queue.next().has_value());
  EXPECT_LT(most_ahead.load(), static_cast<int>(capacity) + 1);
}

TEST(OrderedQueue, AWorkerExceptionReachesTheConsumer) {
  OrderedQueue<int> queue(100, 3, 4, [](size_t i) -> int {
    if (i == 5) throw std::runtime_error("decoder exploded");
    return static_cast<int>(i);
  });
  try {
    for (int i = 0; i < 100; ++i) queue.next();
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "decoder exploded");
  }
}

TEST(OrderedQueue, DestroyingEarlyStopsTheWorkers) {
  std::atomic<int> produced{0};
  {
    OrderedQueue<int> queue(1000000, 4, 2, [&](size_t i) {
      ++produced;
      return static_cast<int>(i);
    });
    EXPECT_EQ(*queue.next(), 0);
  }  // must not hang
  EXPECT_LT(produced.load(), 100);
}

TEST(OrderedQueue, EmptyAndSingleThreaded) {
  OrderedQueue<int> empty(0, 2, 2, [](size_t) { return 1; });
  EXPECT_FALSE(empty.next().has_value());
  OrderedQueue<int> one(3, 1, 1, [](size_t i) { return static_cast<int>(i) + 10; });
  EXPECT_EQ(*one.next(), 10);
  EXPECT_EQ(*one.next(), 11);
  EXPECT_EQ(*one.next(), 12);
  EXPECT_FALSE(one.next().has_value());
}

}  // namespace
}  // namespace abaw
