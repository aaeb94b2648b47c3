#include "optim/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "core/error.h"
#include "optim/state_text.h"

namespace nn {

// ---- Scheduler ---------------------------------------------------------------------------------

Scheduler::Scheduler(Optimizer& opt) : opt_(&opt) {
  for (size_t g = 0; g < opt.num_groups(); ++g) base_lrs_.push_back(opt.group_lr(g));
  last_lr_ = base_lrs_;
}

void Scheduler::apply(const std::vector<double>& lrs) {
  NN_CHECK(lrs.size() == opt_->num_groups(), ValueError, name(), ": the optimizer has ",
           opt_->num_groups(), " parameter groups, the scheduler was built for ", lrs.size());
  for (size_t g = 0; g < lrs.size(); ++g) opt_->set_group_lr(g, lrs[g]);
  last_lr_ = lrs;
}

std::map<std::string, std::string> Scheduler::state_dict() const {
  std::map<std::string, std::string> m;
  m["scheduler"] = name();
  m["last_epoch"] = detail::format_int(last_epoch_);
  m["groups"] = detail::format_int(int64_t(base_lrs_.size()));
  for (size_t g = 0; g < base_lrs_.size(); ++g) {
    m["base_lr." + std::to_string(g)] = detail::format_double(base_lrs_[g]);
    m["last_lr." + std::to_string(g)] = detail::format_double(last_lr_[g]);
  }
  return m;
}

void Scheduler::load_state_dict(const std::map<std::string, std::string>& state) {
  const std::string who_text = std::string(name()) + ".load_state_dict";
  const char* who = who_text.c_str();
  const std::string& saved = detail::state_value(state, "scheduler", who);
  NN_CHECK(saved == name(), ValueError, who, ": the state is for ", saved, ", not ", name());
  const int64_t groups = detail::state_int(state, "groups", who);
  NN_CHECK(groups == int64_t(opt_->num_groups()), ValueError, who, ": the state has ", groups,
           " parameter groups, the optimizer ", opt_->num_groups());
  std::vector<double> base(static_cast<size_t>(groups)), last(static_cast<size_t>(groups));
  for (int64_t g = 0; g < groups; ++g) {
    base[g] = detail::state_double(state, "base_lr." + std::to_string(g), who);
    last[g] = detail::state_double(state, "last_lr." + std::to_string(g), who);
  }
  const int64_t epoch = detail::state_int(state, "last_epoch", who);
  NN_CHECK(epoch >= 0, ValueError, who, ": last_epoch is ", epoch, ", expected >= 0");
  last_epoch_ = epoch;
  base_lrs_ = std::move(base);
  last_lr_ = std::move(last);
}

// ---- closed-form schedules ---------------------------------------------------------------------

void LRScheduler::start() {
  std::vector<double> lrs(base_lrs_.size());
  for (size_t g = 0; g < lrs.size(); ++g) lrs[g] = lr_at(0, base_lrs_[g]);
  apply(lrs);
}

void LRScheduler::step() {
  std::vector<double> lrs(base_lrs_.size());
  for (size_t g = 0; g < lrs.size(); ++g) lrs[g] = lr_at(last_epoch_ + 1, base_lrs_[g]);
  apply(lrs);
  ++last_epoch_;
}

StepLR::StepLR(Optimizer& opt, int64_t step_size, double gamma)
    : LRScheduler(opt), step_size_(step_size), gamma_(gamma) {
  NN_CHECK(step_size >= 1, ValueError, "StepLR: step_size is ", step_size, ", expected >= 1");
  NN_CHECK(std::isfinite(gamma) && gamma >= 0.0, ValueError, "StepLR: gamma is ", gamma,
           ", expected a finite value >= 0");
  start();
}

double StepLR::lr_at(int64_t t, double base_lr) const {
  return base_lr * std::pow(gamma_, double(t / step_size_));
}

ExponentialLR::ExponentialLR(Optimizer& opt, double gamma) : LRScheduler(opt), gamma_(gamma) {
  NN_CHECK(std::isfinite(gamma) && gamma >= 0.0, ValueError, "ExponentialLR: gamma is ", gamma,
           ", expected a finite value >= 0");
  start();
}

double ExponentialLR::lr_at(int64_t t, double base_lr) const {
  return base_lr * std::pow(gamma_, double(t));
}

CosineWarmupLR::CosineWarmupLR(Optimizer& opt, int64_t warmup_steps, int64_t total_steps,
                               double min_lr, double start_factor)
    : LRScheduler(opt),
      warmup_(warmup_steps),
      total_(total_steps),
      min_lr_(min_lr),
      start_factor_(start_factor) {
  NN_CHECK(total_steps >= 1 && warmup_steps >= 0 && warmup_steps <= total_steps, ValueError,
           "CosineWarmupLR: warmup_steps ", warmup_steps, " and total_steps ", total_steps,
           ", expected 0 <= warmup_steps <= total_steps and total_steps >= 1");
  NN_CHECK(std::isfinite(min_lr) && min_lr >= 0.0, ValueError, "CosineWarmupLR: min_lr is ", min_lr,
           ", expected a finite value >= 0");
  NN_CHECK(start_factor >= 0.0 && start_factor <= 1.0, ValueError,
           "CosineWarmupLR: start_factor is ", start_factor, ", expected a value in [0, 1]");
  start();
}

double CosineWarmupLR::lr_at(int64_t t, double base_lr) const {
  if (t < warmup_)
    return base_lr * (start_factor_ + (1.0 - start_factor_) * double(t) / double(warmup_));
  if (t >= total_) return min_lr_;
  const double progress = double(t - warmup_) / double(total_ - warmup_);
  return min_lr_ + (base_lr - min_lr_) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

// ---- ReduceLROnPlateau -------------------------------------------------------------------------

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& opt, const PlateauOptions& options)
    : Scheduler(opt),
      options_(options),
      best_(options.mode == MetricMode::Min ? std::numeric_limits<double>::infinity()
                                            : -std::numeric_limits<double>::infinity()) {
  const PlateauOptions& o = options;
  NN_CHECK(o.factor >= 0.0 && o.factor < 1.0, ValueError, "ReduceLROnPlateau: factor is ", o.factor,
           ", expected a value in [0, 1)");
  NN_CHECK(o.patience >= 0, ValueError, "ReduceLROnPlateau: patience is ", o.patience,
           ", expected >= 0");
  NN_CHECK(o.cooldown >= 0, ValueError, "ReduceLROnPlateau: cooldown is ", o.cooldown,
           ", expected >= 0");
  NN_CHECK(std::isfinite(o.threshold) && o.threshold >= 0.0, ValueError,
           "ReduceLROnPlateau: threshold is ", o.threshold, ", expected a finite value >= 0");
  NN_CHECK(std::isfinite(o.min_lr) && o.min_lr >= 0.0, ValueError, "ReduceLROnPlateau: min_lr is ",
           o.min_lr, ", expected a finite value >= 0");
  NN_CHECK(std::isfinite(o.eps) && o.eps >= 0.0, ValueError, "ReduceLROnPlateau: eps is ", o.eps,
           ", expected a finite value >= 0");
}

bool ReduceLROnPlateau::is_better(double metric) const {
  const PlateauOptions& o = options_;
  const bool rel = o.threshold_mode == ThresholdMode::Rel;
  if (o.mode == MetricMode::Min)
    return rel ? metric < best_ * (1.0 - o.threshold) : metric < best_ - o.threshold;
  return rel ? metric > best_ * (1.0 + o.threshold) : metric > best_ + o.threshold;
}

void ReduceLROnPlateau::step(double metric) {
  ++last_epoch_;
  if (is_better(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad epochs in cooldown are ignored
  }
  std::vector<double> lrs(opt_->num_groups());
  for (size_t g = 0; g < lrs.size(); ++g) lrs[g] = opt_->group_lr(g);
  if (num_bad_epochs_ > options_.patience) {
    for (double& lr : lrs) {
      const double reduced = std::max(lr * options_.factor, options_.min_lr);
      if (lr - reduced > options_.eps) lr = reduced;
    }
    cooldown_counter_ = options_.cooldown;
    num_bad_epochs_ = 0;
  }
  for (size_t g = 0; g < lrs.size(); ++g) opt_->set_group_lr(g, lrs[g]);
  last_lr_ = lrs;
}

std::map<std::string, std::string> ReduceLROnPlateau::state_dict() const {
  std::map<std::string, std::string> m = Scheduler::state_dict();
  m["best"] = detail::format_double(best_);
  m["num_bad_epochs"] = detail::format_int(num_bad_epochs_);
  m["cooldown_counter"] = detail::format_int(cooldown_counter_);
  return m;
}

void ReduceLROnPlateau::load_state_dict(const std::map<std::string, std::string>& state) {
  const char* who = "ReduceLROnPlateau.load_state_dict";
  // Parse ours first so that a bad state changes nothing.
  const double best = detail::state_double(state, "best", who);
  const int64_t bad = detail::state_int(state, "num_bad_epochs", who);
  const int64_t cooldown = detail::state_int(state, "cooldown_counter", who);
  NN_CHECK(bad >= 0 && cooldown >= 0, ValueError, who, ": num_bad_epochs ", bad,
           " and cooldown_counter ", cooldown, ", expected >= 0");
  Scheduler::load_state_dict(state);
  best_ = best;
  num_bad_epochs_ = bad;
  cooldown_counter_ = cooldown;
}

}  // namespace nn
