// The autograd engine: graph recording, reverse topological traversal, gradient accumulation.
//
// A node is the VariableState of an op's result: its inputs are the edges, its closure the saved
// tensors. backward() orders the reachable nodes once (iterative depth-first search, so a long
// recurrent unroll cannot overflow the stack), then visits them so that every node runs after all
// of its consumers have delivered their gradient contributions.
#include "graph/variable.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <ostream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/error.h"
#include "kernels/ops.h"

namespace nn {
namespace detail {

struct VariableState {
  Tensor data;
  Tensor grad;
  bool requires_grad = false;
  bool is_leaf = true;
  bool retains_grad = false;
  bool freed = false;  // its backward ran without retain_graph: closure and edges are gone
  std::vector<Variable> inputs;
  BackwardFn backward;
  const char* op_name = "";

  VariableState() = default;
  VariableState(const VariableState&) = delete;
  VariableState& operator=(const VariableState&) = delete;
  // Tears the graph behind this node down iteratively (see Engine::release).
  ~VariableState();
};

}  // namespace detail

namespace {

thread_local bool t_grad_enabled = true;

const char* const kFreedMessage =
    "backward: the graph through '%s' was already freed by an earlier backward; pass "
    "retain_graph=true to the first backward to differentiate it again";

// Adds `incoming` to `slot`. A slot tensor that nothing else references (its storage has one
// owner) is updated in place; one that may be shared (a backward function can hand the same
// tensor to two inputs) is replaced by a new sum, so one gradient never leaks into another.
void accumulate(Tensor& slot, Tensor incoming) {
  if (!slot.defined()) {
    slot = std::move(incoming);
    return;
  }
  if (slot.storage().use_count() == 1 && slot.is_contiguous()) {
    add_(slot, incoming);
  } else {
    slot = add(slot, incoming);
  }
}

// A gradient that is about to become a leaf's .grad must be owned by it alone, and should not pin
// a larger buffer it is a view of (a part of cat's gradient, say).
Tensor owned(Tensor g) {
  if (g.storage().use_count() == 1 && g.is_contiguous() && g.storage()->nbytes() == g.nbytes())
    return g;
  return g.clone();
}

void check_grad_like(const Tensor& g, const Tensor& data, const char* what) {
  NN_CHECK(g.shape() == data.shape(), ShapeError, what, ": gradient has shape ",
           shape_str(g.shape()), ", expected ", shape_str(data.shape()));
  NN_CHECK(g.dtype() == data.dtype(), DtypeError, what, ": gradient is ", dtype_name(g.dtype()),
           ", expected ", dtype_name(data.dtype()));
  NN_CHECK(g.device() == data.device(), DeviceError, what, ": gradient is on ", g.device().str(),
           ", expected ", data.device().str());
}

}  // namespace

// The traversal shared by Variable::backward and nn::grad.
class Engine {
 public:
  using State = detail::VariableState;

  // capture == nullptr: accumulate into leaves' (and retained) grads. Otherwise only collect the
  // gradients reaching the states in *capture.
  static void run(const std::vector<Variable>& roots, const std::vector<Tensor>& root_grads,
                  bool retain_graph, std::unordered_map<State*, Tensor>* capture) {
    std::unordered_map<State*, Tensor> pending;
    for (size_t i = 0; i < roots.size(); ++i) {
      State* s = roots[i].state_.get();
      NN_CHECK(s != nullptr, ValueError, "backward: an output is an undefined Variable");
      NN_CHECK(s->requires_grad, ValueError,
               "backward: the output does not require a gradient (no input of the ops that made "
               "it requires one, or it was computed under NoGradGuard)");
      Tensor g = i < root_grads.size() ? root_grads[i] : Tensor();
      if (!g.defined()) {
        NN_CHECK(s->data.numel() == 1, ShapeError,
                 "backward: a gradient can be omitted only for a one-element output; this one has "
                 "shape ",
                 shape_str(s->data.shape()));
        g = ones_like(s->data);
      }
      check_grad_like(g, s->data, "backward");
      accumulate(pending[s], g);
    }

    // The order holds every node alive for the whole pass: freeing a node's edges below may
    // drop the last other reference to a node that is still to be visited.
    for (const std::shared_ptr<State>& node : topological_order(roots)) {
      State* s = node.get();
      auto it = pending.find(s);
      if (it == pending.end()) continue;  // no gradient flows through here
      Tensor g = std::move(it->second);
      pending.erase(it);

      if (capture != nullptr) {
        auto c = capture->find(s);
        if (c != capture->end()) accumulate(c->second, g);
      } else if (s->is_leaf || s->retains_grad) {
        if (s->grad.defined()) {
          add_(s->grad, g);
        } else {
          s->grad = owned(g);
        }
      }
      if (s->is_leaf) continue;

      std::vector<bool> needs(s->inputs.size());
      for (size_t i = 0; i < s->inputs.size(); ++i) needs[i] = s->inputs[i].requires_grad();
      std::vector<Tensor> grads = s->backward(g, needs);
      g = Tensor();
      NN_CHECK(grads.size() == s->inputs.size(), Error, "backward of ", s->op_name, " returned ",
               grads.size(), " gradients for ", s->inputs.size(), " inputs");
      for (size_t i = 0; i < grads.size(); ++i) {
        if (!needs[i] || !grads[i].defined()) continue;
        State* in = s->inputs[i].state_.get();
        std::string what = std::string("backward of ") + s->op_name;
        check_grad_like(grads[i], in->data, what.c_str());
        accumulate(pending[in], std::move(grads[i]));
      }
      if (!retain_graph) {
        s->backward = nullptr;
        s->inputs.clear();
        s->freed = true;
      }
    }
  }

 private:
  // Nodes reachable from `roots` through edges that require a gradient, each after all of its
  // consumers (reverse post-order of an iterative depth-first search).
  static std::vector<std::shared_ptr<State>> topological_order(const std::vector<Variable>& roots) {
    std::vector<std::shared_ptr<State>> post;
    std::unordered_set<State*> seen;
    std::vector<std::pair<std::shared_ptr<State>, size_t>> stack;  // node, next input to visit
    for (const Variable& r : roots) {
      if (!seen.insert(r.state_.get()).second) continue;
      stack.push_back({r.state_, 0});
      while (!stack.empty()) {
        State* node = stack.back().first.get();
        size_t& next = stack.back().second;
        if (!node->is_leaf && node->freed) {
          char msg[256];
          std::snprintf(msg, sizeof msg, kFreedMessage, node->op_name);
          throw ValueError(msg);
        }
        if (next < node->inputs.size()) {
          const std::shared_ptr<State>& in = node->inputs[next++].state_;
          if (in->requires_grad && seen.insert(in.get()).second) stack.push_back({in, 0});
        } else {
          post.push_back(std::move(stack.back().first));
          stack.pop_back();
        }
      }
    }
    std::reverse(post.begin(), post.end());
    return post;
  }

 public:
  // Releases `edges` without recursion: a node whose last owner is this list hands its own edges
  // over before it dies, so destroying a chain of a million recorded ops needs no deep stack.
  static void release(std::vector<Variable>& edges) {
    std::vector<Variable> work = std::move(edges);
    edges.clear();
    while (!work.empty()) {
      Variable v = std::move(work.back());
      work.pop_back();
      if (v.state_ != nullptr && v.state_.use_count() == 1) {
        for (Variable& in : v.state_->inputs) work.push_back(std::move(in));
        v.state_->inputs.clear();
      }
    }
  }
};

namespace detail {
VariableState::~VariableState() { Engine::release(inputs); }
}  // namespace detail

// ---- Variable ----------------------------------------------------------------------------------

Variable::Variable(Tensor data, bool requires_grad)
    : state_(std::make_shared<detail::VariableState>()) {
  NN_CHECK(data.defined(), ValueError, "Variable: the tensor is undefined");
  state_->data = std::move(data);
  requires_grad_(requires_grad);
}

#define NN_CHECK_DEFINED(fn) \
  NN_CHECK(state_ != nullptr, ValueError, "Variable::" fn ": the Variable is undefined")

const Tensor& Variable::data() const {
  NN_CHECK_DEFINED("data");
  return state_->data;
}
Tensor& Variable::data() {
  NN_CHECK_DEFINED("data");
  return state_->data;
}
bool Variable::requires_grad() const { return state_ != nullptr && state_->requires_grad; }
bool Variable::is_leaf() const { return state_ == nullptr || state_->is_leaf; }

Variable& Variable::requires_grad_(bool on) {
  NN_CHECK_DEFINED("requires_grad_");
  NN_CHECK(state_->is_leaf, ValueError,
           "requires_grad_: only a leaf's flag can be changed; this "
           "Variable is the result of ",
           state_->op_name, " (use detach() for a new leaf)");
  NN_CHECK(!on || is_floating(state_->data.dtype()), DtypeError,
           "requires_grad_: only floating tensors can require a gradient, this one is ",
           dtype_name(state_->data.dtype()));
  state_->requires_grad = on;
  return *this;
}

const Tensor& Variable::grad() const {
  NN_CHECK_DEFINED("grad");
  return state_->grad;
}

void Variable::set_grad(const Tensor& grad) {
  NN_CHECK_DEFINED("set_grad");
  if (grad.defined()) check_grad_like(grad, state_->data, "set_grad");
  state_->grad = grad;
}

void Variable::zero_grad(bool set_to_none) {
  NN_CHECK_DEFINED("zero_grad");
  if (set_to_none || !state_->grad.defined()) {
    state_->grad = Tensor();
  } else {
    fill_(state_->grad, 0.0);
  }
}

void Variable::retain_grad() {
  NN_CHECK_DEFINED("retain_grad");
  NN_CHECK(state_->requires_grad, ValueError,
           "retain_grad: the Variable does not require a gradient");
  if (!state_->is_leaf) state_->retains_grad = true;
}

void Variable::backward(const Tensor& grad, bool retain_graph) const {
  NN_CHECK_DEFINED("backward");
  Engine::run({*this}, {grad}, retain_graph, nullptr);
}

Variable Variable::detach() const {
  NN_CHECK_DEFINED("detach");
  return Variable(state_->data, false);
}

const char* Variable::op_name() const { return state_ ? state_->op_name : ""; }

std::string Variable::str() const {
  if (!state_) return "Variable(undefined)";
  std::ostringstream os;
  os << "Variable(" << state_->data.str();
  if (!state_->is_leaf) {
    os << ", grad_fn=" << state_->op_name;
  } else if (state_->requires_grad) {
    os << ", requires_grad=true";
  }
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Variable& v) { return os << v.str(); }

// ---- recording ---------------------------------------------------------------------------------

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }

bool any_requires_grad(const std::vector<Variable>& inputs) {
  if (!t_grad_enabled) return false;
  return std::any_of(inputs.begin(), inputs.end(),
                     [](const Variable& v) { return v.requires_grad(); });
}

Variable make_variable(Tensor data, std::vector<Variable> inputs, BackwardFn backward,
                       const char* op_name) {
  if (!any_requires_grad(inputs)) return Variable(std::move(data), false);
  Variable v(std::move(data), false);
  v.state_->is_leaf = false;
  v.state_->requires_grad = true;
  v.state_->inputs = std::move(inputs);
  v.state_->backward = std::move(backward);
  v.state_->op_name = op_name;
  return v;
}

std::vector<Tensor> grad(const std::vector<Variable>& outputs, const std::vector<Variable>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph) {
  NN_CHECK(grad_outputs.empty() || grad_outputs.size() == outputs.size(), ValueError,
           "grad: ", grad_outputs.size(), " gradients given for ", outputs.size(), " outputs");
  std::unordered_map<detail::VariableState*, Tensor> capture;
  for (const Variable& in : inputs) {
    NN_CHECK(in.requires_grad(), ValueError, "grad: an input does not require a gradient");
    capture[static_cast<detail::VariableState*>(const_cast<void*>(in.id()))];
  }
  Engine::run(outputs, grad_outputs, retain_graph, &capture);
  std::vector<Tensor> result;
  result.reserve(inputs.size());
  for (const Variable& in : inputs) {
    result.push_back(capture[static_cast<detail::VariableState*>(const_cast<void*>(in.id()))]);
  }
  return result;
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  const Shape& g = grad.shape();
  NN_CHECK(shape.size() <= g.size(), ShapeError, "sum_to: cannot reduce ", shape_str(g), " to ",
           shape_str(shape));
  const size_t lead = g.size() - shape.size();
  std::vector<int64_t> dims;
  for (size_t i = 0; i < g.size(); ++i) {
    if (i < lead) {
      dims.push_back(int64_t(i));
    } else if (shape[i - lead] == 1 && g[i] != 1) {
      dims.push_back(int64_t(i));
    } else {
      NN_CHECK(shape[i - lead] == g[i], ShapeError, "sum_to: cannot reduce ", shape_str(g), " to ",
               shape_str(shape));
    }
  }
  if (dims.empty()) return grad;
  return sum(grad, dims, /*keepdim=*/true).reshape(shape);
}

}  // namespace nn
