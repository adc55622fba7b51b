# The plain-text modules: the core library's part that needs neither LibTorch nor OpenCV.
# Included by the top-level CMakeLists.txt (abaw_text) and by tests/fuzz (the libFuzzer build).
set(ABAW_TEXT_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/annotations.cpp
  ${CMAKE_CURRENT_LIST_DIR}/compare.cpp
  ${CMAKE_CURRENT_LIST_DIR}/error.cpp
  ${CMAKE_CURRENT_LIST_DIR}/frame_names.cpp
  ${CMAKE_CURRENT_LIST_DIR}/manifest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/merge.cpp
  ${CMAKE_CURRENT_LIST_DIR}/metrics.cpp
  ${CMAKE_CURRENT_LIST_DIR}/output_layout.cpp
  ${CMAKE_CURRENT_LIST_DIR}/postprocess.cpp
  ${CMAKE_CURRENT_LIST_DIR}/raw_scores.cpp
  ${CMAKE_CURRENT_LIST_DIR}/report.cpp
  ${CMAKE_CURRENT_LIST_DIR}/submission.cpp
  ${CMAKE_CURRENT_LIST_DIR}/tasks.cpp
  ${CMAKE_CURRENT_LIST_DIR}/tuning.cpp
  ${CMAKE_CURRENT_LIST_DIR}/video_index.cpp
  ${CMAKE_CURRENT_LIST_DIR}/writers.cpp)
