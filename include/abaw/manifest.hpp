// The model-set manifest (`<set>/manifest.json`): parsing and validation without loading any
// model. The format is documented in models/README.md.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "abaw/error.hpp"
#include "abaw/enum_names.hpp"
#include "abaw/face_spec.hpp"
#include "abaw/preprocess_spec.hpp"
#include "abaw/tasks.hpp"

namespace abaw {

enum class Merge { kConcatenate, kMean };
enum class MissingFrames { kZeroFeature, kNearestFeature, kInterpolatePredictions };
enum class Activation { kNone, kTanh, kSoftmax, kSigmoid };
enum class Precision { kFp32, kFp16, kBf16 };
enum class MemoryFormat { kContiguous, kChannelsLast };
// What happens to each frame's feature before the heads see it (and before it is cached).
enum class FeatureNormalization {
  kNone,
  kL2,  // divided by its Euclidean norm (F.normalize, eps 1e-12): heads trained on normalised embeddings
};

// The names the manifest and the command line use.
inline constexpr EnumName<Merge> kMergeNames[] = {{"concatenate", Merge::kConcatenate}, {"mean", Merge::kMean}};
inline constexpr EnumName<MissingFrames> kMissingFramesNames[] = {
    {"zero_feature", MissingFrames::kZeroFeature},
    {"nearest_feature", MissingFrames::kNearestFeature},
    {"interpolate_predictions", MissingFrames::kInterpolatePredictions}};
inline constexpr EnumName<Activation> kActivationNames[] = {{"none", Activation::kNone},
                                                            {"tanh", Activation::kTanh},
                                                            {"softmax", Activation::kSoftmax},
                                                            {"sigmoid", Activation::kSigmoid}};
inline constexpr EnumName<Precision> kPrecisionNames[] = {
    {"fp32", Precision::kFp32}, {"fp16", Precision::kFp16}, {"bf16", Precision::kBf16}};
inline constexpr EnumName<MemoryFormat> kMemoryFormatNames[] = {{"contiguous", MemoryFormat::kContiguous},
                                                                {"channels_last", MemoryFormat::kChannelsLast}};
inline constexpr EnumName<FeatureNormalization> kFeatureNormalizationNames[] = {{"none", FeatureNormalization::kNone},
                                                                                {"l2", FeatureNormalization::kL2}};

// The manifest's `encoder` block.
struct EncoderConfig {
  std::string file;  // relative to the set folder
  int feature_dim = 0;
  PreprocessSpec preprocess;
  Precision precision = Precision::kFp32;  // the encoder's weights and inputs; features are fp32
  // Layout of the encoder's input batch. channels_last lets oneDNN's (and cuDNN's) faster
  // convolution kernels run: ~1.7x for the default set's depthwise CNN on a CPU. Features then
  // differ from contiguous in the last bits, so it is part of the resume and cache keys.
  MemoryFormat memory_format = MemoryFormat::kContiguous;
  FeatureNormalization normalize = FeatureNormalization::kNone;
};

// The manifest's `sequence` block: how the temporal heads see a video.
struct SequenceConfig {
  long window = 300;
  long stride = 300;
  Merge merge = Merge::kConcatenate;
  MissingFrames missing_frames = MissingFrames::kZeroFeature;
};

// One entry of the manifest's `tasks` block.
// Where a task's scores come from.
enum class HeadKind {
  kModule,          // a TorchScript head over windows of features: "head": "file.pt" or {"file", "output"}
  kColumns,         // encoder output columns, for per-frame models that output the scores themselves
  kTextEmbeddings,  // logit_scale * cos(frame feature, class row): zero-shot CLIP (EmoCLIP-style), EXPR
};

struct TaskConfig {
  Task task = Task::kVA;
  HeadKind head_kind = HeadKind::kModule;
  // Relative to the set folder: the TorchScript head (kModule), or the float [C, D] tensor file
  // with one embedding row per class (kTextEmbeddings); empty for kColumns.
  std::string head_file;
  std::string output_key;  // kModule: non-empty for a multi-task head returning a dict
  // kColumns: encoder output columns [first, end) are the task's scores per frame.
  long columns_first = 0;
  long columns_end = 0;
  bool uses_columns() const { return head_kind == HeadKind::kColumns; }
  // kTextEmbeddings: the cosine similarities are multiplied by this before the activation
  // (CLIP's learned temperature is 100).
  float logit_scale = 100.0f;
  Activation activation = Activation::kNone;
  // EXPR: for each ABAW class, its index in the head output, or -1 when not predicted.
  std::vector<int> class_map;
  int head_outputs = 0;           // K: the head's output width
  std::vector<float> thresholds;  // AU: 12 thresholds
  int mean_filter = 0;
  int mode_filter = 0;  // EXPR only
};

// How a task's scores are made, for messages and `info`: the head file (with "['key']" for a
// dict head), "encoder columns A..B-1" or "text embeddings F (logit scale S)".
std::string head_description(const TaskConfig& config);

// A parsed and validated manifest.
struct Manifest {
  std::filesystem::path folder;
  std::string name;
  std::string description;
  EncoderConfig encoder;
  SequenceConfig sequence;
  std::map<Task, TaskConfig> tasks;
  // How `run --videos` finds and cuts faces for this set ("faces": detector, style, size, margin).
  FacePipelineSpec faces;

  // Absolute path of a file named in the manifest.
  std::filesystem::path file(const std::string& relative) const { return folder / relative; }
};

// Reads `<folder>/manifest.json`, validates every key and value, and checks that the files it
// names exist. Throws Error(kModel) naming the manifest and the offending key. `patch` names a
// JSON fragment merged into the manifest first (RFC 7396 merge patch), e.g. the output of `tune`.
Manifest load_manifest(const std::filesystem::path& folder,
                       const std::optional<std::filesystem::path>& patch = std::nullopt);

// Parses manifest text (for tests and fuzzing); `origin` names it in errors. Files are not checked.
Manifest parse_manifest(const std::string& json_text, const std::filesystem::path& folder, const std::string& origin);

// Checks a window/stride/merge combination; throws Error(`kind`) explaining it: kModel when
// the values come from a manifest, kUsage when from --window/--stride.
void validate_sequence(const SequenceConfig& sequence, const std::string& origin, ErrorKind kind);

}  // namespace abaw
