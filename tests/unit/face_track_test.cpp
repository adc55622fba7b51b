// Following faces through a video. `--near-every`: boxes interpolated between searched frames.
// `--faces N`: PeopleTracker keeps each person's identity through a swap of places, a person
// leaving and coming back, a false detection and a turned head, and the folders are named as
// Aff-Wild2 names them. Descriptors here are made-up points: people far apart (1.0), a person's
// frames close together, as face-api's descriptors of real faces are
// (tests/e2e/test_face_models.py); real clips run in tests/e2e/test_face_models.py (`crop`) and
// tests/e2e/test_default_set.py (`run --videos`).
#include "abaw/face_crop.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace abaw {
namespace {

// A 4-d descriptor: person `who` (0..3) at a unit corner, moved by `wobble` along another axis.
std::vector<float> descriptor(int who, float wobble = 0) {
  std::vector<float> d(4, 0.0f);
  d[static_cast<size_t>(who)] = 1.0f / std::sqrt(2.0f);  // two people: distance 1.0
  d[static_cast<size_t>((who + 1) % 4)] += wobble;
  return d;
}

const cv::Rect2f kLeft(50, 100, 200, 200), kRight(500, 100, 200, 200);

TEST(PeopleTracker, IdentitiesFollowTheFaceNotThePlaceWhenTwoPeopleSwap) {
  PeopleTracker tracker(2);
  long frame = 1;
  for (; frame <= 10; ++frame) {
    EXPECT_EQ(tracker.assign(frame, {{kLeft, 0.9f}, {kRight, 0.9f}}, {descriptor(0), descriptor(1)}),
              (std::vector<int>{0, 1}));
  }
  // From one frame to the next the two are in each other's place: the boxes say "same person",
  // the descriptors say otherwise, and the descriptors win.
  for (; frame <= 20; ++frame) {
    EXPECT_EQ(tracker.assign(frame, {{kLeft, 0.9f}, {kRight, 0.9f}}, {descriptor(1, 0.1f), descriptor(0, 0.1f)}),
              (std::vector<int>{1, 0}))
        << frame;
  }
  ASSERT_EQ(tracker.people().size(), 2u);
  EXPECT_TRUE(tracker.people()[0].confirmed());
  EXPECT_EQ(tracker.people()[0].frames, 20);
  EXPECT_FLOAT_EQ(static_cast<float>(tracker.people()[0].mean_centre_x()), (150.0f + 600.0f) / 2);
}

TEST(PeopleTracker, APersonWhoLeavesIsKnownAgainOnReturning) {
  PeopleTracker tracker(2);
  long frame = 1;
  for (; frame <= 10; ++frame) tracker.assign(frame, {{kLeft, 0.9f}, {kRight, 0.9f}}, {descriptor(0), descriptor(1)});
  for (; frame <= 40; ++frame) EXPECT_EQ(tracker.assign(frame, {{kLeft, 0.9f}}, {descriptor(0)}), std::vector<int>{0});
  // Back, somewhere else and looking a little different: no box to go by, the descriptor is near.
  const cv::Rect2f elsewhere(400, 20, 150, 150);
  EXPECT_EQ(tracker.assign(frame, {{elsewhere, 0.9f}, {kLeft, 0.9f}}, {descriptor(1, 0.3f), descriptor(0)}),
            (std::vector<int>{1, 0}));
  EXPECT_EQ(tracker.people().size(), 2u);
}

TEST(PeopleTracker, AFalseDetectionIsLetGoAndFreesItsPlace) {
  PeopleTracker tracker(2);
  long frame = 1;
  for (; frame <= 3; ++frame) tracker.assign(frame, {{kLeft, 0.9f}}, {descriptor(0)});
  // Two frames of something that is not the person, then nothing for longer than kTentativeGap.
  for (; frame <= 5; ++frame) {
    EXPECT_EQ(tracker.assign(frame, {{kLeft, 0.9f}, {kRight, 0.6f}}, {descriptor(0), descriptor(2)}),
              (std::vector<int>{0, 1}));
  }
  for (; frame <= 5 + PeopleTracker::kTentativeGap + 1; ++frame) tracker.assign(frame, {{kLeft, 0.9f}}, {descriptor(0)});
  // The second real person still gets a place: the false one's was given back.
  EXPECT_EQ(tracker.assign(frame, {{kLeft, 0.9f}, {kRight, 0.9f}}, {descriptor(0), descriptor(1)}),
            (std::vector<int>{0, 2}));
  ASSERT_EQ(tracker.people().size(), 3u);
  EXPECT_TRUE(tracker.people()[1].dropped);
  EXPECT_FALSE(tracker.people()[1].confirmed());
}

TEST(PeopleTracker, ANewFaceBeyondTheLimitIsNobodys) {
  PeopleTracker tracker(2);
  const cv::Rect2f middle(300, 100, 150, 150);
  for (long frame = 1; frame <= 10; ++frame) {
    tracker.assign(frame, {{kLeft, 0.9f}, {kRight, 0.9f}}, {descriptor(0), descriptor(1)});
  }
  EXPECT_EQ(tracker.assign(11, {{kLeft, 0.9f}, {middle, 0.9f}, {kRight, 0.9f}},
                           {descriptor(0), descriptor(2), descriptor(1)}),
            (std::vector<int>{0, -1, 1}));
  EXPECT_EQ(tracker.people().size(), 2u);
}

TEST(PeopleTracker, ATurnedHeadInPlaceStaysTheSamePerson) {
  PeopleTracker tracker(1);
  for (long frame = 1; frame <= 10; ++frame) tracker.assign(frame, {{kLeft, 0.9f}}, {descriptor(0)});
  // 0.7 from the person's mean: too far for a descriptor match alone, but the box is where the
  // person was a frame ago.
  const cv::Rect2f moved(kLeft.x + 10, kLeft.y, kLeft.width, kLeft.height);
  EXPECT_EQ(tracker.assign(11, {{moved, 0.9f}}, {descriptor(0, 0.7f)}), std::vector<int>{0});
  // The same face far from where the person was, long after: no box to go by, and it is nobody
  // new either, as the only place is taken by someone not in this frame: the loose match.
  EXPECT_EQ(tracker.assign(40, {{kRight, 0.9f}}, {descriptor(0, 0.7f)}), std::vector<int>{0});
  // Someone else entirely: nobody's.
  EXPECT_EQ(tracker.assign(41, {{kRight, 0.9f}}, {descriptor(3)}), std::vector<int>{-1});
}

TEST(PeopleTracker, CarriedFramesCountButLeaveTheDescriptorsAlone) {
  PeopleTracker tracker(2);
  tracker.assign(1, {{kLeft, 0.9f}, {kRight, 0.9f}}, {descriptor(0), descriptor(1)});
  const std::vector<float> mean = tracker.people()[0].descriptor;
  const cv::Rect2f moved(kLeft.x + 10, kLeft.y, kLeft.width, kLeft.height);
  for (long frame = 2; frame <= 6; ++frame) tracker.carry(frame, {{moved, 0.9f}, {kRight, 0.9f}}, {0, 1});
  const PeopleTracker::Person& left = tracker.people()[0];
  EXPECT_EQ(left.frames, 6);
  EXPECT_EQ(left.last_frame, 6);
  EXPECT_EQ(left.last_box, moved);
  EXPECT_TRUE(left.confirmed());
  EXPECT_EQ(left.descriptor, mean);
  EXPECT_EQ(left.described, 1);
  // The next descriptor weighs as the second of the mean, not the seventh.
  tracker.assign(7, {{moved, 0.9f}, {kRight, 0.9f}}, {descriptor(0, 0.2f), descriptor(1)});
  EXPECT_FLOAT_EQ(tracker.people()[0].descriptor[1], 0.1f);
  // A tentative person carried along is not let go while seen.
  PeopleTracker late(2);
  late.assign(1, {{kLeft, 0.9f}}, {descriptor(0)});
  for (long frame = 2; frame <= 2 + PeopleTracker::kTentativeGap + 5; ++frame) late.carry(frame, {{kLeft, 0.9f}}, {0});
  EXPECT_FALSE(late.people()[0].dropped);
}

TEST(ContinuedFaces, OnlyFacesThatPlainlyGoOn) {
  const FaceBox left{kLeft, 0.9f}, right{kRight, 0.9f};
  const FaceBox left_moved{cv::Rect2f(kLeft.x + 20, kLeft.y + 10, 200, 200), 0.9f};
  // Each face continues the one it overlaps, whatever the order.
  EXPECT_EQ(continued_faces({left, right}, {right, left_moved}), (std::vector<int>{1, 0}));
  // A new face continues nothing; the others still do. Nothing before: nothing continued.
  EXPECT_EQ(continued_faces({left}, {left_moved, right}), (std::vector<int>{0, -1}));
  EXPECT_EQ(continued_faces({}, {left}), (std::vector<int>{-1}));
  EXPECT_TRUE(continued_faces({left}, {}).empty());
  // Half a face's width away: too far (IoU 1/3) to be plainly the same face.
  const FaceBox jumped{cv::Rect2f(kLeft.x + 100, kLeft.y, 200, 200), 0.9f};
  EXPECT_EQ(continued_faces({left}, {jumped}), (std::vector<int>{-1}));
  // Two faces close together (crossing): neither continues anything, nor does one that
  // overlaps two faces of the frame before.
  const FaceBox beside{cv::Rect2f(kLeft.x + 150, kLeft.y, 200, 200), 0.9f};
  EXPECT_EQ(continued_faces({left, right}, {left, beside}), (std::vector<int>{-1, -1}));
  EXPECT_EQ(continued_faces({left, beside}, {left_moved}), (std::vector<int>{-1}));
}

TEST(ClosestFaces, MutualBestOverlapsOfAtLeastHalf) {
  const FaceBox left{kLeft, 0.9f}, right{kRight, 0.9f};
  const FaceBox left_moved{cv::Rect2f(kLeft.x + 20, kLeft.y + 10, 200, 200), 0.9f};
  const FaceBox beside{cv::Rect2f(kLeft.x + 150, kLeft.y, 200, 200), 0.9f};
  // A second box beside a face does not keep the face from its link, as it does for
  // continued_faces; the box beside links to nothing.
  EXPECT_EQ(closest_faces({left, right}, {left_moved, beside, right}), (std::vector<int>{0, -1, 1}));
  EXPECT_EQ(continued_faces({left, right}, {left_moved, beside, right}), (std::vector<int>{-1, -1, 1}));
  // Only the closer of two boxes on one earlier face links to it; under half: nothing.
  const FaceBox left_far{cv::Rect2f(kLeft.x + 60, kLeft.y, 200, 200), 0.9f};
  EXPECT_EQ(closest_faces({left}, {left_far, left_moved}), (std::vector<int>{-1, 0}));
  EXPECT_EQ(closest_faces({left}, {beside}), (std::vector<int>{-1}));
  EXPECT_EQ(closest_faces({}, {left}), (std::vector<int>{-1}));
}

TEST(InterpolateFaces, BoxesBetweenTheSameFaceOnBothSides) {
  const std::vector<FaceBox> a{{cv::Rect2f(100, 100, 50, 50), 0.9f}, {cv::Rect2f(400, 100, 60, 60), 0.8f}};
  // b: the first face moved by 8 pixels and grown by 4, the second gone, a new one elsewhere.
  const std::vector<FaceBox> b{{cv::Rect2f(700, 300, 50, 50), 0.95f}, {cv::Rect2f(108, 100, 54, 54), 0.7f}};
  const std::vector<FaceBox> between = interpolate_faces(a, b, 0.25f);
  ASSERT_EQ(between.size(), 1u);
  EXPECT_FLOAT_EQ(between[0].box.x, 102.0f);
  EXPECT_FLOAT_EQ(between[0].box.y, 100.0f);
  EXPECT_FLOAT_EQ(between[0].box.width, 51.0f);
  EXPECT_FLOAT_EQ(between[0].score, 0.7f);  // the lower of the two
  // A jump (less than half overlapping) or a face lost on one side: nothing to interpolate.
  EXPECT_TRUE(interpolate_faces(a, {{cv::Rect2f(140, 100, 50, 50), 0.9f}}, 0.5f).empty());
  EXPECT_TRUE(interpolate_faces(a, {}, 0.5f).empty());
}

TEST(PeopleTracker, FolderNamesAreAffWild2s) {
  EXPECT_EQ(person_folder_names("v", 0), std::vector<std::string>{"v"});
  EXPECT_EQ(person_folder_names("v", 1), std::vector<std::string>{"v"});
  EXPECT_EQ(person_folder_names("v", 2), (std::vector<std::string>{"v_left", "v_right"}));
  EXPECT_EQ(person_folder_names("v", 3), (std::vector<std::string>{"v_face1", "v_face2", "v_face3"}));
}

}  // namespace
}  // namespace abaw
