#include "layers/sequential.h"

#include <typeinfo>

#include "layers/activation.h"
#include "layers/linear.h"

namespace nn {

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const auto& m : modules) push_back(m);
}

Sequential::Sequential(std::vector<std::pair<std::string, std::shared_ptr<Module>>> named) {
  for (auto& [name, m] : named) push_back(name, std::move(m));
}

Sequential& Sequential::push_back(std::shared_ptr<Module> module) {
  return push_back(std::to_string(modules_.size()), std::move(module));
}

Sequential& Sequential::push_back(const std::string& name, std::shared_ptr<Module> module) {
  register_module(name, module);
  modules_.push_back(std::move(module));
  return *this;
}

std::shared_ptr<Module> Sequential::operator[](size_t i) const {
  NN_CHECK(i < modules_.size(), IndexError, "Sequential: index ", i, " is out of range for ",
           modules_.size(), " modules");
  return modules_[i];
}

Variable Sequential::forward(const Variable& x) {
  Variable y = x;
  for (size_t i = 0; i < modules_.size(); ++i) {
    if (i + 1 < modules_.size()) {
      // Exactly a Linear: a subclass may have changed what forward computes.
      Module& current = *modules_[i];
      auto* lin = typeid(current) == typeid(Linear) ? static_cast<Linear*>(&current) : nullptr;
      auto* act = dynamic_cast<const ActivationModule*>(modules_[i + 1].get());
      if (lin != nullptr && act != nullptr && lin->activation() == Activation::None) {
        if (auto fused = act->fused_activation()) {
          y = lin->forward_with(y, *fused);
          ++i;  // the activation ran inside the fused op
          continue;
        }
      }
    }
    y = modules_[i]->forward(y);
  }
  return y;
}

}  // namespace nn
