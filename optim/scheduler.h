// Learning-rate schedules (torch.optim.lr_scheduler's behaviour). A scheduler sets the learning
// rate of each parameter group of one optimizer, which must outlive it. Host arithmetic only:
// nothing here touches the device.
//
// Epoch-based schedules (StepLR, ExponentialLR, CosineWarmupLR) are closed forms of the step
// count t (last_epoch()): construction applies t = 0, each step() advances t by one and sets every
// group's lr to lr_at(t, base_lr), where base_lr is the group's lr when the scheduler was built.
// Call step() after optimizer.step(), once per epoch (or per batch for a per-step schedule).
// ReduceLROnPlateau instead watches a metric: step(metric) once per epoch.
//
// State for checkpoints: state_dict() gives metadata strings ("scheduler" = name(),
// "last_epoch", "groups", "base_lr.<g>", "last_lr.<g>", plus each schedule's counters);
// load_state_dict restores the counters and base rates (the hyper-parameters come from the
// constructor), ValueError for another scheduler type or group count.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "optim/metric.h"
#include "optim/optimizer.h"

namespace nn {

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  virtual const char* name() const = 0;
  // The learning rate of each group as this scheduler last set it (or found it).
  const std::vector<double>& last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  Optimizer& optimizer() const { return *opt_; }

  virtual std::map<std::string, std::string> state_dict() const;
  virtual void load_state_dict(const std::map<std::string, std::string>& state);

 protected:
  explicit Scheduler(Optimizer& opt);
  // Sets group g's lr to lrs[g] and remembers them; ValueError when the optimizer's group count
  // changed since construction.
  void apply(const std::vector<double>& lrs);

  Optimizer* opt_;
  int64_t last_epoch_ = 0;
  std::vector<double> base_lrs_;
  std::vector<double> last_lr_;
};

// A schedule given by a closed form lr_at(t, base_lr).
class LRScheduler : public Scheduler {
 public:
  void step();
  // The learning rate at step t >= 0 for a group whose base rate is base_lr.
  virtual double lr_at(int64_t t, double base_lr) const = 0;

 protected:
  using Scheduler::Scheduler;
  void start();  // applies t = 0; each derived constructor calls it last
};

// lr = base_lr * gamma^floor(t / step_size). step_size >= 1, gamma >= 0 (ValueError otherwise).
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& opt, int64_t step_size, double gamma = 0.1);
  const char* name() const override { return "StepLR"; }
  double lr_at(int64_t t, double base_lr) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// lr = base_lr * gamma^t. gamma >= 0.
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& opt, double gamma);
  const char* name() const override { return "ExponentialLR"; }
  double lr_at(int64_t t, double base_lr) const override;

 private:
  double gamma_;
};

// Linear warm-up, then a half cosine down to min_lr (W = warmup_steps, T = total_steps):
//   t <  W:      lr = base_lr * (s + (1 - s) * t / W)                 s = start_factor
//   W <= t < T:  lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * (t - W) / (T - W))) / 2
//   t >= T:      lr = min_lr
// With s = 0 (the default) the first step has lr 0, as in the usual warm-up; W = 0 starts the
// cosine at base_lr. Requires 0 <= W <= T, T >= 1, min_lr >= 0, s in [0, 1] (ValueError).
class CosineWarmupLR : public LRScheduler {
 public:
  CosineWarmupLR(Optimizer& opt, int64_t warmup_steps, int64_t total_steps, double min_lr = 0.0,
                 double start_factor = 0.0);
  const char* name() const override { return "CosineWarmupLR"; }
  double lr_at(int64_t t, double base_lr) const override;

 private:
  int64_t warmup_;
  int64_t total_;
  double min_lr_;
  double start_factor_;
};

enum class ThresholdMode : uint8_t { Rel, Abs };

struct PlateauOptions {
  MetricMode mode = MetricMode::Min;
  double factor = 0.1;      // new lr = max(lr * factor, min_lr); in [0, 1)
  int64_t patience = 10;    // epochs without improvement tolerated before reducing
  double threshold = 1e-4;  // what counts as an improvement, relative or absolute
  ThresholdMode threshold_mode = ThresholdMode::Rel;
  int64_t cooldown = 0;  // epochs after a reduction during which bad epochs are not counted
  double min_lr = 0.0;   // for every group
  double eps = 1e-8;     // a reduction smaller than this is skipped
};

// Reduces every group's lr by `factor` when the metric has not improved for more than `patience`
// epochs, as torch.optim.lr_scheduler.ReduceLROnPlateau. Improvement over the best value so far:
//   Min, Rel: metric < best * (1 - threshold)    Min, Abs: metric < best - threshold
//   Max, Rel: metric > best * (1 + threshold)    Max, Abs: metric > best + threshold
// A NaN metric is never an improvement. ValueError for options out of range.
class ReduceLROnPlateau : public Scheduler {
 public:
  explicit ReduceLROnPlateau(Optimizer& opt, const PlateauOptions& options = {});
  const char* name() const override { return "ReduceLROnPlateau"; }
  void step(double metric);

  double best() const { return best_; }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }
  int64_t cooldown_counter() const { return cooldown_counter_; }
  bool in_cooldown() const { return cooldown_counter_ > 0; }

  std::map<std::string, std::string> state_dict() const override;
  void load_state_dict(const std::map<std::string, std::string>& state) override;

 private:
  bool is_better(double metric) const;

  PlateauOptions options_;
  double best_;
  int64_t num_bad_epochs_ = 0;
  int64_t cooldown_counter_ = 0;
};

}  // namespace nn
