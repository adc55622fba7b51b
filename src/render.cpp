#include "abaw/render.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <optional>

#include "abaw/annotations.hpp"
#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"
#include "abaw/output_layout.hpp"
#include "abaw/postprocess.hpp"
#include "abaw/raw_scores.hpp"
#include "abaw/report.hpp"
#include "csv_fields.hpp"

namespace fs = std::filesystem;

namespace abaw {
namespace {

// frame (1-based) -> face box, from `crop`'s boxes CSV; frames without a face are absent.
std::map<long, cv::Rect2f> read_boxes(const fs::path& file) {
  const std::vector<std::string> lines = read_text_lines(file);
  if (lines.empty() || lines[0].rfind("frame,x,y,width,height,score", 0) != 0) {
    throw Error(ErrorKind::kInput, "expected the header 'frame,x,y,width,height,score' of crop's boxes file",
                file.string(), 1);
  }
  std::map<long, cv::Rect2f> boxes;
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty() && i + 1 == lines.size()) break;
    const std::vector<std::string> fields = split_fields(lines[i]);
    long frame = 0;
    if (fields.size() < 6 || !to_long(fields[0], &frame) || frame < 1) {
      throw Error(ErrorKind::kInput, "expected frame,x,y,width,height,score", file.string(), static_cast<long>(i + 1));
    }
    if (fields[1].empty()) continue;  // no face in this frame
    double v[4];
    for (int k = 0; k < 4; ++k) {
      if (!to_double(fields[k + 1], &v[k])) {
        throw Error(ErrorKind::kInput, "box value " + std::to_string(k + 1) + " is not a number", file.string(),
                    static_cast<long>(i + 1));
      }
    }
    boxes[frame] = cv::Rect2f(static_cast<float>(v[0]), static_cast<float>(v[1]), static_cast<float>(v[2]),
                              static_cast<float>(v[3]));
  }
  return boxes;
}

// One task's scores for the video, as the overlay needs them.
struct TaskScores {
  ScoreMatrix raw;
  ScoreMatrix predicted;
  TaskConfig config;
};

const cv::Scalar kBoxColour(0, 200, 0);  // BGR

void draw_expression(cv::Mat& frame, const TaskScores& expr, long t, const std::optional<cv::Rect2f>& box) {
  const int label = static_cast<int>(expr.predicted.row(t)[0]);
  char text[64];
  std::snprintf(text, sizeof text, "%s %.2f", task_columns(Task::kEXPR)[label].c_str(), expr.raw.row(t)[label]);
  int baseline = 0;
  const double scale = std::max(0.4, frame.rows / 720.0 * 0.8);
  const cv::Size size = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, 1, &baseline);
  cv::Point origin =
      box ? cv::Point(static_cast<int>(box->x), static_cast<int>(box->y) - 6) : cv::Point(8, 20 + size.height);
  origin.x = std::clamp(origin.x, 0, std::max(0, frame.cols - size.width));
  origin.y = std::clamp(origin.y, size.height + 2, frame.rows - 2);
  cv::rectangle(frame, cv::Rect(origin.x - 2, origin.y - size.height - 3, size.width + 4, size.height + baseline + 4),
                cv::Scalar(30, 30, 30), cv::FILLED);
  cv::putText(frame, text, origin, cv::FONT_HERSHEY_SIMPLEX, scale, cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
}

void draw_circumplex(cv::Mat& frame, const TaskScores& va, long t) {
  const int radius = std::max(20, std::min(frame.cols, frame.rows) / 10);
  const cv::Point centre(frame.cols - radius - 10, frame.rows - radius - 10);
  cv::circle(frame, centre, radius, cv::Scalar(40, 40, 40), cv::FILLED, cv::LINE_AA);
  cv::circle(frame, centre, radius, cv::Scalar(200, 200, 200), 1, cv::LINE_AA);
  cv::line(frame, centre - cv::Point(radius, 0), centre + cv::Point(radius, 0), cv::Scalar(120, 120, 120), 1);
  cv::line(frame, centre - cv::Point(0, radius), centre + cv::Point(0, radius), cv::Scalar(120, 120, 120), 1);
  const float valence = va.predicted.row(t)[0], arousal = va.predicted.row(t)[1];
  const cv::Point point(centre.x + static_cast<int>(valence * radius), centre.y - static_cast<int>(arousal * radius));
  cv::circle(frame, point, std::max(3, radius / 10), cv::Scalar(0, 170, 255), cv::FILLED, cv::LINE_AA);
}

void draw_action_units(cv::Mat& frame, const TaskScores& au, long t) {
  const int bar = std::max(6, frame.cols / 120), gap = 2, height = std::max(30, frame.rows / 8);
  const int left = 10, bottom = frame.rows - 10;
  cv::rectangle(frame, cv::Rect(left - 4, bottom - height - 4, 12 * (bar + gap) + 6, height + 8),
                cv::Scalar(40, 40, 40), cv::FILLED);
  for (int a = 0; a < 12; ++a) {
    const float p = std::clamp(au.raw.row(t)[a], 0.0f, 1.0f);
    const bool on = au.predicted.row(t)[a] > 0.5f;
    const int x = left + a * (bar + gap), h = static_cast<int>(p * height);
    cv::rectangle(frame, cv::Rect(x, bottom - h, bar, std::max(1, h)),
                  on ? cv::Scalar(60, 60, 230) : cv::Scalar(160, 160, 160), cv::FILLED);
  }
}

}  // namespace

RenderResult render_overlay(const RenderOptions& options) {
  const auto name = VideoName::parse(options.video.stem().string());
  if (!name) throw Error(ErrorKind::kInput, "the file name is not a valid video name", options.video.string());
  const std::map<long, cv::Rect2f> boxes = read_boxes(options.boxes);
  std::string whose;
  const std::map<Task, TaskConfig> configs = run_post_processing(options.run, &whose);
  std::map<Task, TaskScores> scores;
  for (Task task : all_tasks()) {
    const fs::path file = OutputLayout{options.run}.raw_scores(task, *name);
    std::error_code ec;
    if (!fs::exists(file, ec)) continue;
    TaskScores s;
    s.raw = read_raw_scores(file, task);
    s.config = configs.at(task);
    s.predicted = finalize_predictions(s.config, s.raw);
    scores[task] = std::move(s);
  }
  if (scores.empty()) {
    throw Error(ErrorKind::kInput, "no raw scores for video '" + name->str() + "' (raw/<TASK>/" + name->str() + ".csv)",
                options.run.string());
  }
  spdlog::info("render {}: labels with {} post-processing", name->str(), whose);

  cv::VideoCapture capture(options.video.string());
  if (!capture.isOpened())
    throw Error(ErrorKind::kInput, "cannot open the video (no decoder for it?)", options.video.string());
  RenderResult result;
  result.fps = capture.get(cv::CAP_PROP_FPS);
  if (!(result.fps > 0)) result.fps = 25.0;
  const std::string extension = options.output.extension().string();
  int fourcc = 0;
  if (extension == ".mp4") {
    fourcc = cv::VideoWriter::fourcc('m', 'p', '4', 'v');
  } else if (extension == ".avi") {
    fourcc = cv::VideoWriter::fourcc('M', 'J', 'P', 'G');
  } else {
    throw Error(ErrorKind::kUsage, "the overlay must be a .mp4 or .avi file", options.output.string());
  }
  if (options.output.has_parent_path()) fs::create_directories(options.output.parent_path());
  const fs::path temporary = options.output.parent_path() /
                             ("." + options.output.stem().string() + ".tmp-" + std::to_string(::getpid()) + extension);
  struct RemoveUnlessRenamed {
    fs::path path;
    ~RemoveUnlessRenamed() {
      std::error_code ignored;
      fs::remove(path, ignored);
    }
  } cleanup{temporary};
  cv::VideoWriter writer;
  cv::Mat frame;
  for (long number = 1; capture.read(frame); ++number) {
    if (!writer.isOpened() && !writer.open(temporary.string(), fourcc, result.fps, frame.size())) {
      throw Error(ErrorKind::kOutput, "no encoder could open the overlay video", temporary.string());
    }
    std::optional<cv::Rect2f> box;
    if (auto it = boxes.find(number); it != boxes.end()) {
      box = it->second;
      cv::rectangle(frame, cv::Rect(it->second), kBoxColour, std::max(2, frame.rows / 240), cv::LINE_8);
    }
    const long t = number - 1;
    bool covered = false;
    if (auto it = scores.find(Task::kEXPR); it != scores.end() && t < it->second.raw.frames) {
      draw_expression(frame, it->second, t, box);
      covered = true;
    }
    if (auto it = scores.find(Task::kVA); it != scores.end() && t < it->second.raw.frames) {
      draw_circumplex(frame, it->second, t);
      covered = true;
    }
    if (auto it = scores.find(Task::kAU); it != scores.end() && t < it->second.raw.frames) {
      draw_action_units(frame, it->second, t);
      covered = true;
    }
    result.predicted += covered;
    writer.write(frame);
    ++result.frames;
  }
  if (result.frames == 0) throw Error(ErrorKind::kInput, "no frame could be decoded", options.video.string());
  writer.release();
  std::error_code ec;
  fs::rename(temporary, options.output, ec);
  if (ec)
    throw Error(ErrorKind::kOutput, "cannot rename the overlay into place: " + ec.message(), options.output.string());
  cleanup.path.clear();
  return result;
}

}  // namespace abaw
