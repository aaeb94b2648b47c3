#include "layers/dropout.h"

#include <sstream>

#include "core/error.h"
#include "graph/functions.h"

namespace nn {
namespace {

// One draw from the default generator: models built after manual_seed(s) get the same masks.
uint64_t seed_from_default() {
  Generator& g = default_generator();
  const uint64_t offset = g.next_offset();
  const Philox4x32 r = philox4x32_10(g.seed(), offset, 0);
  return (uint64_t(r.v[1]) << 32) | r.v[0];
}

}  // namespace

Dropout::Dropout(double p, std::optional<uint64_t> seed)
    : p_(p), gen_(seed ? *seed : seed_from_default()) {
  NN_CHECK(p >= 0.0 && p <= 1.0, ValueError, "Dropout: p must be in [0, 1], got ", p);
}

Variable Dropout::forward(const Variable& x) { return dropout(x, p_, is_training(), &gen_); }

std::string Dropout::extra_repr() const {
  std::ostringstream os;
  os << "p=" << p_;
  return os.str();
}

}  // namespace nn
