// ModelSet on TorchScript modules written by the test itself (Module::define), so each check
// knows exactly what the encoder and heads compute: shapes against the manifest, activations,
// EXPR's class map, dict heads, and the errors that name the file.
#include "abaw/model_set.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include <fstream>
#include <string>

#include "abaw/error.hpp"
#include "test_util.hpp"

namespace abaw {
namespace {

// Saves a TorchScript module whose forward is `source` (TorchScript, `self` first).
void save_module(const std::filesystem::path& file, const std::string& source) {
  torch::jit::Module module("TestModule");
  module.define(source);
  module.save(file.string());
}

class ModelSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // [N, 3, 8, 8] -> [N, 4]: the channel means, then the mean of the first channel's first row.
    save_module(dir_ / "encoder.pt", R"(
def forward(self, x):
    means = x.mean(dim=[2, 3])
    return torch.cat([means, x[:, 0, 0, :].mean(dim=1, keepdim=True)], dim=1)
)");
    save_module(dir_ / "head_va.pt", "def forward(self, x):\n    return x[:, :, 0:2] * 3.0\n");
    // 8 outputs: the 4 features, then the 4 features times 2.
    save_module(dir_ / "head_expr.pt", "def forward(self, x):\n    return torch.cat([x, x * 2.0], dim=2)\n");
    save_module(dir_ / "head_au.pt", R"(
def forward(self, x) -> Dict[str, Tensor]:
    return {"au": torch.cat([x, -x, x * 0.5], dim=2), "other": x}
)");
    manifest_ = nlohmann::json::parse(R"({
      "format": "abaw-infer-model-set", "version": 1, "name": "defined",
      "encoder": {"file": "encoder.pt", "feature_dim": 4,
                  "preprocess": {"resize": 8, "crop": 8, "interpolation": "bilinear", "color_order": "RGB"}},
      "sequence": {"window": 4},
      "tasks": {"va": {"head": "head_va.pt", "activation": "tanh"},
                "expr": {"head": "head_expr.pt", "class_map": [7, 6, 5, 4, 3, 2, 1, 0]},
                "au": {"head": {"file": "head_au.pt", "output": "au"}}}
    })");
  }

  ModelSet load() {
    return ModelSet(parse_manifest(manifest_.dump(), dir_.path(), (dir_ / "manifest.json").string()),
                    torch::Device(torch::kCPU));
  }

  // Expects `body` to throw Error(kModel) naming `file` with every fragment in its message.
  template <typename F>
  void expect_model_error(F body, const std::string& file, std::vector<std::string> fragments) {
    try {
      body();
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kModel) << e.what();
      EXPECT_EQ(e.path(), (dir_ / file).string()) << e.what();
      for (const auto& fragment : fragments) {
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      }
    }
  }

  testing::ScratchDir dir_;
  nlohmann::json manifest_;
};

TEST_F(ModelSetTest, EncodesFloatImagesAndCheckedShapes) {
  ModelSet models = load();
  torch::Tensor images = torch::rand({3, 3, 8, 8});
  torch::Tensor features = models.encode(images);
  ASSERT_EQ(features.sizes(), (std::vector<int64_t>{3, 4}));
  EXPECT_TRUE(torch::allclose(features.narrow(1, 0, 3), images.mean({2, 3})));
  EXPECT_TRUE(torch::allclose(features.select(1, 3), images.select(1, 0).select(1, 0).mean(1)));
}

// encoder.normalize "l2": every feature row divided by its norm (F.normalize), before the heads.
TEST_F(ModelSetTest, L2NormalisedFeatures) {
  manifest_["encoder"]["normalize"] = "l2";
  ModelSet models = load();
  torch::Tensor images = torch::rand({3, 3, 8, 8});
  images[1].zero_();  // a zero feature stays zero (the norm is clamped at 1e-12)
  const torch::Tensor raw = torch::cat({images.mean({2, 3}), images.select(1, 0).select(1, 0).mean(1, true)}, 1);
  const torch::Tensor features = models.encode(images);
  EXPECT_TRUE(torch::allclose(features, raw / raw.norm(2, 1, true).clamp_min(1e-12)));
  EXPECT_NEAR(features[0].norm().item<float>(), 1.0f, 1e-6);
  EXPECT_EQ(features[1].abs().sum().item<float>(), 0.0f);
  manifest_["encoder"]["normalize"] = "l1";
  EXPECT_THROW(load(), Error);
}

TEST_F(ModelSetTest, HeadsAreActivatedAndExprFollowsTheClassMap) {
  ModelSet models = load();
  torch::Tensor window = torch::randn({5, 4});
  auto scores = models.run_heads(window, {Task::kVA, Task::kEXPR, Task::kAU});
  EXPECT_TRUE(torch::allclose(scores.at(Task::kVA), torch::tanh(window.narrow(1, 0, 2) * 3.0)));
  // ABAW class c is head output class_map[c] = 7 - c, after the softmax over the head's outputs.
  const torch::Tensor softmax = torch::softmax(torch::cat({window, window * 2.0}, 1), 1);
  EXPECT_TRUE(torch::allclose(scores.at(Task::kEXPR), softmax.flip({1})));
  EXPECT_TRUE(torch::allclose(scores.at(Task::kAU), torch::sigmoid(torch::cat({window, -window, window * 0.5}, 1))));
}

TEST_F(ModelSetTest, ClassMapWithNullLeavesThatClassAtZero) {
  manifest_["tasks"]["expr"]["class_map"] = {0, 1, 2, 3, 4, 5, 6, nullptr};
  manifest_["tasks"]["expr"]["activation"] = "none";
  // 7 mapped outputs: the head must then give 7 (it gives 8), found by the shape check.
  expect_model_error(
      [&] {
        load().run_heads(torch::randn({2, 4}), {Task::kEXPR});
      },
      "head_expr.pt", {"head output is [1, 2, 8]", "expected [1, 2, 7]"});
  save_module(dir_ / "head_expr.pt", "def forward(self, x):\n    return torch.cat([x, x[:, :, 0:3]], dim=2)\n");
  torch::Tensor window = torch::randn({2, 4});
  torch::Tensor expr = load().run_heads(window, {Task::kEXPR}).at(Task::kEXPR);
  EXPECT_TRUE(torch::allclose(expr.narrow(1, 0, 4), window));
  EXPECT_TRUE(torch::equal(expr.select(1, 7), torch::zeros({2})));
}

TEST_F(ModelSetTest, ColumnsHeadsAreTheEncoderOutputsActivated) {
  manifest_["tasks"]["va"]["head"] = {{"columns", {2, 4}}};
  ModelSet models = load();
  torch::Tensor window = torch::randn({6, 4});
  EXPECT_TRUE(
      torch::allclose(models.run_heads(window, {Task::kVA}).at(Task::kVA), torch::tanh(window.narrow(1, 2, 2))));
  EXPECT_EQ(models.self_check(4)["heads"]["va"][0]["file"], "encoder columns 2..3");
}

// Writes `value` as Python's torch.save does (the zip archive format torch.load reads).
void save_pickled(const std::filesystem::path& file, const torch::IValue& value) {
  const std::vector<char> bytes = torch::pickle_save(value);
  std::ofstream(file, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST_F(ModelSetTest, TextEmbeddingsHeadsScoreScaledCosinesPerFrame) {
  const torch::Tensor rows = torch::randn({8, 4}) * 3.0;  // not unit length: the tool normalises them
  save_pickled(dir_ / "text.pt", rows);
  manifest_["tasks"]["expr"] = {{"head", {{"text_embeddings", "text.pt"}, {"logit_scale", 50}}},
                                {"class_map", {7, 6, 5, 4, 3, 2, 1, 0}}};
  ModelSet models = load();
  torch::Tensor window = torch::randn({5, 4});
  window[2].zero_();  // a zero feature (a frame without a crop) scores 0 against every class
  const auto unit = [](const torch::Tensor& t) { return t / t.norm(2, 1, true).clamp_min(1e-12); };
  const torch::Tensor expected = torch::softmax(torch::matmul(unit(window), unit(rows).t()) * 50.0, 1).flip({1});
  EXPECT_TRUE(torch::allclose(models.run_heads(window, {Task::kEXPR}).at(Task::kEXPR), expected, 1e-5, 1e-6));
  EXPECT_EQ(models.self_check(4)["heads"]["expr"][0]["file"], "text embeddings text.pt (logit scale 50)");
}

TEST_F(ModelSetTest, TextEmbeddingsFilesAreChecked) {
  manifest_["tasks"]["expr"] = {{"head", {{"text_embeddings", "text.pt"}}}};
  save_pickled(dir_ / "text.pt", torch::randn({7, 4}));
  expect_model_error([&] { load(); }, "text.pt", {"are [7, 4], expected [8, 4]", "one row per class"});
  save_pickled(dir_ / "text.pt", torch::randn({8, 5}));
  expect_model_error([&] { load(); }, "text.pt", {"are [8, 5], expected [8, 4]"});
  save_pickled(dir_ / "text.pt", torch::IValue(std::string("not a tensor")));
  expect_model_error([&] { load(); }, "text.pt", {"holds a String", "expected the [classes, feature_dim] tensor"});
  torch::Tensor zero_row = torch::randn({8, 4});
  zero_row[3].zero_();
  save_pickled(dir_ / "text.pt", zero_row);
  expect_model_error([&] { load(); }, "text.pt", {"row 3 is all zeros"});
  std::ofstream(dir_ / "text.pt") << "garbage";
  expect_model_error([&] { load(); }, "text.pt", {"cannot read the text embeddings"});
  // A classifier head gives no valence or arousal.
  manifest_["tasks"]["va"]["head"] = {{"text_embeddings", "text.pt"}};
  EXPECT_THROW(load(), Error);
}

TEST_F(ModelSetTest, MismatchesNameTheFileAndBothShapes) {
  manifest_["encoder"]["feature_dim"] = 5;
  expect_model_error(
      [&] {
        load().encode(torch::rand({2, 3, 8, 8}));
      },
      "encoder.pt", {"encoder output is [2, 4]", "[2, 5] (feature_dim)"});
  manifest_["encoder"]["feature_dim"] = 4;
  manifest_["tasks"]["au"]["head"]["output"] = "missing";
  expect_model_error(
      [&] {
        load().run_heads(torch::randn({3, 4}), {Task::kAU});
      },
      "head_au.pt", {"no 'missing'", "au, other"});
  manifest_["tasks"]["au"]["head"] = "head_va.pt";  // a plain head with 2 outputs where 12 belong
  expect_model_error(
      [&] {
        load().run_heads(torch::randn({3, 4}), {Task::kAU});
      },
      "head_va.pt", {"task au", "expected [1, 3, 12]"});
  save_module(dir_ / "broken.pt", "def forward(self, x):\n    return x.view(7, -1)\n");
  manifest_["tasks"]["au"]["head"] = "broken.pt";
  expect_model_error(
      [&] {
        load().run_heads(torch::randn({3, 4}), {Task::kAU});
      },
      "broken.pt", {"head failed on input [1, 3, 4]", "shape '[7, -1]' is invalid"});
  std::filesystem::resize_file(dir_ / "encoder.pt", 100);
  expect_model_error([&] { load(); }, "encoder.pt", {"cannot load TorchScript"});
}

TEST_F(ModelSetTest, SelfCheckReportsWhatEveryModuleSaw) {
  const nlohmann::json report = load().self_check(4);
  EXPECT_EQ(report["encoder"]["input"], (std::vector<int64_t>{2, 3, 8, 8}));
  EXPECT_EQ(report["encoder"]["output"], (std::vector<int64_t>{2, 4}));
  // Two window lengths (4 and 4 / 2 + 1), so a head traced for one length fails here.
  ASSERT_EQ(report["heads"]["au"].size(), 2u);
  EXPECT_EQ(report["heads"]["au"][1]["input"], (std::vector<int64_t>{1, 3, 4}));
  EXPECT_EQ(report["heads"]["expr"][0]["output"], (std::vector<int64_t>{4, 8}));
}

}  // namespace
}  // namespace abaw
