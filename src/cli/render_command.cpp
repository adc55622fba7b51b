// `render`: the overlay video of a run's predictions.
#include <cstdio>

#include "abaw/render.hpp"
#include "cli/commands.hpp"

namespace abaw::cli {

Action add_render_command(CLI::App& app) {
  auto options = std::make_shared<RenderOptions>();
  CLI::App* cmd = app.add_subcommand(
      "render", "Draw a run's predictions on a video: face box, expression, valence-arousal point, AU bars");
  cmd->add_option("--video", options->video, "The original video (its file name picks the run's raw scores)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--boxes", options->boxes, "crop's <video>.boxes.csv for it")->required()->check(CLI::ExistingFile);
  cmd->add_option("--run", options->run, "A run over the video's crops (run.json, raw/)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--output", options->output, "The overlay video: .mp4 (MPEG-4) or .avi (MJPEG)")->required();
  return [options]() -> int {
    const RenderResult result = render_overlay(*options);
    std::printf("overlay: %s (%ld frames at %.3f fps, %ld with predictions)\n", options->output.string().c_str(),
                result.frames, result.fps, result.predicted);
    return 0;
  };
}

}  // namespace abaw::cli
