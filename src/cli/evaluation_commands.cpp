// `eval`, `check` and `tune`: the validation side of the tool, reading what `run` writes.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "abaw/error.hpp"
#include "abaw/manifest.hpp"
#include "abaw/metrics.hpp"
#include "abaw/submission.hpp"
#include "abaw/tuning.hpp"
#include "abaw/writers.hpp"
#include "cli/commands.hpp"

namespace abaw::cli {
namespace {

const std::vector<std::string> kTaskNames{"va", "expr", "au", "VA", "EXPR", "AU"};

Task task_option(const std::string& text) { return *parse_task(text); }

}  // namespace

Action add_eval_command(CLI::App& app) {
  struct Options {
    std::string task, predictions, annotations, json;
    bool allow_missing = false;
    std::optional<double> min_score;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("eval", "Score predictions against annotations with the ABAW metrics");
  cmd->add_option("--task", o->task, "va, expr or au")->required()->check(CLI::IsMember(kTaskNames));
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
  return [o]() -> int {
    const Task task = task_option(o->task);
    const Evaluation evaluation = evaluate(read_predictions(o->predictions, task), o->annotations, o->allow_missing);
    std::fputs(format_evaluation(evaluation).c_str(), stdout);
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
  cmd->add_option("--task", o->task, "va, expr or au")->required()->check(CLI::IsMember(kTaskNames));
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
  cmd->add_option("--task", o->task, "va, expr or au")->required()->check(CLI::IsMember(kTaskNames));
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
    TaskConfig current;
    current.task = task;
    current.thresholds.assign(12, 0.5f);
    current.class_map = {0, 1, 2, 3, 4, 5, 6, 7};
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

}  // namespace abaw::cli
