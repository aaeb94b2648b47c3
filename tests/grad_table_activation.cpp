// Gradient-table rows for the standalone fused bias + activation (tests/grad_table.h).
#include "tests/grad_table_util.h"

namespace nn::test {

namespace {

// Trial t: activation t % 7; bias along dim -1 of a random 1-D to 3-D input on the first pass
// over the activations, along dim 1 of a 4-D NCHW input on the second. x is drawn as z - b with
// |z| in [0.05, 2], so every pre-activation stays clear of relu's kink.
GradInstance bias_activation_case(Rng& r, int trial) {
  const Activation act = all_activations()[size_t(trial % 7)];
  const bool nchw = (trial / 7) % 2 == 1;
  Shape xs;
  int64_t dim = -1;
  if (nchw) {
    xs = {irand(r, 1, 3), irand(r, 1, 4), irand(r, 1, 3), irand(r, 1, 3)};
    dim = 1;
  } else {
    xs = rand_shape(r, 0, 2);
    xs.push_back(irand(r, 1, 5));
  }
  const int64_t channels = xs[size_t(nchw ? 1 : xs.size() - 1)];
  const Tensor b = uniform(r, {channels}, -1.0, 1.0);
  const Tensor z = away(r, xs, 0.05, 2.0);
  Tensor x = sub(z, nchw ? b.view({1, channels, 1, 1}) : b);
  x = maybe_strided(r, x);
  return instance(
      {x, b}, [act, dim](const Vars& v) { return bias_activation(v[0], v[1], act, dim); },
      std::string(activation_name(act)) + ", dim " + std::to_string(dim));
}

}  // namespace

void add_activation_rows(std::vector<GradRow>& t) {
  t.push_back({"bias_activation",
               {"bias_activation(Variable, Variable, Activation, int64_t)"},
               bias_activation_case,
               28});
}

}  // namespace nn::test
