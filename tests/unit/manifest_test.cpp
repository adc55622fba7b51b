#include "abaw/manifest.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "abaw/error.hpp"
#include "test_util.hpp"

namespace abaw {
namespace {

nlohmann::json valid_manifest() {
  return nlohmann::json::parse(R"({
    "format": "abaw-infer-model-set", "version": 1, "name": "t",
    "encoder": {"file": "encoder.pt", "feature_dim": 16,
                "preprocess": {"resize": 32, "interpolation": "bilinear", "crop": 28, "color_order": "RGB",
                               "scale": 0.00392156862745098, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}},
    "sequence": {"window": 8, "stride": 4, "merge": "mean", "missing_frames": "nearest_feature"},
    "tasks": {"va": {"head": {"file": "multi.pt", "output": "va"}},
              "expr": {"head": {"file": "multi.pt", "output": "expr"}, "class_map": [5,0,2,3,4,6,null,1],
                       "mode_filter": 40},
              "au": {"head": "au.pt", "threshold": [0.8,0.8,0.7,0.5,0.5,0.5,0.6,0.8,0.8,0.8,0.3,0.7],
                     "mean_filter": 11}}
  })");
}

Manifest parse(const nlohmann::json& j) { return parse_manifest(j.dump(), "/set", "/set/manifest.json"); }

// Expects parse() to fail with a model error whose message contains `fragment`.
void expect_rejected(const nlohmann::json& j, const std::string& fragment) {
  try {
    parse(j);
    FAIL() << "accepted: " << j.dump();
  } catch (const Error& e) {
    EXPECT_EQ(e.path(), "/set/manifest.json");
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Manifest, ParsesEveryField) {
  Manifest m = parse(valid_manifest());
  EXPECT_EQ(m.encoder.feature_dim, 16);
  EXPECT_EQ(m.encoder.preprocess.interpolation, Interpolation::kBilinear);
  EXPECT_EQ(m.encoder.preprocess.output_side(), 28);
  EXPECT_EQ(m.sequence.merge, Merge::kMean);
  EXPECT_EQ(m.sequence.missing_frames, MissingFrames::kNearestFeature);
  const TaskConfig& expr = m.tasks.at(Task::kEXPR);
  EXPECT_EQ(expr.head_file, "multi.pt");
  EXPECT_EQ(expr.output_key, "expr");
  EXPECT_EQ(expr.class_map, (std::vector<int>{5, 0, 2, 3, 4, 6, -1, 1}));
  EXPECT_EQ(expr.head_outputs, 7);
  EXPECT_EQ(expr.activation, Activation::kSoftmax);
  EXPECT_EQ(expr.mode_filter, 40);
  const TaskConfig& au = m.tasks.at(Task::kAU);
  EXPECT_FLOAT_EQ(au.thresholds[10], 0.3f);
  EXPECT_EQ(au.activation, Activation::kSigmoid);
  EXPECT_EQ(au.mean_filter, 11);
  EXPECT_EQ(m.tasks.at(Task::kVA).activation, Activation::kNone);
}

TEST(Manifest, DefaultsFollowTheDocumentation) {
  auto j = valid_manifest();
  j.erase("sequence");
  j["tasks"]["au"].erase("threshold");
  Manifest m = parse(j);
  EXPECT_EQ(m.sequence.window, 300);
  EXPECT_EQ(m.sequence.stride, 300);
  EXPECT_EQ(m.sequence.merge, Merge::kConcatenate);
  EXPECT_EQ(m.sequence.missing_frames, MissingFrames::kZeroFeature);
  EXPECT_EQ(m.tasks.at(Task::kAU).thresholds, std::vector<float>(12, 0.5f));
  EXPECT_EQ(m.encoder.precision, Precision::kFp32);
  EXPECT_EQ(m.encoder.memory_format, MemoryFormat::kContiguous);
}

TEST(Manifest, EncoderPrecisionAndMemoryFormat) {
  auto j = valid_manifest();
  j["encoder"]["precision"] = "bf16";
  j["encoder"]["memory_format"] = "channels_last";
  Manifest m = parse(j);
  EXPECT_EQ(m.encoder.precision, Precision::kBf16);
  EXPECT_EQ(m.encoder.memory_format, MemoryFormat::kChannelsLast);
  EXPECT_STREQ(name_of(kMemoryFormatNames, m.encoder.memory_format), "channels_last");
  j["encoder"]["memory_format"] = "nhwc";
  expect_rejected(j, "'encoder.memory_format' is 'nhwc'");
}

TEST(Manifest, FacePipeline) {
  auto j = valid_manifest();
  EXPECT_FALSE(parse(j).faces.style.has_value());  // unset: the command's defaults
  j["faces"] = {{"detector", "haar"}, {"style", "aligned"}, {"size", 224}, {"margin", 0.25}};
  const FacePipelineSpec faces = parse(j).faces;
  EXPECT_EQ(faces.detector, DetectorKind::kHaar);
  EXPECT_EQ(faces.style, CropStyle::kAligned);
  EXPECT_EQ(faces.size, 224);
  EXPECT_FLOAT_EQ(*faces.margin, 0.25f);
  j["faces"] = {{"style", "rotated"}};
  expect_rejected(j, "'faces.style' is 'rotated'");
  j["faces"] = {{"size", 8}};
  expect_rejected(j, "faces.size");
  j["faces"] = {{"margin", 4}};
  expect_rejected(j, "'faces.margin' must be from 0 to 3");
  j["faces"] = {{"detector", "tiny"}, {"crop", "box"}};
  expect_rejected(j, "'faces.crop' is not a known key");
}

TEST(Manifest, RejectsInvalidJsonAndUnknownKeys) {
  EXPECT_THROW(parse_manifest("{\"format\": ", "/set", "/set/manifest.json"), Error);
  // nlohmann reports a number too large for a double as out_of_range, not parse_error.
  EXPECT_THROW(
      parse_manifest("{\"format\": \"abaw-infer-model-set\", \"version\": 1e999}", "/set", "/set/manifest.json"),
      Error);
  auto j = valid_manifest();
  j["encoder"]["preprocess"]["interpolaton"] = "bicubic";
  expect_rejected(j, "'encoder.preprocess.interpolaton' is not a known key");
}

TEST(Manifest, RejectsBadValuesNamingTheKey) {
  auto j = valid_manifest();
  j["encoder"]["preprocess"]["interpolation"] = "lanczos";
  expect_rejected(j, "'encoder.preprocess.interpolation' is 'lanczos'");
  j = valid_manifest();
  j["encoder"]["preprocess"]["mean"] = {0.5, 0.5};
  expect_rejected(j, "'encoder.preprocess.mean' must be an array of 3 finite numbers");
  j = valid_manifest();
  j["tasks"]["expr"]["class_map"] = {0, 1, 2};
  expect_rejected(j, "class_map");
  j = valid_manifest();
  j["tasks"]["expr"]["class_map"] = {0, 0, 2, 3, 4, 5, 6, 7};
  expect_rejected(j, "twice");
  j = valid_manifest();
  j["tasks"]["au"]["threshold"] = {0.5, 0.5};
  expect_rejected(j, "'tasks.au.threshold' must be an array of 12 finite numbers");
  j = valid_manifest();
  j["tasks"]["va"]["mode_filter"] = 5;
  expect_rejected(j, "'tasks.va.mode_filter' is not a known key");
  j = valid_manifest();
  j["sequence"]["merge"] = "concatenate";
  expect_rejected(j, "stride = window");
  j = valid_manifest();
  j["tasks"] = nlohmann::json::object();
  expect_rejected(j, "at least one");
  j = valid_manifest();
  j["version"] = 2;
  expect_rejected(j, "'version' must be 1");
  j = valid_manifest();
  j["tasks"]["au"]["head"] = "multi.pt";
  expect_rejected(j, "both as a plain head and as a multi-task head");
  j = valid_manifest();
  j["encoder"]["preprocess"]["antialias"] = true;  // with OpenCV's bicubic
  expect_rejected(j, "'encoder.preprocess.antialias' applies to the torch_* interpolations only");
  j["encoder"]["preprocess"]["interpolation"] = "torch_bilinear";
  j["encoder"]["preprocess"]["antialias"] = "yes";
  expect_rejected(j, "'encoder.preprocess.antialias' must be true or false");
  j = valid_manifest();
  j["encoder"]["preprocess"]["interpolation"] = "pil_bicubic";
  j["encoder"]["preprocess"]["color_order"] = "GRAY";
  j["encoder"]["preprocess"]["mean"] = {0.5};
  j["encoder"]["preprocess"]["std"] = {0.5};
  expect_rejected(j, "is for RGB or BGR encoders");
}

TEST(Manifest, PillowAndTorchInterpolations) {
  auto j = valid_manifest();
  j["encoder"]["preprocess"]["interpolation"] = "pil_bicubic";
  EXPECT_EQ(parse(j).encoder.preprocess.interpolation, Interpolation::kPilBicubic);
  EXPECT_FALSE(parse(j).encoder.preprocess.antialias);
  j["encoder"]["preprocess"]["interpolation"] = "torch_bicubic";
  j["encoder"]["preprocess"]["antialias"] = true;
  EXPECT_EQ(parse(j).encoder.preprocess.interpolation, Interpolation::kTorchBicubic);
  EXPECT_TRUE(parse(j).encoder.preprocess.antialias);
}

// Values of the wrong JSON type or beyond the int/float fields they land in: each found or suggested
// by fuzz_manifest (a non-string description once escaped as nlohmann::type_error and aborted).
TEST(Manifest, RejectsWrongTypesAndOutOfRangeNumbers) {
  auto j = valid_manifest();
  j["description"] = 5;
  expect_rejected(j, "'description' must be a string");
  j = valid_manifest();
  j["description"] = "";
  EXPECT_EQ(parse(j).description, "");
  j = valid_manifest();
  j["encoder"]["feature_dim"] = 4294967312ull;  // 2^32 + 16: an int cast would read 16
  expect_rejected(j, "'encoder.feature_dim' must be an integer from 1 to");
  j = valid_manifest();
  j["encoder"]["feature_dim"] = 18446744073709551615ull;  // wraps to -1 as a long
  expect_rejected(j, "'encoder.feature_dim' must be an integer from 1 to");
  j = valid_manifest();
  j["encoder"]["feature_dim"] = 16.5;
  expect_rejected(j, "'encoder.feature_dim' must be an integer");
  j = valid_manifest();
  j["encoder"]["preprocess"]["resize"] = 100000;
  expect_rejected(j, "'encoder.preprocess.resize' must be an integer from 1 to 16384");
  j = valid_manifest();
  j["tasks"]["expr"]["class_map"] = {5, 0, 2, 3, 4, 6, 4294967297ull, 1};
  expect_rejected(j, "'tasks.expr.class_map' entries must be head output indices (0 to 65535) or null");
  j = valid_manifest();
  j["tasks"]["expr"]["class_map"] = {5, 0, 2, 3, 4, 6, "7", 1};
  expect_rejected(j, "'tasks.expr.class_map' entries must be head output indices (0 to 65535) or null");
  j = valid_manifest();
  j["encoder"]["preprocess"]["std"] = {0.25, 1e300, 0.25};  // a double, but inf as a float
  expect_rejected(j, "'encoder.preprocess.std' must be an array of 3 finite numbers");
  j = valid_manifest();
  j["encoder"]["preprocess"]["scale"] = -1e300;
  expect_rejected(j, "'encoder.preprocess.scale' must be a finite number");
  j = valid_manifest();
  j["tasks"]["au"]["threshold"] = 1e39;
  expect_rejected(j, "'tasks.au.threshold' must be a finite number");
  j = valid_manifest();
  j["tasks"]["au"]["threshold"] = 0.25;
  EXPECT_EQ(parse(j).tasks.at(Task::kAU).thresholds, std::vector<float>(12, 0.25f));
}

// Issue 21: values a manifest could hold but no model set means, refused at load as model
// errors (exit 4) rather than accepted or found per video.
TEST(Manifest, RejectsValuesOutOfTheirRange) {
  auto j = valid_manifest();
  j["tasks"]["au"]["threshold"] = 2.0;
  expect_rejected(j, "'tasks.au.threshold' for AU1 is 2, outside (0, 1)");
  j = valid_manifest();
  j["tasks"]["au"]["threshold"][4] = -1;
  expect_rejected(j, "'tasks.au.threshold' for AU7 is -1, outside (0, 1)");
  j = valid_manifest();
  j["tasks"]["au"]["threshold"] = 0.0;
  expect_rejected(j, "outside (0, 1)");
  j = valid_manifest();  // on logits (no sigmoid) any finite threshold means something
  j["tasks"]["au"]["activation"] = "none";
  j["tasks"]["au"]["threshold"] = -1.5;
  EXPECT_EQ(parse(j).tasks.at(Task::kAU).thresholds, std::vector<float>(12, -1.5f));
  j = valid_manifest();
  j["sequence"]["stride"] = 9;
  try {
    parse(j);
    FAIL() << "stride > window accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kModel) << e.what();
    EXPECT_NE(std::string(e.what()).find("stride 9 is larger than window 8"), std::string::npos) << e.what();
  }
}

// A per-frame model: the encoder outputs the task scores, a "columns" head selects them.
TEST(Manifest, ColumnsHeadsSelectEncoderOutputs) {
  auto j = valid_manifest();
  j["tasks"]["va"]["head"] = {{"columns", {14, 16}}};
  j["tasks"]["expr"]["head"] = {{"columns", {0, 6}}};  // class_map's largest index is 5: 6 columns
  j["tasks"]["expr"]["class_map"] = {5, 0, 2, 3, 4, 1, nullptr, nullptr};
  j["tasks"]["au"]["head"] = {{"columns", {2, 14}}};
  const Manifest m = parse(j);
  EXPECT_TRUE(m.tasks.at(Task::kVA).uses_columns());
  EXPECT_EQ(m.tasks.at(Task::kVA).columns_first, 14);
  EXPECT_EQ(m.tasks.at(Task::kVA).columns_end, 16);
  EXPECT_EQ(head_description(m.tasks.at(Task::kAU)), "encoder columns 2..13");
  EXPECT_EQ(head_description(parse(valid_manifest()).tasks.at(Task::kVA)), "multi.pt ['va']");
  j["tasks"]["va"]["head"] = {{"columns", {15, 17}}};
  expect_rejected(j, "'tasks.va.head.columns' ends at column 17, past the encoder's feature_dim 16");
  j["tasks"]["va"]["head"] = {{"columns", {10, 13}}};
  expect_rejected(j, "'tasks.va.head.columns' selects 3 columns; the task needs 2");
  j["tasks"]["va"]["head"] = {{"columns", {4, 4}}};
  expect_rejected(j, "end after first");
  j["tasks"]["va"]["head"] = {{"columns", {0, 2}}, {"file", "x.pt"}};
  expect_rejected(j, "'tasks.va.head.file' is not a known key");
}

TEST(Manifest, LoadChecksThatNamedFilesExist) {
  testing::ScratchDir dir;
  testing::write_text(dir / "manifest.json", valid_manifest().dump());
  testing::write_text(dir / "encoder.pt", "x");
  testing::write_text(dir / "multi.pt", "x");
  try {
    load_manifest(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kModel);
    EXPECT_NE(std::string(e.what()).find("'au.pt', which does not exist"), std::string::npos) << e.what();
  }
  testing::write_text(dir / "au.pt", "x");
  EXPECT_EQ(load_manifest(dir.path()).name, "t");
}

}  // namespace
}  // namespace abaw
