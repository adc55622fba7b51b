#include "abaw/manifest.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "abaw/error.hpp"
#include "abaw/tasks.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace abaw {

namespace {

// Bounds that keep values inside the int fields they land in, and far above any real model.
constexpr long kMaxImageSide = 16384;
constexpr long kMaxHeadOutputs = 65536;

// Reads typed values out of one JSON object, naming the full key path in every error, and
// rejects keys nobody asked for (a typo must not silently become a default).
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string where, const std::string& origin)
      : object_(object), where_(std::move(where)), origin_(origin) {
    if (!object_.is_object()) fail(where_.empty() ? "the manifest must be a JSON object" : "must be an object");
  }

  bool has(const std::string& key) {
    seen_.insert(key);
    return object_.contains(key) && !object_.at(key).is_null();
  }
  const json& at(const std::string& key) {
    seen_.insert(key);
    if (!object_.contains(key)) fail_key(key, "is required");
    return object_.at(key);
  }
  std::string string(const std::string& key) {
    const json& v = at(key);
    if (!v.is_string() || v.get<std::string>().empty()) fail_key(key, "must be a non-empty string");
    return v.get<std::string>();
  }
  std::string string_or(const std::string& key, const std::string& fallback) {
    return has(key) ? string(key) : fallback;
  }
  // A free-text field: may be empty, but must be a string if present.
  std::string text_or(const std::string& key, const std::string& fallback) {
    if (!has(key)) return fallback;
    const json& v = at(key);
    if (!v.is_string()) fail_key(key, "must be a string");
    return v.get<std::string>();
  }
  // Integers end up in int fields: a value past `max` is refused rather than truncated by the cast.
  long integer_or(const std::string& key, long fallback, long min, long max = std::numeric_limits<int>::max()) {
    if (!has(key)) return fallback;
    return integer_in(at(key), key, min, max);
  }
  // `what` replaces the default message ("must be an integer from min to max").
  long integer_in(const json& v, const std::string& key, long min, long max, const std::string& what = "") const {
    // Checked in the JSON's own kind: an unsigned value above LONG_MAX would wrap in get<long>().
    bool in_range = false;
    if (v.is_number_unsigned()) {
      const auto u = v.get<unsigned long>();
      in_range = u <= static_cast<unsigned long>(max) && static_cast<long>(u) >= min;
    } else if (v.is_number_integer()) {
      in_range = v.get<long>() >= min && v.get<long>() <= max;
    }
    if (!in_range) {
      fail_key(key,
               what.empty() ? "must be an integer from " + std::to_string(min) + " to " + std::to_string(max) : what);
    }
    return v.get<long>();
  }
  // A number that must stay finite once narrowed to float (1e300 is a valid double but inf as float).
  float finite_float(const json& v, const std::string& key, const std::string& what) const {
    const float value = v.is_number() ? static_cast<float>(v.get<double>()) : NAN;
    if (!std::isfinite(value)) fail_key(key, what);
    return value;
  }
  float number_or(const std::string& key, float fallback) {
    if (!has(key)) return fallback;
    return finite_float(at(key), key, "must be a finite number");
  }
  // One of `allowed` (every value of `table` when empty), by name; the first allowed value when
  // the key is absent.
  template <class Enum, size_t N>
  Enum enum_or(const std::string& key, const EnumName<Enum> (&table)[N], std::vector<Enum> allowed = {}) {
    if (allowed.empty()) {
      for (const auto& entry : table) allowed.push_back(entry.value);
    }
    if (!has(key)) return allowed.front();
    const std::string value = string(key);
    std::string list;
    for (Enum choice : allowed) {
      if (value == name_of(table, choice)) return choice;
      list += (list.empty() ? "" : ", ") + std::string(name_of(table, choice));
    }
    fail_key(key, "is '" + value + "', expected one of: " + list);
    return allowed.front();
  }
  std::vector<float> numbers(const std::string& key, size_t count) {
    const json& v = at(key);
    const std::string what = "must be an array of " + std::to_string(count) + " finite numbers";
    if (!v.is_array() || v.size() != count) fail_key(key, what);
    std::vector<float> out;
    for (const auto& x : v) out.push_back(finite_float(x, key, what));
    return out;
  }
  // Call after reading every key.
  void finish() {
    for (auto it = object_.begin(); it != object_.end(); ++it) {
      if (!seen_.count(it.key())) fail_key(it.key(), "is not a known key");
    }
  }
  std::string path(const std::string& key) const { return where_.empty() ? key : where_ + "." + key; }
  [[noreturn]] void fail_key(const std::string& key, const std::string& what) const {
    throw Error(ErrorKind::kModel, "'" + path(key) + "' " + what, origin_);
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorKind::kModel, (where_.empty() ? "" : "'" + where_ + "' ") + what, origin_);
  }

 private:
  const json& object_;
  std::string where_;
  const std::string& origin_;
  std::set<std::string> seen_;
};

PreprocessSpec parse_preprocess(const json& value, const std::string& origin) {
  ObjectReader r(value, "encoder.preprocess", origin);
  PreprocessSpec spec;
  spec.resize = static_cast<int>(r.integer_or("resize", 224, 1, kMaxImageSide));
  spec.resize_mode = r.enum_or("resize_mode", kResizeModeNames);
  spec.interpolation = r.enum_or("interpolation", kInterpolationNames);
  if (r.has("antialias")) {
    const json& antialias = r.at("antialias");
    if (!antialias.is_boolean()) r.fail_key("antialias", "must be true or false");
    if (!is_torch(spec.interpolation)) {
      r.fail_key("antialias",
                 "applies to the torch_* interpolations only (pil_* always antialias when shrinking, "
                 "OpenCV's never do)");
    }
    spec.antialias = antialias.get<bool>();
  }
  spec.crop = static_cast<int>(r.integer_or("crop", 0, 0, kMaxImageSide));
  spec.color_order = r.enum_or("color_order", kColorOrderNames);
  if (spec.color_order == ColorOrder::kGray && (is_pil(spec.interpolation) || is_torch(spec.interpolation))) {
    // Training code converts to gray before resizing, with its own weights; not reproduced yet.
    r.fail_key("interpolation",
               std::string("'") + name_of(kInterpolationNames, spec.interpolation) +
                   "' is for RGB or BGR encoders; with color_order GRAY use bicubic, bilinear, nearest or area");
  }
  spec.scale = r.number_or("scale", static_cast<float>(1.0 / 255.0));
  spec.exif = r.enum_or("exif", kExifOrientationNames);
  const size_t channels = static_cast<size_t>(spec.channels());
  spec.mean = r.has("mean") ? r.numbers("mean", channels) : std::vector<float>(channels, 0.0f);
  spec.std = r.has("std") ? r.numbers("std", channels) : std::vector<float>(channels, 1.0f);
  for (float s : spec.std) {
    if (!(s > 0.0f)) r.fail_key("std", "must be positive");
  }
  if (spec.crop > spec.resize) r.fail_key("crop", "is larger than 'resize'");
  if (spec.resize_mode == ResizeMode::kShorterSide && spec.crop == 0) {
    r.fail_key("crop",
               "is required with resize_mode shorter_side (the encoder needs square inputs; use "
               "crop = resize, or resize_mode stretch)");
  }
  r.finish();
  return spec;
}

TaskConfig parse_task_config(Task task, const json& value, const std::string& origin) {
  const std::string where = std::string("tasks.") + task_key(task);
  ObjectReader r(value, where, origin);
  TaskConfig config;
  config.task = task;
  const json& head = r.at("head");
  if (head.is_string()) {
    config.head_file = head.get<std::string>();
  } else if (head.is_object() && head.contains("columns")) {
    config.head_kind = HeadKind::kColumns;
    ObjectReader h(head, where + ".head", origin);
    const json& columns = h.at("columns");
    const std::string what = "must be [first, end]: the encoder output columns first..end-1";
    if (!columns.is_array() || columns.size() != 2) h.fail_key("columns", what);
    config.columns_first = h.integer_in(columns[0], "columns", 0, kMaxHeadOutputs, what);
    config.columns_end = h.integer_in(columns[1], "columns", 0, kMaxHeadOutputs, what);
    if (config.columns_end <= config.columns_first) h.fail_key("columns", what + " (end after first)");
    h.finish();
  } else if (head.is_object() && head.contains("text_embeddings")) {
    config.head_kind = HeadKind::kTextEmbeddings;
    ObjectReader h(head, where + ".head", origin);
    // Cosine similarity with one text row per class is a classifier: it gives no valence or
    // arousal, and AU prompts are not what CLIP was trained to separate.
    if (task != Task::kEXPR) {
      h.fail_key("text_embeddings", "is a zero-shot classifier head: only the expr task can use it");
    }
    config.head_file = h.string("text_embeddings");
    config.logit_scale = h.number_or("logit_scale", 100.0f);
    if (!(config.logit_scale > 0.0f)) h.fail_key("logit_scale", "must be positive (CLIP's is 100)");
    h.finish();
  } else if (head.is_object()) {
    ObjectReader h(head, where + ".head", origin);
    config.head_file = h.string("file");
    config.output_key = h.string("output");
    h.finish();
  } else {
    r.fail_key("head",
               "must be a file name, {\"file\": ..., \"output\": ...}, {\"columns\": [first, end]} or "
               "{\"text_embeddings\": file, \"logit_scale\": s}");
  }
  if (config.head_file.empty() && !config.uses_columns()) r.fail_key("head", "names no file");

  switch (task) {
    case Task::kVA:
      config.activation = r.enum_or("activation", kActivationNames, {Activation::kNone, Activation::kTanh});
      config.head_outputs = 2;
      break;
    case Task::kEXPR: {
      config.activation = r.enum_or("activation", kActivationNames, {Activation::kSoftmax, Activation::kNone});
      if (r.has("class_map")) {
        const json& map = r.at("class_map");
        if (!map.is_array() || map.size() != 8) r.fail_key("class_map", "must be an array of 8 entries (ABAW order)");
        std::set<int> used;
        int largest = -1;
        for (const auto& entry : map) {
          if (entry.is_null()) {
            config.class_map.push_back(-1);
            continue;
          }
          const int index = static_cast<int>(r.integer_in(
              entry, "class_map", 0, kMaxHeadOutputs - 1,
              "entries must be head output indices (0 to " + std::to_string(kMaxHeadOutputs - 1) + ") or null"));
          if (!used.insert(index).second)
            r.fail_key("class_map", "uses head output " + std::to_string(index) + " twice");
          largest = std::max(largest, index);
          config.class_map.push_back(index);
        }
        if (largest < 0) r.fail_key("class_map", "maps no class");
        config.head_outputs = largest + 1;
      } else {
        config.class_map = {0, 1, 2, 3, 4, 5, 6, 7};
        config.head_outputs = 8;
      }
      config.mode_filter = static_cast<int>(r.integer_or("mode_filter", 0, 0));
      break;
    }
    case Task::kAU: {
      config.activation = r.enum_or("activation", kActivationNames, {Activation::kSigmoid, Activation::kNone});
      config.head_outputs = 12;
      config.thresholds.assign(12, 0.5f);
      if (r.has("threshold")) {
        const json& t = r.at("threshold");
        if (t.is_number()) {
          config.thresholds.assign(12, r.finite_float(t, "threshold", "must be a finite number or 12 of them"));
        } else {
          config.thresholds = r.numbers("threshold", 12);
        }
        // After a sigmoid a threshold outside (0, 1) labels every frame alike: a typo, not a choice.
        if (config.activation == Activation::kSigmoid) {
          for (size_t i = 0; i < config.thresholds.size(); ++i) {
            const float value = config.thresholds[i];
            if (!(value > 0.0f && value < 1.0f)) {
              char shown[32];
              std::snprintf(shown, sizeof shown, "%g", value);
              r.fail_key("threshold", std::string("for ") + task_columns(Task::kAU)[i] + " is " + shown +
                                          ", outside (0, 1): after the sigmoid every frame would get the same "
                                          "label");
            }
          }
        }
      }
      break;
    }
  }
  config.mean_filter = static_cast<int>(r.integer_or("mean_filter", 0, 0));
  r.finish();
  return config;
}

}  // namespace

std::string head_description(const TaskConfig& config) {
  switch (config.head_kind) {
    case HeadKind::kColumns:
      return "encoder columns " + std::to_string(config.columns_first) + ".." + std::to_string(config.columns_end - 1);
    case HeadKind::kTextEmbeddings: {
      char scale[32];
      std::snprintf(scale, sizeof scale, "%g", config.logit_scale);
      return "text embeddings " + config.head_file + " (logit scale " + scale + ")";
    }
    case HeadKind::kModule:
      break;
  }
  return config.output_key.empty() ? config.head_file : config.head_file + " ['" + config.output_key + "']";
}

void validate_sequence(const SequenceConfig& sequence, const std::string& origin, ErrorKind kind) {
  if (sequence.window < 1 || sequence.stride < 1) {
    throw Error(kind, "window and stride must be at least 1", origin);
  }
  if (sequence.merge == Merge::kConcatenate && sequence.stride != sequence.window) {
    throw Error(kind,
                "merge 'concatenate' needs stride = window (got window " + std::to_string(sequence.window) +
                    ", stride " + std::to_string(sequence.stride) + "); use merge 'mean' for overlapping windows",
                origin);
  }
  if (sequence.merge == Merge::kMean && sequence.stride > sequence.window) {
    throw Error(kind,
                "stride " + std::to_string(sequence.stride) + " is larger than window " +
                    std::to_string(sequence.window) + ": frames between windows would get no prediction",
                origin);
  }
}

Manifest parse_manifest(const std::string& text, const fs::path& folder, const std::string& origin) {
  json root;
  // json::exception, not just parse_error: a number too large for a double is out_of_range
  // (found by fuzz_manifest).
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(ErrorKind::kModel, std::string("invalid JSON: ") + e.what(), origin);
  }
  ObjectReader r(root, "", origin);
  Manifest manifest;
  manifest.folder = folder;
  const std::string format = r.string("format");
  if (format != "abaw-infer-model-set") r.fail_key("format", "must be \"abaw-infer-model-set\"");
  if (r.integer_or("version", 0, 0) != 1) r.fail_key("version", "must be 1 (the only version this build reads)");
  manifest.name = r.string("name");
  manifest.description = r.text_or("description", "");

  {
    ObjectReader e(r.at("encoder"), "encoder", origin);
    manifest.encoder.file = e.string("file");
    manifest.encoder.feature_dim = static_cast<int>(e.integer_or("feature_dim", 0, 1));
    if (manifest.encoder.feature_dim == 0) e.fail_key("feature_dim", "is required");
    manifest.encoder.preprocess = parse_preprocess(e.at("preprocess"), origin);
    manifest.encoder.precision = e.enum_or("precision", kPrecisionNames);
    manifest.encoder.memory_format = e.enum_or("memory_format", kMemoryFormatNames);
    manifest.encoder.normalize = e.enum_or("normalize", kFeatureNormalizationNames);
    e.finish();
  }
  if (r.has("faces")) {
    ObjectReader f(r.at("faces"), "faces", origin);
    FacePipelineSpec& faces = manifest.faces;
    if (f.has("detector")) faces.detector = f.enum_or("detector", kDetectorNames);
    if (f.has("style")) faces.style = f.enum_or("style", kCropStyleNames);
    if (f.has("size")) faces.size = static_cast<int>(f.integer_or("size", 0, 16, 4096));
    if (f.has("margin")) {
      faces.margin = f.number_or("margin", 0.0f);
      if (*faces.margin < 0 || *faces.margin > 3) f.fail_key("margin", "must be from 0 to 3");
    }
    f.finish();
  }
  if (r.has("sequence")) {
    ObjectReader s(r.at("sequence"), "sequence", origin);
    auto& seq = manifest.sequence;
    seq.window = s.integer_or("window", 300, 1);
    seq.stride = s.integer_or("stride", seq.window, 1);
    seq.merge = s.enum_or("merge", kMergeNames);
    seq.missing_frames = s.enum_or("missing_frames", kMissingFramesNames);
    s.finish();
    validate_sequence(seq, origin, ErrorKind::kModel);
  }
  {
    ObjectReader t(r.at("tasks"), "tasks", origin);
    for (Task task : all_tasks()) {
      if (t.has(task_key(task))) manifest.tasks[task] = parse_task_config(task, t.at(task_key(task)), origin);
    }
    t.finish();
    if (manifest.tasks.empty()) t.fail("must define at least one of va, expr, au");
  }
  // A columns head reads the encoder's output: its columns must exist and be the task's width.
  for (const auto& [task, config] : manifest.tasks) {
    if (!config.uses_columns()) continue;
    const std::string key = std::string("'tasks.") + task_key(task) + ".head.columns' ";
    if (config.columns_end > manifest.encoder.feature_dim) {
      throw Error(ErrorKind::kModel,
                  key + "ends at column " + std::to_string(config.columns_end) + ", past the encoder's feature_dim " +
                      std::to_string(manifest.encoder.feature_dim),
                  origin);
    }
    if (config.columns_end - config.columns_first != config.head_outputs) {
      throw Error(ErrorKind::kModel,
                  key + "selects " + std::to_string(config.columns_end - config.columns_first) +
                      " columns; the task needs " + std::to_string(config.head_outputs) +
                      (task == Task::kEXPR ? " (the largest class_map index + 1)" : ""),
                  origin);
    }
  }
  // One file is one module: a file used as a plain head must not also be a dict head.
  std::map<std::string, bool> file_is_dict;
  for (const auto& [task, config] : manifest.tasks) {
    if (config.head_kind != HeadKind::kModule) continue;
    const bool is_dict = !config.output_key.empty();
    auto [it, inserted] = file_is_dict.emplace(config.head_file, is_dict);
    if (!inserted && it->second != is_dict) {
      throw Error(ErrorKind::kModel, "'" + config.head_file + "' is used both as a plain head and as a multi-task head",
                  origin);
    }
  }
  r.finish();
  return manifest;
}

namespace {

std::string read_json_text(const fs::path& file, ErrorKind kind, const char* what) {
  std::ifstream in(file);
  if (!in) throw Error(kind, std::string("cannot open the ") + what, file.string());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

Manifest load_manifest(const fs::path& folder, const std::optional<fs::path>& patch) {
  const fs::path file = folder / "manifest.json";
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) {
    throw Error(ErrorKind::kModel, "model set folder does not exist", folder.string());
  }
  std::string text = read_json_text(file, ErrorKind::kModel, "manifest");
  std::string origin = file.string();
  if (patch) {
    json merged, fragment;
    try {
      merged = json::parse(text);
    } catch (const json::exception& e) {
      throw Error(ErrorKind::kModel, std::string("invalid JSON: ") + e.what(), file.string());
    }
    try {
      fragment = json::parse(read_json_text(*patch, ErrorKind::kUsage, "manifest patch"));
    } catch (const json::exception& e) {
      throw Error(ErrorKind::kUsage, std::string("invalid JSON: ") + e.what(), patch->string());
    }
    merged.merge_patch(fragment);  // RFC 7396: objects merge, other values replace
    text = merged.dump();
    origin += " patched by " + patch->string();
  }
  Manifest manifest = parse_manifest(text, folder, origin);
  std::vector<std::string> files{manifest.encoder.file};
  for (const auto& [task, config] : manifest.tasks) {
    if (!config.uses_columns()) files.push_back(config.head_file);
  }
  for (const auto& name : files) {
    if (!fs::is_regular_file(manifest.file(name), ec)) {
      throw Error(ErrorKind::kModel, "names '" + name + "', which does not exist in the set folder", origin);
    }
  }
  return manifest;
}

}  // namespace abaw
