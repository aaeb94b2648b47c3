// Training checkpoints: a model, its optimizer, optionally its learning-rate scheduler, the epoch
// and user metadata in ONE safetensors file (core/safetensors.h), written atomically, so a run can
// stop and resume exactly where it was.
//
// Layout: tensors "model.<name>" (Module::state_dict) and "optim.<name>" (the optimizer's
// buffers); metadata "nn.format" (kCheckpointFormat), "nn.epoch", "nn.optim.<key>" (the
// optimizer's hyper-parameters and step counts), "nn.sched.<key>" (the scheduler's counters)
// and "user.<key>" for each of the caller's entries. Tensors on a GPU are copied to the host.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "layers/module.h"
#include "optim/optimizer.h"
#include "optim/scheduler.h"

namespace nn {

inline constexpr const char* kCheckpointFormat = "nn_cuda.training_checkpoint.v1";

struct CheckpointInfo {
  int64_t epoch = 0;
  std::map<std::string, std::string> metadata;  // the caller's entries, as given to save
};

// Throws ValueError for a negative epoch or user metadata the format refuses, IoError when the
// file cannot be written (`path` is then untouched).
void save_checkpoint(const std::string& path, const Module& model, const Optimizer& optimizer,
                     const Scheduler* scheduler, int64_t epoch,
                     const std::map<std::string, std::string>& metadata = {});

// Restores the model's tensors (in place, onto their devices), the optimizer's state and, when
// `scheduler` is given, the scheduler's; a scheduler state in the file is ignored when none is
// given. Errors, each naming the file: IoError for a missing, truncated or corrupt file or one
// that is not a training checkpoint; ValueError for a checkpoint of another model (listing the
// missing, unexpected and mis-shaped tensors), another optimizer or layout, another scheduler,
// or no scheduler state when one is given. Everything is checked before the model is touched;
// on error nothing is changed.
CheckpointInfo load_checkpoint(const std::string& path, Module& model, Optimizer& optimizer,
                               Scheduler* scheduler = nullptr);

}  // namespace nn
