// `eval`, `check`, `tune` and `compare`: the validation side of the tool, reading what `run` writes.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "abaw/compare.hpp"
#include "abaw/error.hpp"
#include "abaw/manifest.hpp"
#include "abaw/metrics.hpp"
#include "abaw/report.hpp"
#include "abaw/submission.hpp"
#include "abaw/tuning.hpp"
#include "abaw/writers.hpp"
#include "cli/commands.hpp"

namespace abaw::cli {
namespace {

Task task_option(const std::string& text) { return *parse_task(text); }

}  // namespace

Action add_eval_command(CLI::App& app) {
  struct Options {
    std::string task, predictions, annotations, json;
    bool allow_missing = false, per_video = false;
    std::optional<double> min_score;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("eval", "Score predictions against annotations with the ABAW metrics");
  cmd->add_option("--task", o->task, "va, expr or au")->required()->check(task_name_check());
  cmd->add_option("--predictions", o->predictions,
                  "A submission file, or a folder of per-video files (ABAW 1-3 format, or raw/<TASK> from run)")
      ->required()
      ->check(CLI::ExistingPath);
  cmd->add_option("--annotations", o->annotations, "Annotation folder (*_Challenge/Validation_Set)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--json", o->json, "Also write the scores as JSON to this file");
  cmd->add_flag("--allow-missing", o->allow_missing,
                "Score annotated frames that have a prediction and report how many had none (default: error)");
  cmd->add_option("--min-score", o->min_score, "Exit with code 7 when the score is below this (for CI gates)");
  cmd->add_flag("--per-video", o->per_video,
                "Also score each video alone (same metric, its frames only) and list them worst first "
                "(in --json too)");
  return [o]() -> int {
    const Task task = task_option(o->task);
    const Evaluation evaluation =
        evaluate(read_predictions(o->predictions, task), o->annotations, o->allow_missing, o->per_video);
    std::fputs(format_evaluation(evaluation).c_str(), stdout);
    if (o->per_video) std::fputs(format_per_video(evaluation).c_str(), stdout);
    if (!o->json.empty()) write_json(o->json, evaluation_to_json(evaluation));
    if (o->min_score && evaluation.score < *o->min_score) {
      spdlog::error("{} score {:.6f} is below --min-score {:.6f}", task_name(task), evaluation.score, *o->min_score);
      return kExitBelowMinScore;
    }
    return kExitOk;
  };
}

Action add_check_command(CLI::App& app) {
  struct Options {
    std::string task, submission, frame_list;
    int max_report = 10;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("check", "Validate a submission file against the official frame list");
  cmd->add_option("--task", o->task, "va, expr or au")->required()->check(task_name_check());
  cmd->add_option("--submission", o->submission, "The submission file to upload")->required()->check(CLI::ExistingFile);
  cmd->add_option("--frame-list", o->frame_list, "The official test example file of the task")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--max-report", o->max_report, "Problems listed per kind before only counting")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  return [o]() -> int {
    const Task task = task_option(o->task);
    const FrameList frame_list = read_frame_list(o->frame_list, task);
    const SubmissionCheck check = check_submission(o->submission, task, frame_list);
    for (const auto& warning : check.warnings) std::printf("warning: %s: %s\n", o->submission.c_str(), warning.c_str());
    std::map<std::string, long> per_kind;
    for (const auto& p : check.problems) {
      if (++per_kind[p.kind] > o->max_report) continue;
      const std::string& file = p.kind == "missing_row" ? o->frame_list : o->submission;
      std::printf("%s:%ld: %s: %s\n", file.c_str(), p.line, p.kind.c_str(), p.message.c_str());
    }
    for (const auto& [kind, count] : per_kind) {
      if (count > o->max_report) std::printf("... %ld more %s problems\n", count - o->max_report, kind.c_str());
    }
    if (check.valid()) {
      std::printf("OK: %s is a valid %s submission (%ld rows, matching %s)\n", o->submission.c_str(), task_name(task),
                  check.rows, o->frame_list.c_str());
      return kExitOk;
    }
    std::printf("INVALID: %zu problem(s) in %s:", check.problems.size(), o->submission.c_str());
    for (const auto& [kind, count] : per_kind) std::printf(" %s %ld", kind.c_str(), count);
    std::printf("\n");
    return kExitInput;
  };
}

Action add_tune_command(CLI::App& app) {
  struct Options {
    std::string task, raw, annotations, model_set, fragment;
    bool write = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "tune", "Tune AU thresholds / EXPR mode filter / VA mean filter on a validation run's raw scores");
  cmd->add_option("--task", o->task, "va, expr or au")->required()->check(task_name_check());
  cmd->add_option("--raw", o->raw, "raw/<TASK> folder of a validation run")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--annotations", o->annotations, "Annotation folder (*_Challenge/Validation_Set)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--model-set", o->model_set, "The set whose current settings are the starting point")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--fragment", o->fragment, "Write the manifest fragment here (for run --manifest-patch)");
  cmd->add_flag("--write", o->write, "Update --model-set's manifest.json with the tuned values");
  return [o]() -> int {
    const Task task = task_option(o->task);
    if (o->write && o->model_set.empty()) throw Error(ErrorKind::kUsage, "--write needs --model-set");
    TaskConfig current = plain_task_config(task);
    if (!o->model_set.empty()) {
      const Manifest manifest = load_manifest(o->model_set);
      auto it = manifest.tasks.find(task);
      if (it == manifest.tasks.end()) {
        throw Error(ErrorKind::kUsage, std::string("the model set has no ") + task_key(task) + " task", o->model_set);
      }
      current = it->second;
    }
    const TuningResult result = tune(current, o->raw, o->annotations);
    std::fputs(result.report.c_str(), stdout);
    std::printf("manifest fragment: %s\n", result.fragment.dump().c_str());
    if (!o->fragment.empty()) write_json(o->fragment, result.fragment);
    if (o->write) {
      const std::filesystem::path manifest_file = std::filesystem::path(o->model_set) / "manifest.json";
      nlohmann::json manifest;
      try {
        manifest = nlohmann::json::parse(std::ifstream(manifest_file));
      } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorKind::kModel, std::string("invalid JSON: ") + e.what(), manifest_file.string());
      }
      manifest.merge_patch(result.fragment);
      parse_manifest(manifest.dump(), o->model_set, manifest_file.string());  // never write an invalid manifest
      write_json(manifest_file, manifest);
      std::printf("updated %s\n", manifest_file.string().c_str());
    }
    return kExitOk;
  };
}

Action add_compare_command(CLI::App& app) {
  struct Options {
    std::string run_a, run_b, json;
    int worst = 5;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "compare",
      "How far two runs' predictions are apart (e.g. fp32 against bf16): raw-score differences, VA CCC "
      "between the runs and label agreement, on the frames both predicted");
  cmd->add_option("RUN_A", o->run_a, "A run output folder (raw/, submission/)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("RUN_B", o->run_b, "The run to compare it with")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--json", o->json, "Also write the comparison as JSON to this file");
  cmd->add_option("--worst", o->worst, "Videos listed per task, largest mean difference first")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  return [o]() -> int {
    const auto comparison = compare_runs(o->run_a, o->run_b, o->worst);
    std::fputs(format_comparison(comparison).c_str(), stdout);
    if (!o->json.empty()) write_json(o->json, comparison_to_json(comparison));
    return kExitOk;
  };
}

Action add_report_command(CLI::App& app) {
  struct Options {
    std::string run, output, crops;
    RowsArguments rows;
    int max_points = 2000, thumbnails = 8;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "report",
      "One self-contained HTML file showing a run: summary, scores against annotations (confusion matrix, "
      "videos worst first) and a timeline of every video's predictions");
  cmd->add_option("--run", o->run, "A run output folder (run.json, raw/)")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--annotations", o->rows.annotations,
                  "[TASK=]DIR: annotation folder to score and draw against (repeatable; the task from the files' "
                  "header when not given)");
  cmd->add_option("--crops", o->crops, "The crops the run read: a few thumbnails along each timeline")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--output", o->output, "The HTML file (default: <run>/report.html)");
  cmd->add_option("--max-points", o->max_points, "Bins per video timeline (longer videos are reduced)")
      ->check(CLI::Range(10, 1000000))
      ->capture_default_str();
  cmd->add_option("--thumbnails", o->thumbnails, "Thumbnails per video, with --crops")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  return [o]() -> int {
    RowsOptions rows;
    store_rows_options(o->rows, rows);
    ReportOptions options;
    options.run = o->run;
    options.annotations = rows.annotations;
    if (!o->crops.empty()) options.crops = o->crops;
    options.output =
        o->output.empty() ? std::filesystem::path(o->run) / "report.html" : std::filesystem::path(o->output);
    options.max_points = o->max_points;
    options.thumbnails = o->thumbnails;
    const ReportSummary summary = write_report(options);
    std::printf("report: %s (%ld videos, %ld tasks%s)\n", options.output.string().c_str(), summary.videos,
                summary.tasks, summary.scored ? ", scored" : "");
    return kExitOk;
  };
}

}  // namespace abaw::cli
