// optim/ over a training run: learning-rate schedules against hand-computed sequences, their
// state round trips, early stopping restoring the best weights, training checkpoints (resume
// equals the uninterrupted run exactly; truncated, corrupted and mismatched files give
// nn::Error), and each optimizer fitting y = 3x - 1. Float64 on the CPU.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include "graph/functions.h"
#include "kernels/ops.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/sequential.h"
#include "optim/adam.h"
#include "optim/checkpoint.h"
#include "optim/early_stopping.h"
#include "optim/rmsprop.h"
#include "optim/scheduler.h"
#include "optim/sgd.h"
#include "tests/test_util.h"

namespace nn {
namespace {

using ::nn::test::message_of;

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using Vec = std::vector<double>;

Variable param(const Vec& v) {
  return Variable(from_vector(v, {int64_t(v.size())}, {Dtype::Float64}), true);
}

// ---- schedules -------------------------------------------------------------------------------

// lr after construction, then after each of steps() - 1 calls of step().
Vec lr_sequence(LRScheduler& s, int steps) {
  Vec out{s.optimizer().lr()};
  for (int i = 1; i < steps; ++i) {
    s.step();
    out.push_back(s.optimizer().lr());
    EXPECT_EQ(s.last_lr()[0], s.optimizer().lr());
    EXPECT_EQ(s.last_epoch(), i);
  }
  return out;
}

void expect_seq(const Vec& got, const Vec& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-15) << "epoch " << i;
}

TEST(Scheduler, StepLR) {
  Variable p = param({1.0});
  SGD opt({p}, 0.1);
  StepLR s(opt, 2, 0.5);
  expect_seq(lr_sequence(s, 6), {0.1, 0.1, 0.05, 0.05, 0.025, 0.025});
  EXPECT_THROW(StepLR(opt, 0), ValueError);
}

TEST(Scheduler, StepLRKeepsEachGroupsBase) {
  Variable a = param({1.0}), b = param({1.0});
  SGD opt(std::vector<ParamGroup>{{.params = {a}}, {.params = {b}, .lr = 1.0}}, {.lr = 0.1});
  StepLR s(opt, 1, 0.1);
  s.step();
  s.step();
  EXPECT_NEAR(opt.group_lr(0), 0.001, 1e-18);
  EXPECT_NEAR(opt.group_lr(1), 0.01, 1e-17);
  EXPECT_EQ(s.base_lrs(), Vec({0.1, 1.0}));
}

TEST(Scheduler, ExponentialLR) {
  Variable p = param({1.0});
  SGD opt({p}, 0.1);
  ExponentialLR s(opt, 0.9);
  expect_seq(lr_sequence(s, 4), {0.1, 0.09, 0.081, 0.0729});
  EXPECT_THROW(ExponentialLR(opt, -1.0), ValueError);
}

TEST(Scheduler, CosineWarmup) {
  Variable p = param({1.0});
  SGD opt({p}, 0.1);
  CosineWarmupLR s(opt, /*warmup=*/2, /*total=*/6, /*min_lr=*/0.01);
  // warm-up 0, 0.05; cosine from 0.1 at t = 2 to 0.01 at t = 6: 0.01 + 0.09 (1 + cos(pi k/4)) / 2
  expect_seq(lr_sequence(s, 9),
             {0.0, 0.05, 0.1, 0.0868198051533946, 0.055, 0.0231801948466054, 0.01, 0.01, 0.01});
  Variable q = param({1.0});
  SGD opt2({q}, 0.1);
  CosineWarmupLR s2(opt2, 4, 10, 0.0, /*start_factor=*/0.2);
  expect_seq(lr_sequence(s2, 3), {0.02, 0.04, 0.06});
  Variable r = param({1.0});
  SGD opt3({r}, 0.1);
  CosineWarmupLR s3(opt3, 0, 2);  // no warm-up: cosine from the base rate
  expect_seq(lr_sequence(s3, 4), {0.1, 0.05, 0.0, 0.0});
  EXPECT_THROW(CosineWarmupLR(opt3, 5, 4), ValueError);
  EXPECT_THROW(CosineWarmupLR(opt3, 1, 4, -1.0), ValueError);
}

TEST(Scheduler, ReduceLROnPlateauPatienceCooldownThreshold) {
  Variable p = param({1.0});
  SGD opt({p}, 1.0);
  ReduceLROnPlateau s(opt, {.factor = 0.5, .patience = 2, .threshold = 0.1, .cooldown = 1});
  struct Epoch {
    double metric, lr;
    int64_t bad, cooldown;
  };
  // Improvement means metric < best * 0.9.
  const std::vector<Epoch> epochs = {
      {10.0, 1.0, 0, 0},                    // best 10
      {9.5, 1.0, 1, 0},                     // not below 9
      {9.2, 1.0, 2, 0},  {9.1, 0.5, 0, 1},  // 3 bad epochs > patience 2: halve, cool down for 1
      {9.05, 0.5, 0, 0},                    // bad, but ignored in cooldown
      {9.0, 0.5, 1, 0},                     // not below 9
      {8.0, 0.5, 0, 0},                     // best 8
      {8.0, 0.5, 1, 0},  {8.0, 0.5, 2, 0}, {8.0, 0.25, 0, 1},
  };
  for (size_t i = 0; i < epochs.size(); ++i) {
    s.step(epochs[i].metric);
    EXPECT_EQ(opt.lr(), epochs[i].lr) << "epoch " << i;
    EXPECT_EQ(s.num_bad_epochs(), epochs[i].bad) << "epoch " << i;
    EXPECT_EQ(s.cooldown_counter(), epochs[i].cooldown) << "epoch " << i;
  }
  EXPECT_EQ(s.best(), 8.0);
  EXPECT_EQ(s.last_epoch(), 10);
}

TEST(Scheduler, ReduceLROnPlateauMaxAbsAndMinLr) {
  Variable p = param({1.0});
  SGD opt({p}, 0.1);
  ReduceLROnPlateau s(opt, {.mode = MetricMode::Max,
                            .factor = 0.1,
                            .patience = 0,
                            .threshold = 0.5,
                            .threshold_mode = ThresholdMode::Abs,
                            .min_lr = 0.05});
  s.step(1.0);  // best 1
  EXPECT_EQ(opt.lr(), 0.1);
  s.step(1.4);  // not above 1.5: reduce, but not below min_lr
  EXPECT_EQ(opt.lr(), 0.05);
  s.step(1.6);  // above 1.5
  EXPECT_EQ(s.best(), 1.6);
  s.step(std::nan(""));  // NaN never improves
  EXPECT_EQ(opt.lr(), 0.05);
  EXPECT_THROW(ReduceLROnPlateau(opt, {.factor = 1.0}), ValueError);
  EXPECT_THROW(ReduceLROnPlateau(opt, {.patience = -1}), ValueError);
}

TEST(Scheduler, StateRoundTrip) {
  Variable p = param({1.0});
  SGD opt({p}, 0.1, 0.9);
  StepLR s(opt, 2, 0.5);
  for (int i = 0; i < 3; ++i) s.step();
  const auto state = s.state_dict();
  const auto opt_state = opt.state_dict();

  Variable q = param({1.0});
  SGD opt2({q}, 0.1, 0.9);
  StepLR s2(opt2, 2, 0.5);
  opt2.load_state_dict(opt_state);
  s2.load_state_dict(state);
  EXPECT_EQ(s2.last_epoch(), 3);
  EXPECT_EQ(opt2.lr(), opt.lr());
  s.step();
  s2.step();
  EXPECT_EQ(opt2.lr(), opt.lr());
  EXPECT_EQ(opt2.lr(), 0.025);

  ExponentialLR other(opt2, 0.5);
  EXPECT_THAT(message_of<ValueError>([&] { other.load_state_dict(state); }), HasSubstr("StepLR"));

  ReduceLROnPlateau plateau(opt, {.patience = 1});
  plateau.step(3.0);
  plateau.step(4.0);
  ReduceLROnPlateau plateau2(opt2, {.patience = 1});
  plateau2.load_state_dict(plateau.state_dict());
  EXPECT_EQ(plateau2.best(), 3.0);
  EXPECT_EQ(plateau2.num_bad_epochs(), 1);
  EXPECT_EQ(plateau2.last_epoch(), 2);
}

// ---- models for early stopping and checkpoints ------------------------------------------------

std::shared_ptr<Sequential> make_model(uint64_t seed, int64_t hidden = 4) {
  Generator gen(seed);
  const TensorOptions f64{Dtype::Float64};
  auto model = std::make_shared<Sequential>();
  model->push_back(std::make_shared<Linear>(3, hidden, true, Activation::Tanh, f64, &gen));
  model->push_back(std::make_shared<Linear>(hidden, 2, true, Activation::None, f64, &gen));
  return model;
}

std::vector<Vec> weights(const Module& m) {
  std::vector<Vec> out;
  for (const auto& [name, t] : m.state_dict()) out.push_back(t.to_vector<double>());
  return out;
}

void fill_weights(Module& m, double value) {
  for (auto& [name, t] : m.state_dict()) fill_(t, value);
}

TEST(EarlyStopping, StopsAfterPatienceAndRestoresTheBest) {
  auto model = make_model(1);
  EarlyStopping stop(/*patience=*/3, /*min_delta=*/0.01);
  const Vec metrics = {1.0, 0.8, 0.795, 0.9, 0.85};  // 0.795 is within min_delta of 0.8
  for (size_t epoch = 0; epoch < metrics.size(); ++epoch) {
    fill_weights(*model, double(epoch));  // "training" changes the weights every epoch
    const bool done = stop.step(metrics[epoch], *model);
    EXPECT_EQ(done, epoch == 4) << "epoch " << epoch;
  }
  EXPECT_EQ(stop.best(), 0.8);
  EXPECT_EQ(stop.best_epoch(), 1);
  EXPECT_EQ(stop.counter(), 3);
  EXPECT_TRUE(stop.should_stop());
  for (const Vec& w : weights(*model))
    for (double v : w) EXPECT_EQ(v, 1.0);  // epoch 1's weights are back

  fill_weights(*model, 7.0);
  stop.restore_best(*model);
  EXPECT_EQ(weights(*model)[0][0], 1.0);
}

TEST(EarlyStopping, MaxModeWithoutRestoring) {
  auto model = make_model(1);
  EarlyStopping stop(2, 0.0, MetricMode::Max, /*restore_best=*/false);
  EXPECT_FALSE(stop.step(0.5, *model));
  EXPECT_FALSE(stop.step(0.7, *model));
  fill_weights(*model, 3.0);
  EXPECT_FALSE(stop.step(0.7, *model));  // equal is no improvement
  EXPECT_TRUE(stop.step(0.6, *model));
  EXPECT_EQ(stop.best_epoch(), 1);
  EXPECT_EQ(weights(*model)[0][0], 3.0);  // left as it was
  EXPECT_THROW(stop.restore_best(*model), ValueError);
  EXPECT_THROW(EarlyStopping(-1), ValueError);
  EXPECT_THROW(EarlyStopping(1, -0.1), ValueError);
}

// ---- checkpoints -----------------------------------------------------------------------------

class Checkpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("nn_optim_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // One training step on fixed data, then a scheduler step.
  static void train_step(Module& model, Optimizer& opt, LRScheduler& sched) {
    static const Tensor x = from_vector(
        Vec{0.1, -0.4, 0.9, 1.2, 0.3, -0.8, -0.5, 0.7, 0.2, 0.6, -1.1, 0.4, 0.8, 0.05, -0.3},
        {5, 3});
    static const Tensor y = from_vector(Vec{1, 0, -1, 0.5, 0.2, 0.3, 0, 1, -0.5, -0.5}, {5, 2});
    opt.zero_grad();
    mse_loss(model(Variable(x)), Variable(y)).backward();
    opt.step();
    sched.step();
  }

  fs::path dir_;
};

TEST_F(Checkpoint, ResumeEqualsTheUninterruptedRun) {
  auto model = make_model(1);
  Adam opt(model->parameters(), {.lr = 0.05, .amsgrad = true});
  StepLR sched(opt, 2, 0.5);
  for (int i = 0; i < 3; ++i) train_step(*model, opt, sched);
  save_checkpoint(path("ck.safetensors"), *model, opt, &sched, 3, {{"note", "resume me"}});
  train_step(*model, opt, sched);

  auto model2 = make_model(2);  // other weights: all of them come from the file
  Adam opt2(model2->parameters(), {.lr = 0.05, .amsgrad = true});
  StepLR sched2(opt2, 2, 0.5);
  const CheckpointInfo info = load_checkpoint(path("ck.safetensors"), *model2, opt2, &sched2);
  EXPECT_EQ(info.epoch, 3);
  EXPECT_EQ(info.metadata, (std::map<std::string, std::string>{{"note", "resume me"}}));
  EXPECT_EQ(sched2.last_epoch(), 3);
  EXPECT_EQ(opt2.param_step(0), 3);
  train_step(*model2, opt2, sched2);
  EXPECT_EQ(weights(*model2), weights(*model));
  EXPECT_EQ(opt2.lr(), opt.lr());
}

TEST_F(Checkpoint, TruncatedOrCorruptedFilesAreErrors) {
  auto model = make_model(1);
  SGD opt(model->parameters(), {.lr = 0.1, .momentum = 0.9});
  StepLR sched(opt, 1);
  train_step(*model, opt, sched);
  save_checkpoint(path("ck.safetensors"), *model, opt, &sched, 1);
  std::ifstream in(path("ck.safetensors"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(bytes.size(), 64u);

  auto fresh = make_model(2);
  SGD opt2(fresh->parameters(), 0.1, 0.9);
  const auto before = weights(*fresh);
  auto expect_error = [&](const std::string& content, const std::string& what) {
    std::ofstream(path("bad.safetensors"), std::ios::binary | std::ios::trunc) << content;
    EXPECT_THROW(load_checkpoint(path("bad.safetensors"), *fresh, opt2), Error) << what;
    EXPECT_EQ(weights(*fresh), before) << what;
    EXPECT_EQ(opt2.step_count(), 0) << what;
  };
  for (size_t cut :
       {size_t(0), size_t(5), size_t(8), size_t(30), bytes.size() / 2, bytes.size() - 1})
    expect_error(bytes.substr(0, cut), "truncated at " + std::to_string(cut));
  std::string header_len = bytes;
  header_len[6] = '\x7f';  // a header length far past the end of the file
  expect_error(header_len, "header length");
  std::string json = bytes;
  json[8] = '[';  // the header is no longer a JSON object
  expect_error(json, "json");
  std::string longer = bytes + "trailing";
  expect_error(longer, "trailing bytes");
  EXPECT_THROW(load_checkpoint(path("missing.safetensors"), *fresh, opt2), IoError);
}

TEST_F(Checkpoint, AnotherModelOptimizerOrFileKindIsAClearError) {
  auto model = make_model(1);
  Adam opt(model->parameters());
  StepLR sched(opt, 1);
  train_step(*model, opt, sched);
  save_checkpoint(path("ck.safetensors"), *model, opt, nullptr, 1);

  auto wide = make_model(2, /*hidden=*/5);
  Adam opt_wide(wide->parameters());
  const auto before = weights(*wide);
  EXPECT_THAT(
      message_of<ValueError>([&] { load_checkpoint(path("ck.safetensors"), *wide, opt_wide); }),
      AllOf(HasSubstr("load_checkpoint"), HasSubstr("ck.safetensors")));
  EXPECT_EQ(weights(*wide), before);

  auto same = make_model(2);
  SGD sgd(same->parameters(), 0.1);
  const auto same_before = weights(*same);
  EXPECT_THAT(message_of<ValueError>([&] { load_checkpoint(path("ck.safetensors"), *same, sgd); }),
              HasSubstr("Adam"));
  EXPECT_EQ(weights(*same), same_before);

  Adam opt_same(same->parameters());
  StepLR sched_same(opt_same, 1);
  EXPECT_THAT(message_of<ValueError>(
                  [&] { load_checkpoint(path("ck.safetensors"), *same, opt_same, &sched_same); }),
              HasSubstr("no scheduler state"));
  EXPECT_NO_THROW(load_checkpoint(path("ck.safetensors"), *same, opt_same));
  EXPECT_EQ(weights(*same), weights(*model));

  model->save(path("weights.safetensors"));  // a model file, not a training checkpoint
  EXPECT_THAT(
      message_of<IoError>([&] { load_checkpoint(path("weights.safetensors"), *same, opt_same); }),
      HasSubstr("not a training checkpoint"));
  EXPECT_THROW(save_checkpoint(path("x.safetensors"), *model, opt, nullptr, -1), ValueError);
}

// ---- learning: y = 3x - 1 --------------------------------------------------------------------

struct FitCase {
  std::string name;
  std::function<std::unique_ptr<Optimizer>(std::vector<Variable>)> make;
  int steps;
};

class EachOptimizerFits : public ::testing::TestWithParam<FitCase> {};

TEST_P(EachOptimizerFits, ALine) {
  const FitCase& c = GetParam();
  Vec xs, ys;
  for (int i = 0; i < 16; ++i) {
    xs.push_back(-1.0 + 2.0 * i / 15.0);
    ys.push_back(3.0 * xs.back() - 1.0);
  }
  const Variable x(from_vector(xs, {16, 1}));
  const Variable y(from_vector(ys, {16, 1}));
  Generator gen(7);
  auto line =
      std::make_shared<Linear>(1, 1, true, Activation::None, TensorOptions{Dtype::Float64}, &gen);
  auto opt = c.make(line->parameters());
  CosineWarmupLR sched(*opt, c.steps / 20, c.steps);  // anneals to 0: no oscillation at the end
  for (int i = 0; i < c.steps; ++i) {
    opt->zero_grad();
    mse_loss((*line)(x), y).backward();
    opt->step();
    sched.step();
  }
  EXPECT_NEAR(line->weight().item(), 3.0, 1e-3) << c.name;
  EXPECT_NEAR(line->bias().item(), -1.0, 1e-3) << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Optim, EachOptimizerFits,
    ::testing::Values(
        FitCase{
            "sgd",
            [](auto p) { return std::make_unique<SGD>(p, SGDOptions{.lr = 0.1, .momentum = 0.9}); },
            400},
        FitCase{"adam", [](auto p) { return std::make_unique<Adam>(p, AdamOptions{.lr = 0.1}); },
                600},
        FitCase{"adamw",
                [](auto p) {
                  return std::make_unique<AdamW>(p, AdamWOptions{.lr = 0.1, .weight_decay = 1e-5});
                },
                600},
        FitCase{"rmsprop",
                [](auto p) { return std::make_unique<RMSprop>(p, RMSpropOptions{.lr = 0.05}); },
                600}),
    [](const auto& tp) { return tp.param.name; });

}  // namespace
}  // namespace nn
