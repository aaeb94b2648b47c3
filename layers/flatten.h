// Flatten(start_dim, end_dim): merges dims start_dim..end_dim (negative counts from the end)
// into one, as PyTorch's nn.Flatten; the default keeps the batch dim: [N, C, H, W] -> [N, C*H*W].
// A view when the input allows it; the gradient flows back through it. IndexError for dims
// outside the input's rank (from the op).
#pragma once

#include <cstdint>
#include <string>

#include "layers/module.h"

namespace nn {

class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1)
      : start_dim_(start_dim), end_dim_(end_dim) {}

  Variable forward(const Variable& x) override;

  std::string name() const override { return "Flatten"; }
  std::string extra_repr() const override {
    return "start_dim=" + std::to_string(start_dim_) + ", end_dim=" + std::to_string(end_dim_);
  }

 private:
  int64_t start_dim_;
  int64_t end_dim_;
};

}  // namespace nn
