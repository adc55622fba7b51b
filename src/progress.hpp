// Timing helpers and the progress line shared by `run` and `bench` (library-internal).
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

namespace abaw {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// "H:MM:SS".
inline std::string format_duration(double seconds) {
  const long s = static_cast<long>(std::llround(seconds));
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  return buffer;
}

// Logs progress at most every few seconds, and at the end: "<verb> 640/1800 <what> (35.6%),
// 212.3 frames/s, ETA 0:00:05". With `only_when_slow`, work that ends within the first few
// seconds logs nothing (per-video phases: thousands of short videos would flood the log).
class Progress {
 public:
  Progress(long total, std::string verb, std::string what, bool only_when_slow = false)
      : total_(total),
        verb_(std::move(verb)),
        what_(std::move(what)),
        start_(Clock::now()),
        last_(start_),
        only_when_slow_(only_when_slow) {}

  void advance(long done) {
    done_ += done;
    const auto now = Clock::now();
    const bool due = std::chrono::duration<double>(now - last_).count() >= 3.0;
    if (!due && (done_ < total_ || (only_when_slow_ && !logged_))) return;
    last_ = now;
    logged_ = true;
    const double elapsed = seconds_since(start_);
    const double rate = elapsed > 0 ? done_ / elapsed : 0.0;
    spdlog::info("{} {}/{} {} ({:.1f}%), {:.1f} frames/s, ETA {}", verb_, done_, total_, what_,
                 total_ ? 100.0 * done_ / total_ : 100.0, rate,
                 rate > 0 ? format_duration((total_ - done_) / rate) : "?");
  }

 private:
  long total_;
  std::string verb_, what_;
  long done_ = 0;
  Clock::time_point start_, last_;
  bool only_when_slow_ = false;
  bool logged_ = false;
};

}  // namespace abaw
