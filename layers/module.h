// Module: the base of every layer, as in PyTorch. A module owns named parameters (leaf Variables
// that require a gradient), named buffers (non-trainable state such as running statistics) and
// named submodules, all kept in registration order. Paths are dotted: "fc1.weight", "0.bias".
//
// Modules are held by std::shared_ptr and are not copyable: parameters are handles, and an
// optimizer keeps the same handles. to(Device) / to(Dtype) therefore replace each parameter's
// data inside its Variable instead of making new Variables.
//
// A module's forward composes differentiable ops (graph/functions.h); it never launches a
// kernel itself. Errors: ValueError for bad names and bad state dicts, IoError from save/load.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "graph/variable.h"

namespace nn {

// (name, tensor) pairs in module order; the tensors share storage with the module's.
using StateDict = std::vector<std::pair<std::string, Tensor>>;

// What a non-strict load_state_dict left out.
struct LoadReport {
  std::vector<std::string> missing;     // in the module, not in the state dict (left unchanged)
  std::vector<std::string> unexpected;  // in the state dict, not in the module (ignored)
  bool ok() const { return missing.empty() && unexpected.empty(); }
};

class Module : public std::enable_shared_from_this<Module> {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The layer's computation. The base version throws ValueError: modules that take other
  // arguments (losses) define their own forward.
  virtual Variable forward(const Variable& x);
  Variable operator()(const Variable& x) { return forward(x); }

  // ---- registration (names: non-empty, no '.', unique within this module) -------------------
  // `data` becomes a leaf Variable (not copied); the returned handle is the parameter itself.
  Variable register_parameter(const std::string& name, Tensor data, bool requires_grad = true);
  // Buffers are moved by to() and saved in the state dict, but get no gradient. The reference
  // stays valid for the module's life; to() assigns a new tensor through it.
  Tensor& register_buffer(const std::string& name, Tensor data);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // ---- traversal (registration order, dotted paths; a parameter shared by two submodules is
  // listed once, under its first path) ---------------------------------------------------------
  std::vector<Variable> parameters() const;
  std::vector<std::pair<std::string, Variable>> named_parameters() const;
  std::vector<Tensor> buffers() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<std::shared_ptr<Module>> children() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  // This module first (name ""), then every descendant depth-first. The entry for this module
  // does not own it when it is not held by a shared_ptr.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules();
  std::vector<std::shared_ptr<Module>> modules();
  // Calls fn on every descendant (children before parents, as PyTorch's apply), then on this.
  Module& apply(const std::function<void(Module&)>& fn);

  // ---- modes ---------------------------------------------------------------------------------
  // Sets the training flag of this module and every descendant (Dropout reads it).
  Module& train(bool on = true);
  Module& eval() { return train(false); }
  bool is_training() const { return training_; }

  // ---- devices, dtypes, gradients ------------------------------------------------------------
  // Moves every parameter, gradient and buffer (recursively), keeping the Variable handles.
  Module& to(Device device);
  // Converts floating parameters, gradients and buffers; integer and bool buffers are kept.
  Module& to(Dtype dtype);
  void zero_grad(bool set_to_none = true);

  // ---- state ---------------------------------------------------------------------------------
  // Every parameter then every buffer of each module, depth-first, as dotted paths (shared
  // parameters appear under each of their paths). The tensors are the module's own, not copies.
  StateDict state_dict() const;
  // Copies values in place (any device; dtypes are converted). Checks everything first: with
  // strict, any missing or unexpected name throws ValueError listing all of them; a shape
  // mismatch or a name given twice throws ValueError in either mode. Nothing is copied when it
  // throws. Returns what was missing or unexpected (empty after a strict load).
  LoadReport load_state_dict(const StateDict& state, bool strict = true);
  // The state dict as a safetensors file, written atomically (core/io.h).
  void save(const std::string& path) const;
  // Reads a safetensors file (IoError when unreadable or corrupt) and loads it as above.
  LoadReport load(const std::string& path, bool strict = true);

  // ---- printing ------------------------------------------------------------------------------
  // The type's name ("Linear"); by default the C++ class name without namespaces.
  virtual std::string name() const;
  // What goes between the parentheses of a leaf module: "in_features=784, out_features=256".
  virtual std::string extra_repr() const { return ""; }
  // The module tree, PyTorch-style:
  //   Sequential(
  //     (0): Linear(in_features=784, out_features=256, bias=true)
  //     (1): ReLU()
  //   )
  std::string str() const;

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name, const char* what) const;
  LoadReport load_from(const StateDict& state, bool strict, const char* source);

  bool training_ = true;
  std::vector<std::pair<std::string, Variable>> parameters_;
  std::deque<std::pair<std::string, Tensor>> buffers_;  // deque: references stay valid
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

std::ostream& operator<<(std::ostream& os, const Module& m);

}  // namespace nn
