// Sequential: a chain of modules, each fed the previous one's output. Unnamed modules are
// registered as "0", "1", ... (their position); named ones under their names.
//
// Fusion: a Linear without an activation immediately followed by an activation module that has
// a fused form (ActivationModule::fused_activation) runs as one fused linear op with that
// activation, and the activation module is skipped. Values and gradients are those of the
// unfused chain.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "layers/module.h"

namespace nn {

class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  explicit Sequential(std::vector<std::pair<std::string, std::shared_ptr<Module>>> named);

  // Appends under the next position ("3") or under `name`. Returns *this for chaining.
  Sequential& push_back(std::shared_ptr<Module> module);
  Sequential& push_back(const std::string& name, std::shared_ptr<Module> module);

  Variable forward(const Variable& x) override;

  size_t size() const { return modules_.size(); }
  bool empty() const { return modules_.empty(); }
  // The i-th module (IndexError when out of range).
  std::shared_ptr<Module> operator[](size_t i) const;
  // The i-th module as M (ValueError when it is another type).
  template <class M>
  std::shared_ptr<M> at(size_t i) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[i]);
    NN_CHECK(m != nullptr, ValueError, "Sequential::at: module ", i, " is a ", (*this)[i]->name(),
             ", not the type asked for");
    return m;
  }

  std::string name() const override { return "Sequential"; }

 private:
  std::vector<std::shared_ptr<Module>> modules_;
};

}  // namespace nn
