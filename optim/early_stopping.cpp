#include "optim/early_stopping.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace nn {

EarlyStopping::EarlyStopping(int64_t patience, double min_delta, MetricMode mode, bool restore_best)
    : patience_(patience),
      min_delta_(min_delta),
      mode_(mode),
      restore_best_(restore_best),
      best_(mode == MetricMode::Min ? std::numeric_limits<double>::infinity()
                                    : -std::numeric_limits<double>::infinity()) {
  NN_CHECK(patience >= 0, ValueError, "EarlyStopping: patience is ", patience, ", expected >= 0");
  NN_CHECK(std::isfinite(min_delta) && min_delta >= 0.0, ValueError, "EarlyStopping: min_delta is ",
           min_delta, ", expected a finite value >= 0");
}

bool EarlyStopping::step(double metric, Module& model) {
  const int64_t epoch = epoch_++;
  const bool improved =
      mode_ == MetricMode::Min ? metric < best_ - min_delta_ : metric > best_ + min_delta_;
  if (improved) {
    best_ = metric;
    best_epoch_ = epoch;
    counter_ = 0;
    if (restore_best_) {
      StateDict now = model.state_dict();
      // Reuse the snapshot's buffers when the layout is unchanged: no allocation per epoch.
      bool same = now.size() == best_state_.size();
      for (size_t i = 0; same && i < now.size(); ++i) {
        const Tensor& a = now[i].second;
        const Tensor& b = best_state_[i].second;
        same = now[i].first == best_state_[i].first && a.shape() == b.shape() &&
               a.dtype() == b.dtype() && a.device() == b.device();
      }
      if (same) {
        for (size_t i = 0; i < now.size(); ++i) best_state_[i].second.copy_(now[i].second);
      } else {
        best_state_.clear();
        for (auto& [name, t] : now) best_state_.emplace_back(name, t.clone());
      }
    }
    return stop_ = false;
  }
  ++counter_;
  stop_ = counter_ >= patience_;
  if (stop_ && restore_best_ && best_epoch_ >= 0) restore_best(model);
  return stop_;
}

void EarlyStopping::restore_best(Module& model) const {
  NN_CHECK(restore_best_, ValueError,
           "EarlyStopping::restore_best: built with restore_best = false, no weights were kept");
  NN_CHECK(best_epoch_ >= 0, ValueError,
           "EarlyStopping::restore_best: no improvement was recorded yet, no weights were kept");
  model.load_state_dict(best_state_, /*strict=*/true);
}

}  // namespace nn
