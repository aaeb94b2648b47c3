// Early stopping on a validation metric, with the best weights kept and restored.
//
//   EarlyStopping stopper(/*patience=*/5, /*min_delta=*/1e-3);
//   for (int64_t epoch = 0; ; ++epoch) {
//     train_one_epoch();
//     if (stopper.step(validation_loss(), *model)) break;  // the best weights are back in model
//   }
//
// step() counts an epoch as an improvement when the metric beats the best so far by more than
// min_delta (Min: metric < best - min_delta; Max: metric > best + min_delta; a NaN metric never
// improves). An improvement records the epoch and, with restore_best, a copy of the model's
// state dict (on the model's device; the copy's buffers are reused by later improvements).
// Otherwise the counter of epochs without improvement grows, and step() returns true once it
// reaches `patience`: training should stop, and with restore_best the best weights have just
// been loaded back into the model. Epochs are counted from 0 (the first call of step()).
#pragma once

#include <cstdint>

#include "layers/module.h"
#include "optim/metric.h"

namespace nn {

class EarlyStopping {
 public:
  // patience >= 0 and min_delta >= 0 (ValueError otherwise).
  explicit EarlyStopping(int64_t patience = 10, double min_delta = 0.0,
                         MetricMode mode = MetricMode::Min, bool restore_best = true);

  // Records one epoch's metric; true when training should stop (see above).
  bool step(double metric, Module& model);
  // Loads the best epoch's weights into `model` (load_state_dict, strict). ValueError before
  // any improvement was recorded or when built with restore_best = false.
  void restore_best(Module& model) const;

  double best() const { return best_; }               // +-infinity before the first epoch
  int64_t best_epoch() const { return best_epoch_; }  // -1 before the first improvement
  int64_t counter() const { return counter_; }        // epochs since the last improvement
  int64_t epoch() const { return epoch_; }            // epochs recorded so far
  bool should_stop() const { return stop_; }
  const StateDict& best_state() const { return best_state_; }  // empty without restore_best

 private:
  int64_t patience_;
  double min_delta_;
  MetricMode mode_;
  bool restore_best_;
  double best_;
  int64_t best_epoch_ = -1;
  int64_t counter_ = 0;
  int64_t epoch_ = 0;
  bool stop_ = false;
  StateDict best_state_;
};

}  // namespace nn
