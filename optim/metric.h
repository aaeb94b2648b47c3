// Which way a watched metric improves, shared by ReduceLROnPlateau (optim/scheduler.h) and
// EarlyStopping (optim/early_stopping.h): Min for a loss, Max for an accuracy.
#pragma once

#include <cstdint>
#include <string>

#include "core/error.h"

namespace nn {

enum class MetricMode : uint8_t { Min, Max };

inline const char* metric_mode_name(MetricMode m) { return m == MetricMode::Min ? "min" : "max"; }

// "min" or "max"; ValueError otherwise.
inline MetricMode parse_metric_mode(const std::string& name) {
  if (name == "min") return MetricMode::Min;
  if (name == "max") return MetricMode::Max;
  NN_THROW(ValueError, "parse_metric_mode: unknown mode '", name, "', expected min or max");
}

}  // namespace nn
