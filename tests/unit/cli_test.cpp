// Parser tests: the `run` options as a user types them, and the mistakes they make.
#include <gtest/gtest.h>

#include "abaw/error.hpp"
#include "abaw/face_crop.hpp"
#include "abaw/runtime.hpp"
#include "cli/commands.hpp"
#include "test_util.hpp"

namespace abaw {
namespace {

// Parses a command line (program name first) as main() would.
void parse_args(CLI::App& app, std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  app.parse(static_cast<int>(argv.size()), argv.data());
}

class RunParser : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "set");
    std::filesystem::create_directories(dir_ / "crops");
    testing::write_text(dir_ / "ann/v.txt",
                        "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26\n"
                        "0,0,0,0,0,0,0,0,0,0,0,0\n");
    testing::write_text(dir_ / "list.txt", "v1\nv2\n");
  }

  // Parses `run` with the required options plus `extra`.
  void parse(std::vector<std::string> extra) {
    std::vector<std::string> args{"abaw-infer",  "run",
                                  "--model-set", (dir_ / "set").string(),
                                  "--crops",     (dir_ / "crops").string(),
                                  "--output",    (dir_ / "out").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    parse_args(app_, args);
  }

  testing::ScratchDir dir_;
  CLI::App app_;
  RunOptions options_;
  cli::Action action_ = cli::add_run_command(app_, options_);
};

TEST_F(RunParser, Defaults) {
  parse({});
  EXPECT_EQ(options_.compute.device, "auto");
  EXPECT_EQ(options_.compute.batch_size, 32);
  EXPECT_FALSE(options_.compute.pack_batches);
  EXPECT_TRUE(options_.rows.tasks.empty());
  EXPECT_FALSE(options_.window.has_value());
  EXPECT_EQ(options_.features_in_memory_mib, 16);
}

TEST_F(RunParser, FeaturesInMemory) {
  parse({"--features-in-memory", "0"});
  EXPECT_EQ(options_.features_in_memory_mib, 0);
  EXPECT_THROW(parse({"--features-in-memory", "-1"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--features-in-memory", "lots"}), CLI::ValidationError);
}

TEST_F(RunParser, TasksFrameListsAnnotationsAndVideos) {
  parse({"--tasks",
         "VA,expr",
         "--frame-list",
         "va=/x/VA.txt",
         "--frame-list",
         "EXPR=/x/EXPR.txt",
         "--annotations",
         (dir_ / "ann").string(),
         "--only",
         "a,b",
         "--video-list",
         (dir_ / "list.txt").string(),
         "--window",
         "16",
         "--stride",
         "8",
         "--device",
         "cpu",
         "--batch-size",
         "4",
         "--pack-batches",
         "--threads",
         "2"});
  EXPECT_EQ(options_.rows.tasks, (std::vector<Task>{Task::kVA, Task::kEXPR}));
  EXPECT_EQ(options_.rows.frame_lists.at(Task::kVA), "/x/VA.txt");
  EXPECT_EQ(options_.rows.frame_lists.at(Task::kEXPR), "/x/EXPR.txt");
  EXPECT_EQ(options_.rows.annotations.at(Task::kAU), dir_ / "ann");  // task read from the headers
  EXPECT_EQ(options_.videos, (std::vector<std::string>{"a", "b", "v1", "v2"}));
  EXPECT_EQ(*options_.window, 16);
  EXPECT_EQ(*options_.stride, 8);
  EXPECT_EQ(options_.compute.batch_size, 4);
  EXPECT_TRUE(options_.compute.pack_batches);
}

TEST_F(RunParser, RejectsMistakes) {
  EXPECT_THROW(parse({"--tasks", "valence"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--frame-list", "/x/VA.txt"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--frame-list", "va=/x/a.txt", "--frame-list", "va=/x/b.txt"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--batch-size", "0"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--window", "-3"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--bogus"}), CLI::ParseError);
}

TEST_F(RunParser, RequiredOptionsAndExistingFolders) {
  EXPECT_THROW(parse_args(app_, {"abaw-infer", "run", "--crops", (dir_ / "crops").string()}), CLI::RequiredError);
  CLI::App other;
  RunOptions options;
  cli::add_run_command(other, options);
  EXPECT_THROW(parse_args(other, {"abaw-infer", "run", "--model-set", "/no/such/set", "--crops",
                                  (dir_ / "crops").string(), "--output", "/tmp/o"}),
               CLI::ValidationError);
}

TEST_F(RunParser, VideosInsteadOfCropsWithFaceOptions) {
  testing::write_text(dir_ / "clips/a.mp4", "not decoded while parsing");
  CLI::App app;
  RunOptions options;
  cli::add_run_command(app, options);
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"abaw-infer", "run", "--model-set", (dir_ / "set").string(), "--output",
                                  (dir_ / "out").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    parse_args(app, args);
  };
  run({"--videos", (dir_ / "clips").string(), (dir_ / "clips/a.mp4").string(), "--style", "aligned", "--size",
       "96", "--save-crops", (dir_ / "saved").string(), "--faces", "2", "--near-every", "3"});
  EXPECT_EQ(options.video_inputs.size(), 2u);
  EXPECT_EQ(options.faces.max_people, 2);
  EXPECT_EQ(options.faces.near_every, 3);
  EXPECT_EQ(options.faces.pipeline.style, CropStyle::kAligned);
  EXPECT_EQ(options.faces.pipeline.size, 96);
  EXPECT_FALSE(options.faces.pipeline.detector.has_value());  // unset: the manifest's, else tiny
  EXPECT_FALSE(options.faces.pipeline.margin.has_value());
  EXPECT_LT(options.faces.threads, 0);  // unset: as `crop --threads`, so both cut the same crops
  EXPECT_EQ(face_model_threads(options.faces), usable_cpu_count());  // several people
  options.faces.max_people = 1;
  EXPECT_EQ(face_model_threads(options.faces), 1);
  options.faces.threads = 0;
  EXPECT_EQ(face_model_threads(options.faces), usable_cpu_count());
  EXPECT_EQ(options.save_crops, dir_ / "saved");
  // Either input, never both or none; --save-crops only with videos; old `--videos a,b` names fail
  // with a hint to --only.
  EXPECT_THROW(run({"--videos", (dir_ / "clips").string(), "--crops", (dir_ / "crops").string()}),
               CLI::ValidationError);
  EXPECT_THROW(run({}), CLI::RequiredError);
  EXPECT_THROW(run({"--crops", (dir_ / "crops").string(), "--save-crops", "x"}), CLI::RequiresError);
  try {
    run({"--crops", (dir_ / "crops").string(), "--videos", "a,b"});
    FAIL() << "accepted";
  } catch (const CLI::ValidationError& e) {
    EXPECT_NE(std::string(e.what()).find("--only"), std::string::npos) << e.what();
  }
  EXPECT_THROW(run({"--videos", (dir_ / "clips").string(), "--detector", "mtcnn"}), CLI::ValidationError);
  EXPECT_THROW(run({"--videos", (dir_ / "clips").string(), "--faces", "0"}), CLI::ValidationError);
  EXPECT_THROW(run({"--videos", (dir_ / "clips").string(), "--faces", "17"}), CLI::ValidationError);
  EXPECT_THROW(run({"--videos", (dir_ / "clips").string(), "--near-every", "0"}), CLI::ValidationError);
}

// `merge` shares run's rows options: a repeated task is refused there too (it kept the last).
TEST(MergeParser, RejectsTwoFrameListsOrAnnotationFoldersForOneTask) {
  testing::ScratchDir dir;
  std::filesystem::create_directories(dir / "in");
  testing::write_text(dir / "ann/v.txt", "valence,arousal\n0,0\n");
  auto parse = [&](std::vector<std::string> extra) {
    CLI::App app;
    cli::add_merge_command(app);
    std::vector<std::string> args{"abaw-infer",          "merge",    "--inputs",
                                  (dir / "in").string(), "--output", (dir / "out").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    parse_args(app, args);
  };
  EXPECT_NO_THROW(parse({"--frame-list", "va=/x/a.txt", "--frame-list", "expr=/x/b.txt"}));
  EXPECT_THROW(parse({"--frame-list", "va=/x/a.txt", "--frame-list", "VA=/x/b.txt"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--annotations", (dir / "ann").string(), "--annotations", "va=" + (dir / "ann").string()}),
               CLI::ValidationError);
}

// `bench`: the stage is required, decode needs crops, precision and counts are validated.
class BenchParser : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "set");
    std::filesystem::create_directories(dir_ / "crops");
  }

  void parse(std::vector<std::string> extra) {
    std::vector<std::string> args{"abaw-infer", "bench", "--model-set", (dir_ / "set").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    parse_args(app_, args);
  }

  testing::ScratchDir dir_;
  CLI::App app_;
  BenchOptions options_;
  cli::Action action_ = cli::add_bench_command(app_, options_);
};

TEST_F(BenchParser, DecodeAndEncode) {
  parse({"--stage", "decode", "--crops", (dir_ / "crops").string(), "--decode-threads", "3", "--frames", "100",
         "--pack-batches"});
  EXPECT_EQ(options_.stage, BenchStage::kDecode);
  EXPECT_TRUE(options_.compute.pack_batches);
  EXPECT_EQ(options_.crops, dir_ / "crops");
  EXPECT_EQ(options_.compute.decode_threads, 3);
  EXPECT_EQ(options_.frames, 100);
  EXPECT_FALSE(options_.compute.precision.has_value());

  CLI::App other;
  BenchOptions encode;
  cli::add_bench_command(other, encode);
  parse_args(other, {"abaw-infer", "bench", "--model-set", (dir_ / "set").string(), "--stage", "encode", "--precision",
                     "bf16", "--batch-size", "8", "--threads", "2", "--preprocess-on", "device"});
  EXPECT_EQ(encode.stage, BenchStage::kEncode);
  EXPECT_EQ(*encode.compute.precision, Precision::kBf16);
  EXPECT_EQ(encode.compute.batch_size, 8);
  EXPECT_EQ(encode.compute.threads, 2);
  EXPECT_EQ(encode.frames, 0);  // 8 batches
  EXPECT_EQ(encode.compute.preprocess_on, PreprocessPlace::kDevice);
  EXPECT_EQ(options_.compute.preprocess_on, PreprocessPlace::kAuto);
}

TEST_F(BenchParser, RejectsMistakes) {
  EXPECT_THROW(parse({}), CLI::RequiredError);  // no --stage
  EXPECT_THROW(parse({"--stage", "heads"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--stage", "decode"}), CLI::ValidationError);  // no --crops
  EXPECT_THROW(parse({"--stage", "encode", "--precision", "fp8"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--stage", "encode", "--frames", "-1"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--stage", "encode", "--batch-size", "0"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--stage", "encode", "--preprocess-on", "gpu"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--stage", "Encode"}), CLI::ValidationError);  // names are exact
}

}  // namespace
}  // namespace abaw
