// How faces are found and cut from video frames, as plain data: what `crop` and `run --videos`
// are told on the command line, and what a model set may ask for in its manifest ("faces"), so
// that a set trained on aligned crops gets aligned crops without the user remembering a flag.
#pragma once

#include <filesystem>
#include <optional>

#include "abaw/enum_names.hpp"

namespace abaw {

// How a crop is cut from the frame.
enum class CropStyle {
  kBox,      // the square around the detector's box, with a margin (Aff-Wild2's `cropped`)
  kAligned,  // five landmarks mapped onto a fixed template (Aff-Wild2's `cropped_aligned`)
};

// The names `--style` and the manifest take.
inline constexpr EnumName<CropStyle> kCropStyleNames[] = {{"box", CropStyle::kBox}, {"aligned", CropStyle::kAligned}};

// Which face detector finds the faces.
enum class DetectorKind {
  kTiny,   // face-api's TinyFaceDetector, from the face-model folder (face_models.hpp)
  kHaar,   // OpenCV's frontal-face cascade (Debian's opencv-data)
  kYuNet,  // a YuNet ONNX file
};

inline constexpr EnumName<DetectorKind> kDetectorNames[] = {
    {"tiny", DetectorKind::kTiny}, {"haar", DetectorKind::kHaar}, {"yunet", DetectorKind::kYuNet}};

// A model set's face pipeline (manifest "faces"): every field optional; an unset one keeps the
// command's default, and an option given on the command line wins over the manifest.
struct FacePipelineSpec {
  std::optional<DetectorKind> detector;
  std::optional<CropStyle> style;
  std::optional<int> size;      // crop side in pixels
  std::optional<float> margin;  // as `crop --margin`
};

// How to find and cut faces, as `crop` and `run --videos` are told. `pipeline` holds what the
// command line set; make_face_finder takes the rest from a model set's manifest, then defaults.
struct FaceFinderOptions {
  FacePipelineSpec pipeline;  // unset: manifest, else tiny detector, box crops, 112 px, margin 0.1 (aligned: 0)
  std::filesystem::path face_models;  // faces.json folder: the tiny detector and the landmark net
  std::filesystem::path yunet_model;  // --detector yunet
  std::filesystem::path cascade;      // --detector haar; empty: Debian's frontal-face cascade
  int detect_size = 224;              // tiny: detector input side
  int min_face = 40;
  float score_threshold = -1.0f;  // < 0: the detector's default
  int detect_every = 10;
  int near_every = 2;  // `--near-every`: CropOptions::near_every
  int max_people = 1;  // `crop --faces N`: people followed per video
  int batch_frames = 8;
  // LibTorch threads of the face models (`crop --threads`, `run --face-threads`); 0: one per
  // usable CPU; unset (< 0): face_model_threads decides.
  int threads = -1;
  int jpeg_quality = 95;
};

}  // namespace abaw
