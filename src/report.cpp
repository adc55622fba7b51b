#include "abaw/report.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>

#include "abaw/annotations.hpp"
#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"
#include "abaw/manifest.hpp"
#include "abaw/metrics.hpp"
#include "abaw/output_layout.hpp"
#include "abaw/postprocess.hpp"
#include "abaw/raw_scores.hpp"
#include "abaw/submission.hpp"
#include "abaw/writers.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace abaw {
namespace {

// Thumbnails larger than this are left out: a crop folder of full frames must not bloat the file.
constexpr std::uintmax_t kMaxThumbnailBytes = 256 * 1024;

std::string base64(const std::string& bytes) {
  static const char* const kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t a = static_cast<uint8_t>(bytes[i]);
    const uint32_t b = i + 1 < bytes.size() ? static_cast<uint8_t>(bytes[i + 1]) : 0;
    const uint32_t c = i + 2 < bytes.size() ? static_cast<uint8_t>(bytes[i + 2]) : 0;
    const uint32_t triple = (a << 16) | (b << 8) | c;
    out += kAlphabet[(triple >> 18) & 63];
    out += kAlphabet[(triple >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(triple >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[triple & 63] : '=';
  }
  return out;
}

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string number(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

// `frames` frames reduced to at most `max_points` bins; bin b holds frames [first(b), end(b)).
struct Bins {
  // No bins for a video of no frames (a raw-score file with only its header).
  Bins(long frames, int max_points) : frames(frames), count(std::min<long>(frames, max_points)) {}
  long first(long b) const { return b * frames / count; }
  long end(long b) const { return (b + 1) * frames / count; }
  long frames;
  long count;
};

uint8_t probability_byte(double p) { return static_cast<uint8_t>(std::lround(std::clamp(p, 0.0, 1.0) * 255.0)); }

void put_u16(std::string& out, long value) {
  out += static_cast<char>(value & 255);
  out += static_cast<char>((value >> 8) & 255);
}

long va_code(double v) { return std::lround((std::clamp(v, -1.0, 1.0) + 1.0) / 2.0 * 65534.0); }
constexpr long kNoValue16 = 65535;

// The most frequent label >= 0 among labels[first, end) (ties: the lowest), or -1.
int bin_mode(const std::vector<int>& labels, long first, long end, int classes) {
  std::vector<long> counts(classes, 0);
  for (long t = first; t < end; ++t) {
    if (labels[t] >= 0 && labels[t] < classes) ++counts[labels[t]];
  }
  const auto best = std::max_element(counts.begin(), counts.end());
  return *best > 0 ? static_cast<int>(best - counts.begin()) : -1;
}

// Per-bin mean of column `c` of `m`, as probability bytes.
std::string mean_bytes(const ScoreMatrix& m, int c, const Bins& bins) {
  std::string out;
  for (long b = 0; b < bins.count; ++b) {
    double sum = 0;
    for (long t = bins.first(b); t < bins.end(b); ++t) sum += m.row(t)[c];
    out += static_cast<char>(probability_byte(sum / (bins.end(b) - bins.first(b))));
  }
  return base64(out);
}

// Per-bin most frequent label, as label + 1 bytes (0: none).
std::string mode_bytes(const std::vector<int>& labels, const Bins& bins, int classes) {
  std::string out;
  for (long b = 0; b < bins.count; ++b)
    out += static_cast<char>(bin_mode(labels, bins.first(b), bins.end(b), classes) + 1);
  return base64(out);
}

// One task of one video: what the run wrote and what the annotation says.
struct TaskTrack {
  ScoreMatrix raw;
  std::vector<uint8_t> has_crop;
  ScoreMatrix predicted;  // finalize_predictions: VA values, EXPR label, AU labels
  std::optional<AnnotationFile> truth;
};

json va_json(const TaskTrack& track, int max_points) {
  const Bins bins(track.predicted.frames, max_points);
  json out{{"frames", track.predicted.frames}, {"bins", bins.count}};
  for (int c = 0; c < 2; ++c) {
    const std::string& name = task_columns(Task::kVA)[c];
    std::string low, high, true_low, true_high;
    for (long b = 0; b < bins.count; ++b) {
      double lo = 2, hi = -2, tlo = 2, thi = -2;
      for (long t = bins.first(b); t < bins.end(b); ++t) {
        lo = std::min<double>(lo, track.predicted.row(t)[c]);
        hi = std::max<double>(hi, track.predicted.row(t)[c]);
        if (track.truth && t < track.truth->frames) {
          const float* label = &track.truth->values[static_cast<size_t>(t) * 2];
          if (!label_is_invalid(Task::kVA, label)) {
            tlo = std::min<double>(tlo, label[c]);
            thi = std::max<double>(thi, label[c]);
          }
        }
      }
      put_u16(low, va_code(lo));
      put_u16(high, va_code(hi));
      put_u16(true_low, tlo <= thi ? va_code(tlo) : kNoValue16);
      put_u16(true_high, tlo <= thi ? va_code(thi) : kNoValue16);
    }
    out["pred"][name] = {{"min", base64(low)}, {"max", base64(high)}};
    if (track.truth) out["true"][name] = {{"min", base64(true_low)}, {"max", base64(true_high)}};
  }
  return out;
}

json expr_json(const TaskTrack& track, int max_points) {
  const Bins bins(track.raw.frames, max_points);
  json out{{"frames", track.raw.frames}, {"bins", bins.count}};
  for (int c = 0; c < 8; ++c) out["probs"].push_back(mean_bytes(track.raw, c, bins));
  std::vector<int> predicted(track.predicted.frames);
  for (long t = 0; t < track.predicted.frames; ++t) predicted[t] = static_cast<int>(track.predicted.row(t)[0]);
  out["pred"] = mode_bytes(predicted, bins, 8);
  if (track.truth) {
    std::vector<int> truth(track.raw.frames, -1);
    for (long t = 0; t < std::min(track.raw.frames, track.truth->frames); ++t) {
      truth[t] = static_cast<int>(track.truth->values[t]);
    }
    out["true"] = mode_bytes(truth, bins, 8);
  }
  return out;
}

json au_json(const TaskTrack& track, const TaskConfig& config, int max_points) {
  const Bins bins(track.raw.frames, max_points);
  json out{{"frames", track.raw.frames}, {"bins", bins.count}, {"thresholds", config.thresholds}};
  for (int c = 0; c < 12; ++c) out["probs"].push_back(mean_bytes(track.raw, c, bins));
  if (track.truth) {
    for (int c = 0; c < 12; ++c) {
      std::vector<int> truth(track.raw.frames, -1);
      for (long t = 0; t < std::min(track.raw.frames, track.truth->frames); ++t) {
        truth[t] = static_cast<int>(track.truth->values[static_cast<size_t>(t) * 12 + c]);
      }
      out["true"].push_back(mode_bytes(truth, bins, 2));
    }
  }
  return out;
}

// 1-based inclusive frame ranges without a crop.
json no_face_ranges(const std::vector<uint8_t>& has_crop) {
  json ranges = json::array();
  for (size_t t = 0; t < has_crop.size();) {
    if (has_crop[t]) {
      ++t;
      continue;
    }
    size_t end = t;
    while (end < has_crop.size() && !has_crop[end]) ++end;
    ranges.push_back({t + 1, end});
    t = end;
  }
  return ranges;
}

// Up to `count` crops spread along the video: (frame, data URI).
json thumbnails(const fs::path& crops, const VideoName& video, const std::vector<uint8_t>& has_crop, int count) {
  json out = json::array();
  std::vector<long> frames;
  for (size_t t = 0; t < has_crop.size(); ++t) {
    if (has_crop[t]) frames.push_back(static_cast<long>(t) + 1);
  }
  if (frames.empty() || count <= 0) return out;
  std::set<long> chosen;
  const long n = std::min<long>(count, static_cast<long>(frames.size()));
  for (long i = 0; i < n; ++i) chosen.insert(frames[n == 1 ? 0 : i * (frames.size() - 1) / (n - 1)]);
  for (long frame : chosen) {
    const fs::path file = video_path(crops, video) / format_crop_file_name(frame);
    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    if (ec || size > kMaxThumbnailBytes) continue;
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.size() < 4) continue;
    const bool png = bytes.compare(0, 4, "\x89PNG") == 0;
    out.push_back({frame, std::string("data:image/") + (png ? "png" : "jpeg") + ";base64," + base64(bytes)});
  }
  return out;
}

json read_run_summary(const fs::path& run) {
  const fs::path file = OutputLayout{run}.summary();
  std::ifstream in(file);
  if (!in) throw Error(ErrorKind::kInput, "no run.json: not a run output folder", run.string());
  json summary = json::parse(in, nullptr, false);
  if (!summary.is_object()) throw Error(ErrorKind::kInput, "not valid JSON", file.string());
  return summary;
}

// A value of run.json as text, "" when absent.
std::string field(const json& summary, std::initializer_list<const char*> path) {
  const json* node = &summary;
  for (const char* key : path) {
    if (!node->is_object() || !node->contains(key)) return "";
    node = &(*node)[key];
  }
  if (node->is_string()) return node->get<std::string>();
  if (node->is_number_float()) return number("%.4g", node->get<double>());
  if (node->is_null()) return "";
  return node->dump();
}

// The inlined script: draws each video's timeline on its canvas from the embedded data.
const char* const kScript = R"JS(
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("abaw-report-data").textContent);
  var EXPR = [[158,158,158], [211,47,47], [123,31,162], [69,90,100], [251,192,45], [25,118,210], [245,124,0], [121,85,72]];
  var VA = {valence: "#1565c0", arousal: "#e65100"};
  function bytes(b64) {
    var s = atob(b64), a = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
    return a;
  }
  function u16(b64) {
    var a = bytes(b64), o = new Uint16Array(a.length / 2);
    for (var i = 0; i < o.length; i++) o[i] = a[2 * i] | (a[2 * i + 1] << 8);
    return o;
  }
  function va(v) { return v * 2 / 65534 - 1; }
  // Pixels are written into one ImageData per timeline (a fillRect per bin and row is ~100x slower
  // on a software canvas); lines and shading are drawn over it afterwards.
  function draw(video) {
    var canvas = document.getElementById("timeline-" + video.index);
    if (!canvas) return;
    var g = canvas.getContext("2d"), W = canvas.width, H = canvas.height, frames = video.frames;
    var image = g.createImageData(W, H), px = image.data;
    function fill(x0, x1, y0, y1, c) {
      for (var y = Math.max(0, y0); y < Math.min(H, y1); y++) {
        for (var x = x0, o = (y * W + x0) * 4; x < x1; x++, o += 4) { px[o] = c[0]; px[o + 1] = c[1]; px[o + 2] = c[2]; px[o + 3] = 255; }
      }
    }
    var overlays = [], top = 0;
    video.panels.forEach(function (panel) {
      var t = video.tasks[panel.task], bins = t.bins, n = t.frames, y0 = top;
      function x0(b) { return Math.floor(Math.floor(b * n / bins) / frames * W); }
      function x1(b) { return Math.max(x0(b) + 1, Math.floor(Math.floor((b + 1) * n / bins) / frames * W)); }
      fill(0, W, y0, y0 + panel.height, [247, 247, 247]);
      if (panel.task === "VA") {
        overlays.push(function () {
          var h = panel.height, mid = y0 + h / 2;
          g.strokeStyle = "#ccc"; g.beginPath(); g.moveTo(0, mid); g.lineTo(W, mid); g.stroke();
          ["valence", "arousal"].forEach(function (dim) {
            function y(v) { return mid - va(v) * (h / 2 - 2); }
            var lo = u16(t.pred[dim].min), hi = u16(t.pred[dim].max), b;
            g.fillStyle = VA[dim]; g.globalAlpha = 0.3; g.beginPath();
            for (b = 0; b < bins; b++) g.lineTo((x0(b) + x1(b)) / 2, y(hi[b]));
            for (b = bins - 1; b >= 0; b--) g.lineTo((x0(b) + x1(b)) / 2, y(lo[b]) + 1);
            g.fill(); g.globalAlpha = 1;
            g.strokeStyle = VA[dim]; g.lineWidth = 1.2; g.beginPath();
            for (b = 0; b < bins; b++) g.lineTo((x0(b) + x1(b)) / 2, (y(lo[b]) + y(hi[b])) / 2);
            g.stroke();
            if (t["true"]) {
              var tl = u16(t["true"][dim].min), th = u16(t["true"][dim].max), on = false;
              g.setLineDash([3, 2]); g.beginPath();
              for (b = 0; b < bins; b++) {
                if (tl[b] === 65535) { on = false; continue; }
                var xm = (x0(b) + x1(b)) / 2, ym = (y(tl[b]) + y(th[b])) / 2;
                if (on) g.lineTo(xm, ym); else g.moveTo(xm, ym);
                on = true;
              }
              g.stroke(); g.setLineDash([]);
            }
          });
        });
      } else if (panel.task === "EXPR") {
        var ph = panel.height - 20, probs = t.probs.map(bytes);
        for (var b = 0; b < bins; b++) {
          var bottom = y0 + ph, a = x0(b), z = x1(b);
          for (var c = 0; c < 8; c++) {
            var hh = Math.round(probs[c][b] / 255 * ph);
            fill(a, z, bottom - hh, bottom, EXPR[c]);
            bottom -= hh;
          }
        }
        [["pred", y0 + ph + 2], ["true", y0 + ph + 11]].forEach(function (strip) {
          if (!t[strip[0]]) return;
          var labels = bytes(t[strip[0]]);
          for (var b = 0; b < bins; b++) if (labels[b]) fill(x0(b), x1(b), strip[1], strip[1] + 7, EXPR[labels[b] - 1]);
        });
      } else if (panel.task === "AU") {
        var row = 9, heat = t.probs.map(bytes), truth = t["true"] ? t["true"].map(bytes) : null;
        for (var u = 0; u < 12; u++) {
          var y = y0 + u * row, threshold = t.thresholds[u] * 255;
          for (var b = 0; b < bins; b++) {
            var p = heat[u][b] / 255, a = x0(b), z = x1(b);
            fill(a, z, y, y + row - 3, [Math.round(255 - 57 * p), Math.round(255 - 215 * p), Math.round(255 - 215 * p)]);
            if (heat[u][b] >= threshold) fill(a, z, y + row - 4, y + row - 3, [0, 0, 0]);
            if (truth && truth[u][b]) fill(a, z, y + row - 2, y + row, truth[u][b] === 2 ? [46, 125, 50] : [224, 224, 224]);
          }
        }
      }
      top += panel.height + 6;
    });
    g.putImageData(image, 0, 0);
    overlays.forEach(function (f) { f(); });
    g.fillStyle = "rgba(0,0,0,0.12)";
    video.no_face.forEach(function (r) { g.fillRect(r[0] - 1 < 0 ? 0 : (r[0] - 1) / frames * W, 0, Math.max(1, (r[1] - r[0] + 1) / frames * W), H); });
    canvas.setAttribute("data-drawn", "1");
  }
  // A timeline is drawn when it comes near the screen, so a long run opens at once; "#all" in the
  // address draws every one on load (tests and scripts/bench_report.py use it).
  function drawnAll() {
    document.body.setAttribute("data-timelines-drawn", String(data.videos.length));
    document.body.setAttribute("data-drawn-after-ms", String(Math.round(performance.now())));
  }
  if (location.hash === "#all" || !("IntersectionObserver" in window)) {
    data.videos.forEach(draw);
    drawnAll();
    return;
  }
  var left = data.videos.length, first = true;
  var observer = new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      if (!entry.isIntersecting) return;
      observer.unobserve(entry.target);
      draw(data.videos[Number(entry.target.id.split("-")[1])]);
      if (--left === 0) drawnAll();
    });
    if (first) {
      first = false;
      document.body.setAttribute("data-first-screen-after-ms", String(Math.round(performance.now())));
    }
  }, {rootMargin: "800px"});
  data.videos.forEach(function (video) { observer.observe(document.getElementById("timeline-" + video.index)); });
})();
)JS";

const char* const kStyle = R"CSS(
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
section.video { margin: 24px 0; border-top: 1px solid #ccc; }
canvas { width: 1000px; display: block; }
.thumbs { position: relative; height: 52px; width: 1000px; }
.thumbs img { position: absolute; height: 48px; transform: translateX(-50%); border: 1px solid #aaa; }
.swatch { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }
.muted { color: #777; }
)CSS";

const char* const kExprColors[8] = {"#9e9e9e", "#d32f2f", "#7b1fa2", "#455a64",
                                    "#fbc02d", "#1976d2", "#f57c00", "#795548"};

// run_post_processing, from run.json already read.
std::map<Task, TaskConfig> post_processing_of(const json& summary, std::string* whose) {
  std::map<Task, TaskConfig> configs;
  for (Task task : all_tasks()) configs[task] = plain_task_config(task);
  const std::string path = field(summary, {"model_set", "path"});
  *whose = "plain (argmax, AU threshold 0.5, no filters): run.json names no model set";
  if (path.empty()) return configs;
  try {
    const Manifest manifest = load_manifest(path);
    for (const auto& [task, config] : manifest.tasks) configs[task] = config;
    *whose = "the model set's (" + path + ")";
  } catch (const Error& e) {
    spdlog::warn("{}; labels are made with plain post-processing", e.what());
    *whose = "plain (argmax, AU threshold 0.5, no filters): the run's model set cannot be read (" + path + ")";
  }
  return configs;
}

}  // namespace

std::map<Task, TaskConfig> run_post_processing(const fs::path& run, std::string* whose) {
  return post_processing_of(read_run_summary(run), whose);
}

ReportSummary write_report(const ReportOptions& options) {
  const json summary = read_run_summary(options.run);
  ReportSummary result;
  const std::map<Task, TaskConfig> configs = post_processing_of(summary, &result.post_processing);
  const OutputLayout layout{options.run};

  // video -> task -> track
  std::map<std::string, std::map<Task, TaskTrack>> videos;
  std::vector<Task> tasks;
  for (Task task : all_tasks()) {
    const auto files = raw_score_files(options.run, task);
    if (files.empty()) continue;
    tasks.push_back(task);
    for (const auto& [video, file] : files) {
      const VideoName name = VideoName::checked(video);
      TaskTrack track;
      track.raw = read_raw_scores(file, task, &track.has_crop);
      track.predicted = finalize_predictions(configs.at(task), track.raw);
      if (auto annotations = options.annotations.find(task); annotations != options.annotations.end()) {
        const fs::path truth = video_path(annotations->second, name, ".txt");
        std::error_code ec;
        if (fs::exists(truth, ec)) track.truth = read_annotation_file(truth, task);
      }
      videos[video][task] = std::move(track);
    }
  }
  if (videos.empty()) throw Error(ErrorKind::kInput, "no raw scores (raw/<TASK>/<video>.csv)", options.run.string());
  result.videos = static_cast<long>(videos.size());
  result.tasks = static_cast<long>(tasks.size());

  // Scores of the labels drawn, per task with annotations.
  std::map<Task, Evaluation> evaluations;
  std::map<Task, std::vector<std::vector<long>>> confusion;  // EXPR: [true][predicted]
  for (Task task : tasks) {
    auto annotations = options.annotations.find(task);
    if (annotations == options.annotations.end()) continue;
    PredictionSet set;
    set.task = task;
    set.origin = "the report's labels (" + layout.raw_scores_folder(task).string() + ")";
    const int width = submission_width(task);
    for (const auto& [video, tracks] : videos) {
      auto track = tracks.find(task);
      if (track == tracks.end()) continue;
      VideoPredictions& predictions = set.videos[video];
      predictions.width = width;
      const ScoreMatrix& p = track->second.predicted;
      for (long t = 0; t < p.frames; ++t) predictions.row_of_frame[t + 1] = static_cast<size_t>(t);
      predictions.values.assign(p.values.begin(), p.values.end());
      if (task == Task::kVA) {
        // As the submission holds them (6 decimals), so the scores equal `eval`'s on it.
        for (float& v : predictions.values) v = static_cast<float>(std::strtod(number("%.6f", v).c_str(), nullptr));
      }
    }
    evaluations[task] = evaluate(set, annotations->second, true, true);
    result.scored = true;
    if (task == Task::kEXPR) {
      auto& matrix = confusion[task];
      matrix.assign(8, std::vector<long>(8, 0));
      for (const auto& [video, tracks] : videos) {
        auto track = tracks.find(task);
        if (track == tracks.end() || !track->second.truth) continue;
        const AnnotationFile& truth = *track->second.truth;
        for (long t = 0; t < std::min(truth.frames, track->second.predicted.frames); ++t) {
          const int label = static_cast<int>(truth.values[t]);
          if (label >= 0 && label < 8) ++matrix[label][static_cast<int>(track->second.predicted.row(t)[0])];
        }
      }
    }
  }

  // The embedded data.
  json data{{"tasks", json::array()}, {"videos", json::array()}};
  for (Task task : tasks) data["tasks"].push_back(task_name(task));
  long index = 0;
  for (const auto& [video, tracks] : videos) {
    json entry{{"index", index++}, {"video", video}, {"tasks", json::object()}, {"panels", json::array()}};
    long frames = 0;
    for (const auto& [task, track] : tracks) {
      frames = std::max(frames, track.raw.frames);
      if (task == Task::kVA) entry["tasks"]["VA"] = va_json(track, options.max_points);
      if (task == Task::kEXPR) entry["tasks"]["EXPR"] = expr_json(track, options.max_points);
      if (task == Task::kAU) entry["tasks"]["AU"] = au_json(track, configs.at(task), options.max_points);
      entry["panels"].push_back({{"task", task_name(task)},
                                 {"height", task == Task::kVA     ? 90
                                            : task == Task::kEXPR ? 70
                                                                  : 108}});
    }
    entry["frames"] = frames;
    entry["no_face"] = no_face_ranges(tracks.begin()->second.has_crop);
    if (options.crops) {
      entry["thumbnails"] =
          thumbnails(*options.crops, VideoName::checked(video), tracks.begin()->second.has_crop, options.thumbnails);
    }
    data["videos"].push_back(std::move(entry));
  }

  // The page.
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>abaw-infer report: " +
                     escape(options.run.filename().string()) + "</title>\n<style>" + kStyle +
                     "</style></head>\n<body>\n";
  html += "<h1>abaw-infer report</h1>\n<table>\n";
  auto row = [&](const std::string& name, const std::string& value) {
    if (!value.empty()) html += "<tr><th>" + escape(name) + "</th><td>" + escape(value) + "</td></tr>\n";
  };
  row("run", fs::absolute(options.run).string());
  row("model set", field(summary, {"model_set", "name"}) + "  (" + field(summary, {"model_set", "path"}) + ")");
  row("post-processing", result.post_processing);
  row("device", field(summary, {"device"}));
  row("precision", field(summary, {"precision"}));
  row("videos", field(summary, {"videos", "total"}));
  row("frames", field(summary, {"frames", "total"}) + " (" + field(summary, {"frames", "crops"}) + " with a crop, " +
                    field(summary, {"frames", "filled"}) + " filled)");
  row("speed", field(summary, {"frames_per_second", "overall"}) + " frames/s overall, " +
                   field(summary, {"seconds", "total"}) + " s");
  if (summary.contains("videos") && summary["videos"].contains("failed") && summary["videos"]["failed"].is_array()) {
    std::string failed;
    for (const auto& f : summary["videos"]["failed"]) {
      failed += (failed.empty() ? "" : "; ") + f.value("video", std::string()) + ": " + f.value("error", std::string());
    }
    row("failed videos", failed.empty() ? "none" : failed);
  }
  row("tool", field(summary, {"tool"}) + " " + field(summary, {"version"}));
  html += "</table>\n";

  for (const auto& [task, evaluation] : evaluations) {
    html += "<h2>" + std::string(task_name(task)) + ": " + (task == Task::kVA ? "CCC " : "F1 ") +
            number("%.4f", evaluation.score) + "</h2>\n<p class=\"muted\">" +
            std::to_string(evaluation.frames_evaluated) + " frames evaluated, " +
            std::to_string(evaluation.frames_excluded) + " with an invalid label, " +
            std::to_string(evaluation.frames_without_prediction) + " without a prediction; annotations " +
            escape(options.annotations.at(task).string()) + "</p>\n<table><tr><th></th>";
    for (const auto& part : evaluation.parts) html += "<th>" + escape(part.name) + "</th>";
    html += "</tr><tr><td>" + std::string(task == Task::kVA ? "CCC" : "F1") + "</td>";
    for (const auto& part : evaluation.parts) html += "<td>" + number("%.3f", part.score) + "</td>";
    html += "</tr></table>\n";
    if (task == Task::kEXPR && confusion.count(task)) {
      html +=
          "<p>Confusion matrix (rows: annotation, columns: prediction)</p>\n<table class=\"confusion\"><tr><th></th>";
      for (const auto& name : task_columns(Task::kEXPR)) html += "<th>" + name + "</th>";
      html += "</tr>\n";
      const auto& matrix = confusion.at(task);
      for (int r = 0; r < 8; ++r) {
        long total = 0;
        for (long v : matrix[r]) total += v;
        html += "<tr><th>" + task_columns(Task::kEXPR)[r] + "</th>";
        for (int c = 0; c < 8; ++c) {
          const double share = total > 0 ? static_cast<double>(matrix[r][c]) / total : 0.0;
          html += "<td style=\"background: rgba(25,118,210," + number("%.3f", share) + ")\">" +
                  std::to_string(matrix[r][c]) + "</td>";
        }
        html += "</tr>\n";
      }
      html += "</table>\n";
    }
    html +=
        "<p>Videos, worst first</p>\n<table class=\"per-video\"><tr><th>video</th><th>score</th><th>frames</th></tr>\n";
    for (const auto& [video, one] : evaluation.per_video) {
      const long at = std::distance(videos.begin(), videos.find(video));
      html += "<tr><td><a href=\"#video-" + std::to_string(at) + "\">" + escape(video) + "</a></td><td>" +
              number("%.4f", one.score) + "</td><td>" + std::to_string(one.frames_evaluated) + "</td></tr>\n";
    }
    html += "</table>\n";
  }

  html +=
      "<h2>Timelines</h2>\n<p class=\"muted\">Grey bands: frames without a face. VA: each bin's range (band) and "
      "middle (line), annotation dashed. EXPR: class probabilities stacked, then the predicted and the annotated "
      "label. AU: one row per AU, red as strong as the probability, a black tick where it reaches the threshold, "
      "the annotation below it (green: 1). At most " +
      std::to_string(options.max_points) + " bins per video.</p>\n<p>";
  for (int c = 0; c < 8; ++c) {
    html += "<span class=\"swatch\" style=\"background:" + std::string(kExprColors[c]) + "\"></span>" +
            task_columns(Task::kEXPR)[c];
  }
  html +=
      "<span class=\"swatch\" style=\"background:#1565c0\"></span>valence<span class=\"swatch\" "
      "style=\"background:#e65100\"></span>arousal</p>\n<noscript><p>The timelines are drawn by the page's "
      "inlined script: allow JavaScript for this file to see them.</p></noscript>\n";
  for (const auto& entry : data["videos"]) {
    long height = 0;
    for (const auto& panel : entry["panels"]) height += panel["height"].get<long>() + 6;
    const std::string i = std::to_string(entry["index"].get<long>());
    html += "<section class=\"video\" id=\"video-" + i + "\"><h3>" + escape(entry["video"].get<std::string>()) +
            "</h3><p class=\"muted\">" + std::to_string(entry["frames"].get<long>()) + " frames, " +
            std::to_string(entry["no_face"].size()) + " stretch(es) without a face</p>\n";
    html += "<canvas class=\"timeline\" id=\"timeline-" + i + "\" width=\"1000\" height=\"" + std::to_string(height) +
            "\"></canvas>\n";
    if (entry.contains("thumbnails") && !entry["thumbnails"].empty()) {
      html += "<div class=\"thumbs\">";
      for (const auto& thumb : entry["thumbnails"]) {
        const double left = 100.0 * (thumb[0].get<long>() - 0.5) / std::max(1L, entry["frames"].get<long>());
        html += "<img alt=\"frame " + std::to_string(thumb[0].get<long>()) + "\" style=\"left:" + number("%.2f", left) +
                "%\" src=\"" + thumb[1].get<std::string>() + "\">";
      }
      html += "</div>\n";
    }
    html += "</section>\n";
  }
  for (auto& entry : data["videos"]) entry.erase("thumbnails");  // in the page already
  // "</" cannot end the data block early: JSON escapes nothing there, so "<" is written as \u003c.
  std::string embedded = data.dump();
  std::string safe;
  safe.reserve(embedded.size());
  for (char c : embedded) safe += c == '<' ? std::string("\\u003c") : std::string(1, c);
  html += "<script type=\"application/json\" id=\"abaw-report-data\">" + safe + "</script>\n<script>" + kScript +
          "</script>\n</body></html>\n";
  write_file_atomically(options.output, html);
  return result;
}

}  // namespace abaw
