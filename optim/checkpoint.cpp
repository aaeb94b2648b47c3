#include "optim/checkpoint.h"

#include <map>
#include <string_view>
#include <utility>

#include "core/error.h"
#include "core/safetensors.h"
#include "optim/state_text.h"

namespace nn {
namespace {

constexpr std::string_view kModel = "model.";
constexpr std::string_view kOptim = "optim.";
constexpr std::string_view kOptimMeta = "nn.optim.";
constexpr std::string_view kSchedMeta = "nn.sched.";
constexpr std::string_view kUserMeta = "user.";

bool starts_with(const std::string& s, std::string_view prefix) {
  return std::string_view(s).substr(0, prefix.size()) == prefix;
}

// Rethrows a state-dict error with the file named first.
template <class F>
void naming_file(const std::string& path, F&& f) {
  try {
    f();
  } catch (const ValueError& e) {
    NN_THROW(ValueError, "load_checkpoint: ", path, ": ", e.what());
  }
}

// The same names with the same shapes, in any order: what a strict load accepts.
bool same_layout(const StateDict& a, const StateDict& b) {
  if (a.size() != b.size()) return false;
  std::map<std::string, Shape> shapes;
  for (const auto& [name, t] : a) shapes[name] = t.shape();
  for (const auto& [name, t] : b) {
    auto it = shapes.find(name);
    if (it == shapes.end() || it->second != t.shape()) return false;
    shapes.erase(it);
  }
  return true;
}

}  // namespace

void save_checkpoint(const std::string& path, const Module& model, const Optimizer& optimizer,
                     const Scheduler* scheduler, int64_t epoch,
                     const std::map<std::string, std::string>& metadata) {
  NN_CHECK(epoch >= 0, ValueError, "save_checkpoint: epoch is ", epoch, ", expected >= 0");
  io::NamedTensors tensors;
  for (auto& [name, t] : model.state_dict()) tensors.emplace_back(std::string(kModel) + name, t);
  const OptimizerStateDict opt = optimizer.state_dict();
  for (const auto& [name, t] : opt.tensors) tensors.emplace_back(std::string(kOptim) + name, t);

  io::Metadata meta;
  meta["nn.format"] = kCheckpointFormat;
  meta["nn.epoch"] = detail::format_int(epoch);
  for (const auto& [k, v] : opt.metadata) meta[std::string(kOptimMeta) + k] = v;
  if (scheduler != nullptr)
    for (const auto& [k, v] : scheduler->state_dict()) meta[std::string(kSchedMeta) + k] = v;
  for (const auto& [k, v] : metadata) meta[std::string(kUserMeta) + k] = v;
  io::save_safetensors(path, tensors, meta);
}

CheckpointInfo load_checkpoint(const std::string& path, Module& model, Optimizer& optimizer,
                               Scheduler* scheduler) {
  io::SafetensorsFile file = io::load_safetensors(path);
  const io::Metadata& meta = file.metadata;
  auto format = meta.find("nn.format");
  NN_CHECK(format != meta.end(), IoError, "load_checkpoint: ", path,
           " is not a training checkpoint (its metadata has no nn.format)");
  NN_CHECK(format->second == kCheckpointFormat, IoError, "load_checkpoint: ", path, " has format '",
           format->second, "', expected '", kCheckpointFormat, "'");

  CheckpointInfo info;
  StateDict model_state;
  OptimizerStateDict opt_state;
  std::map<std::string, std::string> sched_state;
  for (auto& [name, t] : file.tensors) {
    if (starts_with(name, kModel)) {
      model_state.emplace_back(name.substr(kModel.size()), std::move(t));
    } else if (starts_with(name, kOptim)) {
      opt_state.tensors.emplace_back(name.substr(kOptim.size()), std::move(t));
    } else {
      NN_THROW(ValueError, "load_checkpoint: ", path, ": unexpected tensor '", name,
               "' (neither model. nor optim.)");
    }
  }
  for (const auto& [k, v] : meta) {
    if (starts_with(k, kOptimMeta))
      opt_state.metadata[k.substr(kOptimMeta.size())] = v;
    else if (starts_with(k, kSchedMeta))
      sched_state[k.substr(kSchedMeta.size())] = v;
    else if (starts_with(k, kUserMeta))
      info.metadata[k.substr(kUserMeta.size())] = v;
  }
  naming_file(path, [&] {
    info.epoch = detail::state_int(meta, "nn.epoch", "load_checkpoint");
    NN_CHECK(info.epoch >= 0, ValueError, "the epoch is ", info.epoch, ", expected >= 0");
    NN_CHECK(scheduler == nullptr || !sched_state.empty(), ValueError,
             "a scheduler was given but the checkpoint has no scheduler state");
  });

  // Check what can be checked without changing anything. A model that does not fit is reported
  // first, by its own load_state_dict (which checks everything before it copies anything).
  if (!same_layout(model.state_dict(), model_state)) {
    naming_file(path, [&] { model.load_state_dict(model_state, /*strict=*/true); });
  }
  naming_file(path, [&] { optimizer.check_state_dict(opt_state); });
  // The scheduler is loaded first: it is the one load that can be undone if the model's fails.
  std::map<std::string, std::string> sched_before;
  if (scheduler != nullptr) {
    sched_before = scheduler->state_dict();
    naming_file(path, [&] { scheduler->load_state_dict(sched_state); });
  }
  try {
    naming_file(path, [&] { model.load_state_dict(model_state, /*strict=*/true); });
  } catch (...) {
    if (scheduler != nullptr) scheduler->load_state_dict(sched_before);
    throw;
  }
  optimizer.load_state_dict(opt_state);
  return info;
}

}  // namespace nn
