// Module bookkeeping: registration, recursive traversal, modes, device/dtype moves, state dicts.
#include "layers/module.h"

#include <cxxabi.h>

#include <cstdlib>
#include <map>
#include <ostream>
#include <sstream>
#include <typeinfo>
#include <unordered_set>

#include "core/error.h"
#include "core/io.h"
#include "kernels/ops.h"

namespace nn {
namespace {

std::string join(const std::string& prefix, const std::string& name) {
  if (prefix.empty()) return name;
  return name.empty() ? prefix : prefix + "." + name;
}

// Visits (path, module) depth-first, parents before children.
void walk(const Module& m, const std::string& prefix,
          const std::function<void(const std::string&, const Module&)>& fn) {
  fn(prefix, m);
  for (const auto& [name, child] : m.named_children()) walk(*child, join(prefix, name), fn);
}

std::string list_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Every line but the first indented by two spaces (PyTorch's nested printing).
std::string indent_tail(const std::string& text) {
  std::string out;
  for (char c : text) {
    out += c;
    if (c == '\n') out += "  ";
  }
  return out;
}

}  // namespace

Variable Module::forward(const Variable&) {
  NN_THROW(ValueError, name(),
           ": forward(x) is not defined for this module (it takes other "
           "arguments, or the subclass did not override forward)");
}

void Module::check_new_name(const std::string& name, const char* what) const {
  NN_CHECK(!name.empty(), ValueError, this->name(), ": ", what, " name must not be empty");
  NN_CHECK(name.find('.') == std::string::npos, ValueError, this->name(), ": ", what, " name '",
           name, "' must not contain '.'");
  auto taken = [&](const auto& list) {
    for (const auto& entry : list) {
      if (entry.first == name) return true;
    }
    return false;
  };
  NN_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_), ValueError, this->name(),
           ": cannot register ", what, " '", name,
           "': the name is already used by a parameter, buffer or submodule");
}

Variable Module::register_parameter(const std::string& name, Tensor data, bool requires_grad) {
  check_new_name(name, "parameter");
  NN_CHECK(data.defined(), ValueError, this->name(), ": parameter '", name, "' is undefined");
  Variable v(std::move(data), requires_grad);
  parameters_.emplace_back(name, v);
  return v;
}

Tensor& Module::register_buffer(const std::string& name, Tensor data) {
  check_new_name(name, "buffer");
  NN_CHECK(data.defined(), ValueError, this->name(), ": buffer '", name, "' is undefined");
  buffers_.emplace_back(name, std::move(data));
  return buffers_.back().second;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name, "submodule");
  NN_CHECK(module != nullptr, ValueError, this->name(), ": submodule '", name, "' is null");
  children_.emplace_back(name, std::move(module));
}

std::vector<std::pair<std::string, Variable>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Variable>> out;
  std::unordered_set<const void*> seen;
  walk(*this, "", [&](const std::string& prefix, const Module& m) {
    for (const auto& [name, v] : m.parameters_) {
      if (seen.insert(v.id()).second) out.emplace_back(join(prefix, name), v);
    }
  });
  return out;
}

std::vector<Variable> Module::parameters() const {
  std::vector<Variable> out;
  for (auto& [name, v] : named_parameters()) out.push_back(v);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  walk(*this, "", [&](const std::string& prefix, const Module& m) {
    for (const auto& [name, t] : m.buffers_) out.emplace_back(join(prefix, name), t);
  });
  return out;
}

std::vector<Tensor> Module::buffers() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_buffers()) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  return children_;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [name, m] : children_) out.push_back(m);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() {
  std::shared_ptr<Module> self = weak_from_this().lock();
  // Not held by a shared_ptr: an aliasing pointer with no owner (it never deletes).
  if (!self) self = std::shared_ptr<Module>(std::shared_ptr<Module>(), this);
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out{{"", self}};
  for (const auto& [name, child] : children_) {
    for (auto& [path, m] : child->named_modules()) out.emplace_back(join(name, path), m);
  }
  return out;
}

std::vector<std::shared_ptr<Module>> Module::modules() {
  std::vector<std::shared_ptr<Module>> out;
  for (auto& [name, m] : named_modules()) out.push_back(m);
  return out;
}

Module& Module::apply(const std::function<void(Module&)>& fn) {
  for (auto& [name, child] : children_) child->apply(fn);
  fn(*this);
  return *this;
}

Module& Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
  return *this;
}

Module& Module::to(Device device) {
  for (auto& [name, v] : parameters_) {
    Tensor grad = v.grad();
    v.data() = v.data().to(device);
    // set_grad checks the gradient against the new data, so the old one is dropped first.
    v.set_grad(Tensor());
    if (grad.defined()) v.set_grad(grad.to(device));
  }
  for (auto& [name, t] : buffers_) t = t.to(device);
  for (auto& [name, child] : children_) child->to(device);
  return *this;
}

Module& Module::to(Dtype dtype) {
  NN_CHECK(is_floating(dtype), DtypeError, name(), ".to: parameters must be floating, asked for ",
           dtype_name(dtype));
  for (auto& [name, v] : parameters_) {
    if (!is_floating(v.dtype())) continue;
    Tensor grad = v.grad();
    v.data() = v.data().to(dtype);
    v.set_grad(Tensor());
    if (grad.defined()) v.set_grad(grad.to(dtype));
  }
  for (auto& [name, t] : buffers_) {
    if (is_floating(t.dtype())) t = t.to(dtype);
  }
  for (auto& [name, child] : children_) child->to(dtype);
  return *this;
}

void Module::zero_grad(bool set_to_none) {
  for (auto& v : parameters()) v.zero_grad(set_to_none);
}

StateDict Module::state_dict() const {
  StateDict out;
  walk(*this, "", [&](const std::string& prefix, const Module& m) {
    for (const auto& [name, v] : m.parameters_) out.emplace_back(join(prefix, name), v.data());
    for (const auto& [name, t] : m.buffers_) out.emplace_back(join(prefix, name), t);
  });
  return out;
}

LoadReport Module::load_state_dict(const StateDict& state, bool strict) {
  return load_from(state, strict, "the state dict");
}

LoadReport Module::load_from(const StateDict& state, bool strict, const char* source) {
  // Destinations by path; a tensor shared by two paths is written once per path (same values).
  std::vector<std::pair<std::string, Tensor>> own = state_dict();
  std::map<std::string, size_t> own_index;
  for (size_t i = 0; i < own.size(); ++i) own_index.emplace(own[i].first, i);

  std::map<std::string, size_t> given;
  std::vector<std::string> duplicates, unexpected, mismatched;
  for (size_t i = 0; i < state.size(); ++i) {
    const auto& [name, t] = state[i];
    if (!given.emplace(name, i).second) {
      duplicates.push_back(name);
      continue;
    }
    auto it = own_index.find(name);
    if (it == own_index.end()) {
      unexpected.push_back(name);
      continue;
    }
    const Tensor& dst = own[it->second].second;
    if (!t.defined() || t.shape() != dst.shape()) {
      mismatched.push_back(name + " is " + shape_str(dst.shape()) + " in the module, " +
                           (t.defined() ? shape_str(t.shape()) : std::string("undefined")) +
                           " in " + source);
    }
  }
  std::vector<std::string> missing;
  for (const auto& [name, t] : own) {
    if (!given.count(name)) missing.push_back(name);
  }

  std::vector<std::string> problems;
  if (strict && !missing.empty()) problems.push_back("missing: " + list_names(missing));
  if (strict && !unexpected.empty()) problems.push_back("unexpected: " + list_names(unexpected));
  if (!mismatched.empty()) problems.push_back("shape mismatch: " + list_names(mismatched));
  if (!duplicates.empty()) problems.push_back("given twice: " + list_names(duplicates));
  if (!problems.empty()) {
    std::string msg;
    for (const auto& p : problems) msg += (msg.empty() ? "" : "; ") + p;
    NN_THROW(ValueError, "load_state_dict: ", msg);
  }

  for (auto& [name, dst] : own) {
    auto it = given.find(name);
    if (it != given.end()) dst.copy_(state[it->second].second);
  }
  return {std::move(missing), std::move(unexpected)};
}

void Module::save(const std::string& path) const { io::save_safetensors(path, state_dict()); }

LoadReport Module::load(const std::string& path, bool strict) {
  io::SafetensorsFile file = io::load_safetensors(path);
  return load_from(file.tensors, strict, "the file");
}

std::string Module::name() const {
  const char* mangled = typeid(*this).name();
  int status = 0;
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string full = status == 0 && demangled != nullptr ? demangled : mangled;
  std::free(demangled);
  // Keep what follows the last "::" outside template brackets: "ns::Net<x::Y>" -> "Net<x::Y>".
  size_t cut = 0;
  int depth = 0;
  for (size_t i = 0; i + 1 < full.size(); ++i) {
    if (full[i] == '<') ++depth;
    if (full[i] == '>') --depth;
    if (depth == 0 && full[i] == ':' && full[i + 1] == ':') cut = i + 2;
  }
  return full.substr(cut);
}

std::string Module::str() const {
  std::ostringstream os;
  os << name() << "(";
  if (children_.empty()) {
    os << extra_repr() << ")";
    return os.str();
  }
  os << "\n";
  const std::string extra = extra_repr();
  if (!extra.empty()) os << "  " << indent_tail(extra) << "\n";
  for (const auto& [child_name, child] : children_) {
    os << "  (" << child_name << "): " << indent_tail(child->str()) << "\n";
  }
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Module& m) { return os << m.str(); }

}  // namespace nn
