// Dropout(p): inverted dropout. In training mode each element is zeroed with probability p and
// the others are scaled by 1/(1-p); in eval mode (or with p == 0) it is the identity.
//
// The mask comes from the module's own Philox generator, so the same seed gives the same mask
// on the CPU and on CUDA. Without a seed the generator is seeded from default_generator() (one
// draw), so manual_seed() before building a model makes its dropout reproducible too.
// p must be in [0, 1] (ValueError); p == 1 zeroes everything in training.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/rng.h"
#include "layers/module.h"

namespace nn {

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, std::optional<uint64_t> seed = std::nullopt);

  Variable forward(const Variable& x) override;

  double p() const { return p_; }
  // Reseed it (manual_seed) to replay the same sequence of masks.
  Generator& generator() { return gen_; }

  std::string name() const override { return "Dropout"; }
  std::string extra_repr() const override;

 private:
  double p_;
  Generator gen_;
};

}  // namespace nn
