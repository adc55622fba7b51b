#include <cstdint>

#include "abaw/annotations.hpp"
#include "abaw/error.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& file = abaw::fuzz::write_scratch(data, size);
  try {
    abaw::AnnotationFile annotation = abaw::read_annotation_file(file);
    const int width = annotation.task == abaw::Task::kEXPR ? 1 : abaw::task_width(annotation.task);
    if (annotation.values.size() != static_cast<size_t>(annotation.frames) * width) __builtin_trap();
  } catch (const abaw::Error&) {
  }
  try {
    abaw::read_frame_counts(file);
  } catch (const abaw::Error&) {
  }
  try {
    abaw::read_video_list(file);
  } catch (const abaw::Error&) {
  }
  return 0;
}
