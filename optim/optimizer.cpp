// The optimizer base: groups, lazily allocated state, one fused nn::optimizer_step per group,
// and state dicts. Parameters of a group that have taken different numbers of steps (one had no
// gradient on some step) need different bias corrections, so they go in separate calls, one per
// distinct count; in a normal run every parameter has the same count and a group is one call.
#include "optim/optimizer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string_view>
#include <unordered_set>

#include "core/error.h"
#include "kernels/ops.h"
#include "optim/state_text.h"

namespace nn {
namespace {

constexpr int kSlots = 3;

// PyTorch's names for state0..2 of each kind (kernels/nn_ops.h documents the slots).
const char* slot_name(OptimizerKind kind, int slot) {
  static const char* const kSgd[kSlots] = {"momentum_buffer", "", ""};
  static const char* const kAdam[kSlots] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  static const char* const kRms[kSlots] = {"square_avg", "momentum_buffer", "grad_avg"};
  switch (kind) {
    case OptimizerKind::Sgd:
      return kSgd[slot];
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW:
      return kAdam[slot];
    case OptimizerKind::RMSprop:
      return kRms[slot];
  }
  return "";
}

// Whether the update rule with these options reads and writes state slot `slot`.
bool slot_used(const OptimizerHyper& h, int slot) { return optimizer_state_used(h, slot); }

std::vector<Tensor>& slot_list(ParamGroupTensors& t, int slot) {
  return slot == 0 ? t.state0 : slot == 1 ? t.state1 : t.state2;
}

void clear_lists(ParamGroupTensors& t) {
  t.params.clear();
  t.grads.clear();
  for (int s = 0; s < kSlots; ++s) slot_list(t, s).clear();
}

// Every hyper-parameter by its metadata name, so state dicts read and write them in one place.
struct DoubleField {
  const char* key;
  double OptimizerHyper::*member;
};
struct BoolField {
  const char* key;
  bool OptimizerHyper::*member;
};
constexpr DoubleField kDoubleFields[] = {{"lr", &OptimizerHyper::lr},
                                         {"weight_decay", &OptimizerHyper::weight_decay},
                                         {"momentum", &OptimizerHyper::momentum},
                                         {"dampening", &OptimizerHyper::dampening},
                                         {"beta1", &OptimizerHyper::beta1},
                                         {"beta2", &OptimizerHyper::beta2},
                                         {"eps", &OptimizerHyper::eps},
                                         {"alpha", &OptimizerHyper::alpha}};
constexpr BoolField kBoolFields[] = {{"nesterov", &OptimizerHyper::nesterov},
                                     {"amsgrad", &OptimizerHyper::amsgrad},
                                     {"centered", &OptimizerHyper::centered},
                                     {"maximize", &OptimizerHyper::maximize}};

void check_lr(const char* name, double lr) {
  NN_CHECK(std::isfinite(lr) && lr >= 0.0, ValueError, name, ": invalid learning rate ", lr,
           ", expected a finite value >= 0");
}

}  // namespace

namespace detail {

void check_optimizer_hyper(const char* name, const OptimizerHyper& h) {
  check_lr(name, h.lr);
  NN_CHECK(std::isfinite(h.weight_decay) && h.weight_decay >= 0.0, ValueError, name,
           ": invalid weight_decay ", h.weight_decay, ", expected a finite value >= 0");
  switch (h.kind) {
    case OptimizerKind::Sgd:
      NN_CHECK(std::isfinite(h.momentum) && h.momentum >= 0.0, ValueError, name,
               ": invalid momentum ", h.momentum, ", expected a finite value >= 0");
      NN_CHECK(h.dampening >= 0.0 && h.dampening <= 1.0, ValueError, name, ": invalid dampening ",
               h.dampening, ", expected a value in [0, 1]");
      NN_CHECK(!h.nesterov || (h.momentum > 0.0 && h.dampening == 0.0), ValueError, name,
               ": Nesterov momentum requires a momentum > 0 and zero dampening (momentum ",
               h.momentum, ", dampening ", h.dampening, ")");
      break;
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW:
      NN_CHECK(h.eps > 0.0 && std::isfinite(h.eps), ValueError, name, ": invalid epsilon ", h.eps,
               ", expected a finite value > 0");
      NN_CHECK(h.beta1 >= 0.0 && h.beta1 < 1.0, ValueError, name,
               ": invalid beta parameter at "
               "index 0: ",
               h.beta1, ", expected a value in [0, 1)");
      NN_CHECK(h.beta2 >= 0.0 && h.beta2 < 1.0, ValueError, name,
               ": invalid beta parameter at "
               "index 1: ",
               h.beta2, ", expected a value in [0, 1)");
      break;
    case OptimizerKind::RMSprop:
      NN_CHECK(h.eps > 0.0 && std::isfinite(h.eps), ValueError, name, ": invalid epsilon ", h.eps,
               ", expected a finite value > 0");
      NN_CHECK(std::isfinite(h.momentum) && h.momentum >= 0.0, ValueError, name,
               ": invalid momentum ", h.momentum, ", expected a finite value >= 0");
      NN_CHECK(h.alpha >= 0.0 && h.alpha <= 1.0, ValueError, name, ": invalid alpha ", h.alpha,
               ", expected a value in [0, 1]");
      break;
  }
}

}  // namespace detail

// ---- construction ------------------------------------------------------------------------------

Optimizer::Optimizer(const char* name, std::vector<ParamGroup> groups,
                     const OptimizerHyper& defaults)
    : name_(name), defaults_(defaults) {
  detail::check_optimizer_hyper(name_, defaults_);
  size_t total = 0;
  for (ParamGroup& g : groups) {
    total += g.params.size();
    add_param_group(std::move(g));
  }
  NN_CHECK(total > 0, ValueError, name_, ": the optimizer got an empty parameter list");
}

std::vector<ParamGroup> Optimizer::single_group(std::vector<Variable> params) {
  std::vector<ParamGroup> groups(1);
  groups[0].params = std::move(params);
  return groups;
}

Optimizer::Group Optimizer::make_group(ParamGroup group) const {
  Group g;
  g.hyper = defaults_;
  if (group.lr) g.hyper.lr = *group.lr;
  if (group.weight_decay) g.hyper.weight_decay = *group.weight_decay;
  if (group.momentum) g.hyper.momentum = *group.momentum;
  detail::check_optimizer_hyper(name_, g.hyper);

  std::unordered_set<const void*> seen;
  for (const Group& other : groups_)
    for (const Variable& v : other.params) seen.insert(v.id());
  for (size_t i = 0; i < group.params.size(); ++i) {
    const Variable& v = group.params[i];
    NN_CHECK(v.defined(), ValueError, name_, ": parameter ", i, " of the group is undefined");
    NN_CHECK(v.is_leaf(), ValueError, name_, ": parameter ", i, " of the group is the result of ",
             v.op_name(), ", and only leaf Variables can be optimized");
    NN_CHECK(is_floating(v.dtype()), DtypeError, name_, ": parameter ", i, " of the group is ",
             dtype_name(v.dtype()), ", expected a floating dtype");
    NN_CHECK(seen.insert(v.id()).second, ValueError, name_, ": parameter ", i,
             " of the group appears more than once among the optimizer's parameters");
  }
  g.params = std::move(group.params);
  g.state.resize(g.params.size());
  return g;
}

void Optimizer::add_param_group(ParamGroup group) {
  groups_.push_back(make_group(std::move(group)));
}

// ---- the update --------------------------------------------------------------------------------

void Optimizer::step(const Tensor& grad_scale) {
  NoGradGuard no_grad;
  for (Group& g : groups_) step_group(g, grad_scale);
  ++steps_;
}

void Optimizer::step_group(Group& group, const Tensor& grad_scale) {
  detail::check_optimizer_hyper(name_, group.hyper);
  // Each parameter's step count before this step (-1: no gradient, skipped), and the distinct
  // counts, ascending.
  std::vector<int64_t>& before = scratch_counts_;
  before.assign(group.params.size(), -1);
  std::vector<int64_t> counts;
  for (size_t i = 0; i < group.params.size(); ++i) {
    if (!group.params[i].grad().defined()) continue;
    before[i] = group.state[i].step;
    if (std::find(counts.begin(), counts.end(), before[i]) == counts.end())
      counts.push_back(before[i]);
  }
  std::sort(counts.begin(), counts.end());

  for (const int64_t count : counts) {
    ParamGroupTensors& t = scratch_;
    for (size_t i = 0; i < group.params.size(); ++i) {
      Variable& v = group.params[i];
      if (before[i] != count) continue;
      t.params.push_back(v.data());
      t.grads.push_back(v.grad());
      for (int s = 0; s < kSlots; ++s) {
        if (!slot_used(group.hyper, s)) continue;
        Tensor& buf = group.state[i].buffers[s];
        if (!buf.defined()) {
          buf = zeros_like(v.data());
        } else if (buf.device() != v.device() || buf.dtype() != v.dtype()) {
          // The module was moved (Module::to) after the state was made: the state follows.
          buf = buf.to(v.device(), v.dtype());
        }
        slot_list(t, s).push_back(buf);
      }
    }
    OptimizerHyper h = group.hyper;
    h.step = count + 1;
    try {
      optimizer_step(t, h, grad_scale);
    } catch (...) {
      clear_lists(t);
      throw;
    }
    // Drop the handles at once (a gradient set to none must be free to go), keep the capacity.
    clear_lists(t);
    for (size_t i = 0; i < group.params.size(); ++i)
      if (before[i] == count) ++group.state[i].step;
  }
}

void Optimizer::zero_grad(bool set_to_none) {
  for (Group& g : groups_)
    for (Variable& v : g.params) v.zero_grad(set_to_none);
}

// ---- accessors ---------------------------------------------------------------------------------

double Optimizer::lr() const { return group_lr(0); }

void Optimizer::set_lr(double lr) {
  check_lr(name_, lr);
  for (Group& g : groups_) g.hyper.lr = lr;
}

double Optimizer::group_lr(size_t group) const { return hyper(group).lr; }

void Optimizer::set_group_lr(size_t group, double lr) {
  check_lr(name_, lr);
  hyper(group).lr = lr;
}

const std::vector<Variable>& Optimizer::group_params(size_t group) const {
  NN_CHECK(group < groups_.size(), IndexError, name_, ": group ", group, " out of range for ",
           groups_.size(), " groups");
  return groups_[group].params;
}

std::vector<Variable> Optimizer::parameters() const {
  std::vector<Variable> all;
  for (const Group& g : groups_) all.insert(all.end(), g.params.begin(), g.params.end());
  return all;
}

const OptimizerHyper& Optimizer::hyper(size_t group) const {
  NN_CHECK(group < groups_.size(), IndexError, name_, ": group ", group, " out of range for ",
           groups_.size(), " groups");
  return groups_[group].hyper;
}

OptimizerHyper& Optimizer::hyper(size_t group) {
  return const_cast<OptimizerHyper&>(std::as_const(*this).hyper(group));
}

int64_t Optimizer::param_step(size_t index) const {
  size_t base = 0;
  for (const Group& g : groups_) {
    if (index < base + g.params.size()) return g.state[index - base].step;
    base += g.params.size();
  }
  NN_THROW(IndexError, name_, ": parameter ", index, " out of range for ", base, " parameters");
}

// ---- state dicts -------------------------------------------------------------------------------

OptimizerStateDict Optimizer::state_dict() const {
  OptimizerStateDict out;
  auto& m = out.metadata;
  m["optimizer"] = name_;
  m["groups"] = detail::format_int(int64_t(groups_.size()));
  m["step_count"] = detail::format_int(steps_);
  size_t index = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const Group& g = groups_[gi];
    const std::string prefix = "group." + std::to_string(gi) + ".";
    m[prefix + "params"] = detail::format_int(int64_t(g.params.size()));
    for (const DoubleField& f : kDoubleFields)
      m[prefix + f.key] = detail::format_double(g.hyper.*f.member);
    for (const BoolField& f : kBoolFields)
      m[prefix + f.key] = detail::format_bool(g.hyper.*f.member);
    for (size_t i = 0; i < g.params.size(); ++i, ++index) {
      const std::string p = std::to_string(index);
      m["param." + p + ".step"] = detail::format_int(g.state[i].step);
      for (int s = 0; s < kSlots; ++s) {
        if (g.state[i].buffers[s].defined())
          out.tensors.emplace_back("state." + p + "." + slot_name(kind(), s),
                                   g.state[i].buffers[s]);
      }
    }
  }
  return out;
}

struct Optimizer::Loaded {
  std::vector<OptimizerHyper> hypers;                      // per group
  std::vector<int64_t> steps;                              // per parameter
  std::vector<std::array<const Tensor*, kSlots>> buffers;  // per parameter; nullptr: absent
  int64_t step_count = 0;
};

Optimizer::Loaded Optimizer::parse_state_dict(const OptimizerStateDict& state) const {
  const std::string who_text = std::string(name_) + ".load_state_dict";
  const char* who = who_text.c_str();
  const auto& m = state.metadata;

  const std::string& saved = detail::state_value(m, "optimizer", who);
  NN_CHECK(saved == name_, ValueError, who, ": the state is for ", saved, ", not ", name_);
  const int64_t ngroups = detail::state_int(m, "groups", who);
  NN_CHECK(ngroups == int64_t(groups_.size()), ValueError, who, ": the state has ", ngroups,
           " parameter groups, the optimizer ", groups_.size());

  // Parse and check everything first, so a bad state changes nothing.
  std::vector<OptimizerHyper> hypers(groups_.size());
  std::vector<const Variable*> params;
  std::vector<size_t> group_of;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const std::string prefix = "group." + std::to_string(gi) + ".";
    const int64_t n = detail::state_int(m, prefix + "params", who);
    NN_CHECK(n == int64_t(groups_[gi].params.size()), ValueError, who, ": group ", gi, " has ", n,
             " parameters in the state, ", groups_[gi].params.size(), " in the optimizer");
    OptimizerHyper h = groups_[gi].hyper;
    for (const DoubleField& f : kDoubleFields)
      h.*f.member = detail::state_double(m, prefix + f.key, who);
    for (const BoolField& f : kBoolFields) h.*f.member = detail::state_bool(m, prefix + f.key, who);
    detail::check_optimizer_hyper(who, h);
    hypers[gi] = h;
    for (const Variable& v : groups_[gi].params) {
      params.push_back(&v);
      group_of.push_back(gi);
    }
  }
  std::vector<int64_t> steps(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string key = "param." + std::to_string(i) + ".step";
    steps[i] = detail::state_int(m, key, who);
    NN_CHECK(steps[i] >= 0, ValueError, who, ": '", key, "' is ", steps[i], ", expected >= 0");
  }
  const int64_t step_count = detail::state_int(m, "step_count", who);

  std::vector<std::array<const Tensor*, kSlots>> found(params.size());
  for (auto& f : found) f.fill(nullptr);
  std::string problems;
  auto problem = [&](const std::string& p) { problems += (problems.empty() ? "" : "; ") + p; };
  for (const auto& [name, t] : state.tensors) {
    // "state.<i>.<buffer>"
    const std::string_view rest = std::string_view(name).substr(0, 6) == "state."
                                      ? std::string_view(name).substr(6)
                                      : std::string_view();
    const size_t dot = rest.find('.');
    int64_t index = -1;
    if (dot != std::string_view::npos && dot > 0) {
      try {
        index = detail::parse_int(std::string(rest.substr(0, dot)), name, who);
      } catch (const ValueError&) {
        index = -1;
      }
    }
    if (index < 0 || index >= int64_t(params.size())) {
      problem("unexpected tensor " + name);
      continue;
    }
    const std::string_view buffer = rest.substr(dot + 1);
    int slot = -1;
    for (int s = 0; s < kSlots; ++s)
      if (*slot_name(kind(), s) != '\0' && buffer == slot_name(kind(), s)) slot = s;
    if (slot < 0) {
      problem("unexpected tensor " + name);
      continue;
    }
    const Variable& p = *params[index];
    if (!t.defined() || t.shape() != p.shape() || !is_floating(t.dtype())) {
      problem(name + " is " +
              (t.defined() ? shape_str(t.shape()) + " " + dtype_name(t.dtype())
                           : std::string("undefined")) +
              ", the parameter is " + shape_str(p.shape()) + " " + dtype_name(p.dtype()));
      continue;
    }
    found[index][slot] = &t;
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (steps[i] == 0) continue;
    for (int s = 0; s < kSlots; ++s)
      if (slot_used(hypers[group_of[i]], s) && found[i][s] == nullptr)
        problem("missing state." + std::to_string(i) + "." + slot_name(kind(), s));
  }
  NN_CHECK(problems.empty(), ValueError, who,
           ": the state does not fit this optimizer: ", problems);

  Loaded loaded;
  loaded.hypers = std::move(hypers);
  loaded.steps = std::move(steps);
  loaded.buffers = std::move(found);
  loaded.step_count = step_count;
  return loaded;
}

void Optimizer::check_state_dict(const OptimizerStateDict& state) const { parse_state_dict(state); }

void Optimizer::load_state_dict(const OptimizerStateDict& state) {
  const Loaded loaded = parse_state_dict(state);
  NoGradGuard no_grad;
  size_t index = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    Group& g = groups_[gi];
    g.hyper = loaded.hypers[gi];
    for (size_t i = 0; i < g.params.size(); ++i, ++index) {
      ParamState& ps = g.state[i];
      ps.step = loaded.steps[index];
      const Tensor& p = g.params[i].data();
      for (int s = 0; s < kSlots; ++s) {
        const Tensor* src = loaded.buffers[index][s];
        if (src == nullptr) {
          ps.buffers[s] = Tensor();
          continue;
        }
        Tensor& buf = ps.buffers[s];
        if (!buf.defined() || buf.shape() != p.shape() || buf.dtype() != p.dtype() ||
            buf.device() != p.device())
          buf = empty(p.shape(), {p.dtype(), p.device()});
        buf.copy_(*src);
      }
    }
  }
  steps_ = loaded.step_count;
}

}  // namespace nn
