#include "abaw/postprocess.hpp"

#include <algorithm>
#include <limits>

#include "abaw/error.hpp"

namespace abaw {

std::vector<long> nearest_present(const std::vector<uint8_t>& present) {
  const long n = static_cast<long>(present.size());
  std::vector<long> previous(n, -1), next(n, -1);
  for (long t = 0, last = -1; t < n; ++t) {
    if (present[t]) last = t;
    previous[t] = last;
  }
  for (long t = n - 1, last = -1; t >= 0; --t) {
    if (present[t]) last = t;
    next[t] = last;
  }
  std::vector<long> nearest(n);
  for (long t = 0; t < n; ++t) {
    if (previous[t] < 0 && next[t] < 0) throw Error(ErrorKind::kRuntime, "internal: no present frame");
    if (previous[t] < 0)
      nearest[t] = next[t];
    else if (next[t] < 0)
      nearest[t] = previous[t];
    else
      nearest[t] = (t - previous[t] <= next[t] - t) ? previous[t] : next[t];
  }
  return nearest;
}

ScoreMatrix interpolate_missing(const ScoreMatrix& compact, const std::vector<uint8_t>& present) {
  const long n = static_cast<long>(present.size());
  std::vector<long> positions;  // frame index of each compact row
  for (long t = 0; t < n; ++t) {
    if (present[t]) positions.push_back(t);
  }
  if (positions.empty() || static_cast<long>(positions.size()) != compact.frames) {
    throw Error(ErrorKind::kRuntime, "internal: interpolation needs one score row per present frame");
  }
  ScoreMatrix full{n, compact.width, std::vector<float>(static_cast<size_t>(n) * compact.width)};
  size_t k = 0;  // first compact row at or after t
  for (long t = 0; t < n; ++t) {
    while (k < positions.size() && positions[k] < t) ++k;
    float* out = full.row(t);
    if (k < positions.size() && positions[k] == t) {
      std::copy_n(compact.row(static_cast<long>(k)), compact.width, out);
    } else if (k == 0) {
      std::copy_n(compact.row(0), compact.width, out);
    } else if (k == positions.size()) {
      std::copy_n(compact.row(static_cast<long>(k - 1)), compact.width, out);
    } else {
      const double a = static_cast<double>(t - positions[k - 1]) / (positions[k] - positions[k - 1]);
      const float* lo = compact.row(static_cast<long>(k - 1));
      const float* hi = compact.row(static_cast<long>(k));
      for (int c = 0; c < compact.width; ++c) out[c] = static_cast<float>(lo[c] + a * (hi[c] - lo[c]));
    }
  }
  return full;
}

ScoreMatrix mean_filter(const ScoreMatrix& scores, int width) {
  if (width <= 1 || scores.frames == 0) return scores;
  const long n = scores.frames;
  const int k = scores.width;
  // Prefix sums in double keep long videos exact enough and the filter O(T).
  std::vector<double> prefix(static_cast<size_t>(n + 1) * k, 0.0);
  for (long t = 0; t < n; ++t) {
    for (int c = 0; c < k; ++c) prefix[(t + 1) * k + c] = prefix[t * k + c] + scores.row(t)[c];
  }
  ScoreMatrix out{n, k, std::vector<float>(scores.values.size())};
  for (long t = 0; t < n; ++t) {
    const long lo = std::max(0L, t - width / 2);
    const long hi = std::min(n, t - width / 2 + width);  // exclusive
    for (int c = 0; c < k; ++c) {
      out.row(t)[c] = static_cast<float>((prefix[hi * k + c] - prefix[lo * k + c]) / (hi - lo));
    }
  }
  return out;
}

std::vector<int> argmax_labels(const ScoreMatrix& scores) {
  std::vector<int> labels(scores.frames);
  for (long t = 0; t < scores.frames; ++t) {
    const float* row = scores.row(t);
    labels[t] = static_cast<int>(std::max_element(row, row + scores.width) - row);
  }
  return labels;
}

std::vector<int> mode_filter(const std::vector<int>& labels, int width, int classes) {
  if (width <= 1 || labels.empty()) return labels;
  const long n = static_cast<long>(labels.size());
  std::vector<int> counts(classes, 0), out(n);
  long lo = 0, hi = 0;  // the window [lo, hi) currently counted
  for (long t = 0; t < n; ++t) {
    const long want_lo = std::max(0L, t - width / 2);
    const long want_hi = std::min(n, t - width / 2 + width);
    for (; hi < want_hi; ++hi) ++counts[labels[hi]];
    for (; lo < want_lo; ++lo) --counts[labels[lo]];
    out[t] = static_cast<int>(std::max_element(counts.begin(), counts.end()) - counts.begin());
  }
  return out;
}

TaskConfig plain_task_config(Task task) {
  TaskConfig config;
  config.task = task;
  config.class_map = {0, 1, 2, 3, 4, 5, 6, 7};
  config.thresholds.assign(12, 0.5f);
  return config;
}

ScoreMatrix finalize_predictions(const TaskConfig& config, const ScoreMatrix& raw) {
  ScoreMatrix filtered = mean_filter(raw, config.mean_filter);
  switch (config.task) {
    case Task::kVA:
      for (float& v : filtered.values) v = std::clamp(v, -1.0f, 1.0f);
      return filtered;
    case Task::kEXPR: {
      // A class the head does not predict is never chosen, whatever its (zero) score.
      for (int c = 0; c < filtered.width && c < static_cast<int>(config.class_map.size()); ++c) {
        if (config.class_map[c] >= 0) continue;
        for (long t = 0; t < filtered.frames; ++t) filtered.row(t)[c] = -std::numeric_limits<float>::infinity();
      }
      auto labels = mode_filter(argmax_labels(filtered), config.mode_filter, task_width(Task::kEXPR));
      ScoreMatrix out{raw.frames, 1, std::vector<float>(labels.begin(), labels.end())};
      return out;
    }
    case Task::kAU: {
      ScoreMatrix out{raw.frames, raw.width, std::vector<float>(filtered.values.size())};
      for (long t = 0; t < raw.frames; ++t) {
        for (int c = 0; c < raw.width; ++c) {
          out.row(t)[c] = filtered.row(t)[c] >= config.thresholds[c] ? 1.0f : 0.0f;
        }
      }
      return out;
    }
  }
  return filtered;
}

}  // namespace abaw
