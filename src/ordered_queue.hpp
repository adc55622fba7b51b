// A small pool that computes items 0..count-1 on worker threads and hands them back in order,
// with at most `capacity` items computed ahead of the consumer. The pipeline uses it to decode
// crop batches while the model runs, with bounded memory.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace abaw {

template <typename T>
class OrderedQueue {
 public:
  // Starts `threads` workers calling `produce(i)`. A `produce` that throws stops the queue; the
  // exception is rethrown by the consumer's next call to next().
  OrderedQueue(size_t count, int threads, size_t capacity, std::function<T(size_t)> produce)
      : count_(count), capacity_(std::max<size_t>(1, capacity)), produce_(std::move(produce)) {
    for (int t = 0; t < std::max(1, threads); ++t) workers_.emplace_back([this] { work(); });
  }

  // Stops the workers (items in progress finish) and joins them; safe at any point.
  ~OrderedQueue() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    for (auto& worker : workers_) worker.join();
  }

  OrderedQueue(const OrderedQueue&) = delete;
  OrderedQueue& operator=(const OrderedQueue&) = delete;

  // The next item in order, waiting for it if needed; nothing after the last one.
  std::optional<T> next() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (consumed_ >= count_) return std::nullopt;
    changed_.wait(lock, [this] { return error_ || ready_.count(consumed_) > 0; });
    if (error_) std::rethrow_exception(error_);
    auto it = ready_.find(consumed_);
    T item = std::move(it->second);
    ready_.erase(it);
    ++consumed_;
    lock.unlock();
    changed_.notify_all();  // a worker may start one more item
    return item;
  }

 private:
  void work() {
    while (true) {
      size_t index;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock,
                      [this] { return stopping_ || error_ || started_ >= count_ || started_ < consumed_ + capacity_; });
        if (stopping_ || error_ || started_ >= count_) return;
        index = started_++;
      }
      try {
        T item = produce_(index);
        std::lock_guard<std::mutex> lock(mutex_);
        ready_.emplace(index, std::move(item));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      changed_.notify_all();
    }
  }

  const size_t count_;
  const size_t capacity_;
  std::function<T(size_t)> produce_;
  std::mutex mutex_;
  std::condition_variable changed_;
  size_t started_ = 0;
  size_t consumed_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::map<size_t, T> ready_;
  std::vector<std::thread> workers_;
};

}  // namespace abaw
