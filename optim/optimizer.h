// Optimizers: the base class shared by SGD, Adam, AdamW and RMSprop (optim/sgd.h, optim/adam.h,
// optim/rmsprop.h), torch.optim's design in C++.
//
// An optimizer holds parameter groups (leaf Variables plus per-group hyper-parameters) and, per
// parameter, its state buffers and step count. step() updates every parameter whose gradient is
// defined (the others are skipped, as in PyTorch) with ONE nn::optimizer_step call per group:
// one fused launch on CUDA, no host synchronisation, no device value read. State buffers are
// allocated on a parameter's first step (zeros, its shape, dtype and device) and kept, so
// steady-state steps allocate no device memory. The step counts are host integers. A parameter
// moved to another device or dtype after its state was made (Module::to) takes its state along
// on the next step.
//
// Errors: ValueError for bad hyper-parameters (named like PyTorch's), an empty parameter list,
// a parameter in two groups, a non-leaf parameter or a state dict for another optimizer or
// model; the op table's DtypeError / DeviceError / ShapeError for gradients that do not match.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "graph/variable.h"
#include "kernels/nn_ops.h"

namespace nn {

// One group of parameters. Unset options take the optimizer's defaults; any other
// hyper-parameter of a group can be changed later through Optimizer::hyper(group).
struct ParamGroup {
  std::vector<Variable> params = {};
  std::optional<double> lr = std::nullopt;
  std::optional<double> weight_decay = std::nullopt;
  std::optional<double> momentum = std::nullopt;  // SGD, RMSprop
};

// What Optimizer::state_dict() returns and load_state_dict() takes; checkpoints store it.
//   tensors:  "state.<i>.<buffer>" for parameter i (counted across groups in order), buffers
//             named as in PyTorch: momentum_buffer (SGD, RMSprop), exp_avg, exp_avg_sq,
//             max_exp_avg_sq (Adam, AdamW), square_avg, grad_avg (RMSprop).
//   metadata: "optimizer" (its name), "groups", "group.<g>.params", "group.<g>.<hyper>" for every
//             hyper-parameter, "param.<i>.step" (steps taken by parameter i), "step_count".
//             Numbers are written so that they read back exactly.
struct OptimizerStateDict {
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> metadata;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  const char* name() const { return name_; }  // "SGD", "Adam", "AdamW", "RMSprop"
  OptimizerKind kind() const { return defaults_.kind; }

  // One update of every parameter with a defined gradient, under NoGradGuard. `grad_scale` (an
  // optional 0-d float tensor on the parameters' device, e.g. clip_coefficient() of
  // optim/clip.h) multiplies every gradient first, inside the fused update.
  void step(const Tensor& grad_scale = {});
  // Variable::zero_grad on every parameter: set_to_none forgets the gradients (PyTorch's
  // default); otherwise they are zeroed in place and their buffers kept.
  void zero_grad(bool set_to_none = true);

  // The learning rate of group 0, and setting it for every group (schedulers set each group's
  // own through set_group_lr). ValueError for a negative or non-finite lr.
  double lr() const;
  void set_lr(double lr);
  double group_lr(size_t group) const;
  void set_group_lr(size_t group, double lr);

  size_t num_groups() const { return groups_.size(); }
  const std::vector<Variable>& group_params(size_t group) const;
  std::vector<Variable> parameters() const;  // every group's, in order
  // A group's hyper-parameters (its `step` field is ignored: counts are kept per parameter).
  // Changes are validated by the next step().
  const OptimizerHyper& hyper(size_t group) const;
  OptimizerHyper& hyper(size_t group);
  // Adds a group (options unset take the defaults); ValueError as for the constructor.
  void add_param_group(ParamGroup group);

  int64_t step_count() const { return steps_; }  // calls of step() so far
  // Steps parameter `index` (counted across groups) has taken: step() calls where it had a grad.
  int64_t param_step(size_t index) const;

  // The state as tensors (the live buffers, not copies: clone them to keep a snapshot) and
  // metadata strings. load_state_dict checks that it comes from the same optimizer over the same
  // parameter layout (group count, sizes, buffer shapes; ValueError naming what differs), then
  // replaces hyper-parameters, step counts and buffers (copied onto the parameters' devices and
  // dtypes, into existing buffers where there are some). Nothing changes when it throws.
  OptimizerStateDict state_dict() const;
  void load_state_dict(const OptimizerStateDict& state);
  // The checks of load_state_dict alone (ValueError), changing nothing: load_checkpoint uses it
  // to refuse a checkpoint before it touches the model.
  void check_state_dict(const OptimizerStateDict& state) const;

 protected:
  // `defaults` holds the kind and every hyper-parameter; each group's unset options take them.
  // Throws ValueError (prefixed by `name`) for bad values or parameters.
  Optimizer(const char* name, std::vector<ParamGroup> groups, const OptimizerHyper& defaults);
  static std::vector<ParamGroup> single_group(std::vector<Variable> params);

 private:
  struct ParamState {
    Tensor buffers[3];  // state0..2 of nn::ParamGroupTensors
    int64_t step = 0;
  };
  struct Group {
    std::vector<Variable> params;
    OptimizerHyper hyper;
    std::vector<ParamState> state;
  };

  struct Loaded;  // a parsed, checked state dict (optimizer.cpp)
  Loaded parse_state_dict(const OptimizerStateDict& state) const;
  Group make_group(ParamGroup group) const;
  void step_group(Group& group, const Tensor& grad_scale);

  const char* name_;
  OptimizerHyper defaults_;
  std::vector<Group> groups_;
  int64_t steps_ = 0;
  ParamGroupTensors scratch_;  // reused by step() so its lists keep their capacity
  std::vector<int64_t> scratch_counts_;
};

namespace detail {
// Throws ValueError "<name>: invalid <what> <value>, expected ..." unless `h` is in range for
// its kind (shared by the optimizers' constructors and load_state_dict).
void check_optimizer_hyper(const char* name, const OptimizerHyper& h);
}  // namespace detail

}  // namespace nn
