#include <cstdint>

#include "abaw/annotations.hpp"
#include "abaw/error.hpp"
#include "abaw/frame_names.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& file = abaw::fuzz::write_scratch(data, size);
  try {
    abaw::FrameList list = abaw::read_frame_list(file);
    for (const auto& row : list.rows) {
      if (row.frame < 1 || row.video.empty()) __builtin_trap();
    }
  } catch (const abaw::Error&) {
  }
  return 0;
}
