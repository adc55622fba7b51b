// Runs one abaw::pil_resize or abaw::torch_resize for tests/e2e/test_resample.py, which compares
// the result with Pillow and torch.
//
//   resample_check INPUT OUTPUT
//
// INPUT: one ASCII header line "LIB FILTER ANTIALIAS WIDTH HEIGHT CHANNELS OUT_WIDTH OUT_HEIGHT\n"
// (LIB pil | torch, FILTER bilinear | bicubic, ANTIALIAS 0 | 1, ignored for pil) followed by
// HEIGHT * WIDTH * CHANNELS bytes, interleaved rows (HWC).
// OUTPUT: pil: OUT_HEIGHT * OUT_WIDTH * CHANNELS bytes; torch: as many float32 values in the
// machine's byte order (little-endian on every platform the project runs on), HWC.
// Exit 0 on success, 2 with a message on bad input.
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "abaw/resample.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: resample_check INPUT OUTPUT\n";
    return 2;
  }
  try {
    std::ifstream in(argv[1], std::ios::binary);
    if (!in) throw std::runtime_error(std::string("cannot open ") + argv[1]);
    std::string header;
    std::getline(in, header);
    std::istringstream fields(header);
    std::string lib, filter_name;
    int antialias = 0, out_width = 0, out_height = 0;
    abaw::ImageU8 image;
    if (!(fields >> lib >> filter_name >> antialias >> image.width >> image.height >> image.channels >> out_width >>
          out_height)) {
      throw std::runtime_error("bad header: " + header);
    }
    if (lib != "pil" && lib != "torch") throw std::runtime_error("LIB must be pil or torch: " + lib);
    if (filter_name != "bilinear" && filter_name != "bicubic") {
      throw std::runtime_error("FILTER must be bilinear or bicubic: " + filter_name);
    }
    const abaw::ResampleFilter filter =
        filter_name == "bicubic" ? abaw::ResampleFilter::kBicubic : abaw::ResampleFilter::kBilinear;
    image.pixels.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());

    std::ofstream out(argv[2], std::ios::binary);
    if (!out) throw std::runtime_error(std::string("cannot create ") + argv[2]);
    if (lib == "pil") {
      const abaw::ImageU8 result = abaw::pil_resize(image, out_width, out_height, filter);
      out.write(reinterpret_cast<const char*>(result.pixels.data()),
                static_cast<std::streamsize>(result.pixels.size()));
    } else {
      const std::vector<float> result = abaw::torch_resize(image, out_width, out_height, filter, antialias != 0);
      out.write(reinterpret_cast<const char*>(result.data()),
                static_cast<std::streamsize>(result.size() * sizeof(float)));
    }
    if (!out.flush()) throw std::runtime_error(std::string("cannot write ") + argv[2]);
  } catch (const std::exception& e) {
    std::cerr << "resample_check: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
