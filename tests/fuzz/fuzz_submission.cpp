#include <cstdint>
#include <fstream>

#include "abaw/error.hpp"
#include "abaw/raw_scores.hpp"
#include "abaw/submission.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const abaw::FrameList list = [] {
    const auto path = std::filesystem::temp_directory_path() / ("abaw-fuzz-list-" + std::to_string(::getpid()));
    std::ofstream(path) << "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n"
                           "v/00001.jpg,\nv/00002.jpg,\nw_left/00001.jpg,\n";
    return abaw::read_frame_list(path);
  }();
  const auto& file = abaw::fuzz::write_scratch(data, size);
  for (abaw::Task task : abaw::all_tasks()) {
    try {
      abaw::check_submission(file, task, list);
    } catch (const abaw::Error&) {
    }
    try {
      abaw::read_predictions(file, task);
    } catch (const abaw::Error&) {
    }
    try {
      abaw::read_raw_scores(file, task);
    } catch (const abaw::Error&) {
    }
  }
  return 0;
}
