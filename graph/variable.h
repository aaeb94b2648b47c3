// Define-by-run autograd. A Variable is a handle (copies share state, as torch.Tensor does) on a
// Tensor plus what reverse mode needs: whether it requires a gradient, its accumulated gradient,
// and, for a result of a differentiable op, the node that made it (its inputs and a backward
// function whose closure holds the saved tensors).
//
// backward() walks the graph once in reverse topological order and launches only device work on
// the tensors' current stream: no synchronisation, no copy to the host. Gradients are written
// with ops of the table (kernels/), so they run on whatever device the tensors are on. Only
// first-order gradients are supported: backward functions work on plain Tensors. Neither the
// traversal nor the teardown of a graph recurses, so a graph of millions of recorded ops (a long
// recurrent unroll) is safe to differentiate and to drop.
//
// Threading: grad mode (NoGradGuard) is per thread. One graph must not be differentiated from
// two threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace nn {

class Variable;

// Given the gradient of an op's output (same shape and dtype as the output) and which inputs
// need a gradient, returns one tensor per input: the gradient with the input's shape and dtype,
// or an undefined Tensor where none is needed. The closure owns whatever the op saved.
using BackwardFn =
    std::function<std::vector<Tensor>(const Tensor& grad_output, const std::vector<bool>& needs)>;

namespace detail {
struct VariableState;
}

class Variable {
 public:
  Variable() = default;  // undefined
  // A leaf holding `data` (not copied). Leaves that require a gradient accumulate it in grad().
  explicit Variable(Tensor data, bool requires_grad = false);

  bool defined() const { return state_ != nullptr; }
  const Tensor& data() const;  // the value; changing it in place is invisible to autograd
  Tensor& data();

  bool requires_grad() const;
  // Leaves only (ValueError on a result of an op, as in PyTorch).
  Variable& requires_grad_(bool on = true);
  bool is_leaf() const;  // made by the user, not by a recorded op

  // The accumulated gradient (undefined until a backward pass reaches this Variable). Results
  // of ops keep theirs only after retain_grad().
  const Tensor& grad() const;
  void set_grad(const Tensor& grad);  // shape, dtype and device must match data (or undefined)
  // Forgets the gradient (set_to_none, PyTorch's default) or fills it with zeros in place, which
  // keeps the buffer (steady-state steps then allocate nothing).
  void zero_grad(bool set_to_none = true);
  void retain_grad();

  // Reverse mode from this Variable. `grad` is d(loss)/d(this); it may be omitted only when this
  // holds one element (it is then 1). Frees the graph's saved tensors unless retain_graph; a
  // second backward through a freed graph throws ValueError saying to pass retain_graph.
  // Throws ValueError when this does not require a gradient.
  void backward(const Tensor& grad = {}, bool retain_graph = false) const;

  // A new leaf sharing this Variable's data, cut from the graph.
  Variable detach() const;

  // The op that made this Variable ("" for a leaf), for error messages and printing.
  const char* op_name() const;

  // Shorthands for data().
  const Shape& shape() const { return data().shape(); }
  int64_t dim() const { return data().dim(); }
  int64_t size(int64_t d) const { return data().size(d); }
  int64_t numel() const { return data().numel(); }
  Dtype dtype() const { return data().dtype(); }
  Device device() const { return data().device(); }
  double item() const { return data().item(); }  // a host sync on CUDA
  std::string str() const;

  // Two handles on the same state.
  bool same(const Variable& other) const { return state_ == other.state_; }
  // Identity of the shared state (for maps keyed by parameter).
  const void* id() const { return state_.get(); }

 private:
  friend Variable make_variable(Tensor, std::vector<Variable>, BackwardFn, const char*);
  friend class Engine;
  std::shared_ptr<detail::VariableState> state_;
};

std::ostream& operator<<(std::ostream& os, const Variable& v);

// The result of a differentiable op: `data` with a node linking `inputs` and `backward`.
// When grad mode is off or no input requires a gradient, no node is recorded and the result is
// a plain leaf that does not require a gradient (the closure is dropped at once).
Variable make_variable(Tensor data, std::vector<Variable> inputs, BackwardFn backward,
                       const char* op_name);

// True when at least one of `inputs` requires a gradient and grad mode is on: a differentiable
// op may skip saving tensors otherwise.
bool any_requires_grad(const std::vector<Variable>& inputs);

// Grad mode (per thread): off inside a NoGradGuard (evaluation, optimizer steps).
bool grad_enabled();
void set_grad_enabled(bool enabled);
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Gradients of `outputs` (each with its seed gradient, or one for one-element outputs) with
// respect to `inputs`, returned rather than accumulated into grad() (torch.autograd.grad).
// Inputs the outputs do not depend on get an undefined Tensor.
std::vector<Tensor> grad(const std::vector<Variable>& outputs, const std::vector<Variable>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false);

// Backward helper shared by every broadcasting op: sums `grad` over the axes along which an
// input of shape `shape` was broadcast, giving a tensor of exactly `shape`.
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace nn
