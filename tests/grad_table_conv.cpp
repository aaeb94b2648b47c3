// Gradient-table rows for the convolutional-network ops (tests/grad_table.h): conv2d over
// stride / padding / dilation / groups / odd sizes, max and avg pooling, adaptive average
// pooling, and batch norm in training and evaluation with and without gamma/beta and the fused
// ReLU.
#include <string>

#include "tests/grad_table_util.h"

namespace nn::test {

namespace {

std::string pair_str(const std::array<int64_t, 2>& v) {
  return std::to_string(v[0]) + "x" + std::to_string(v[1]);
}

// An input extent from the smallest that leaves one output position up to a few strides more.
int64_t extent(Rng& r, int64_t kernel, int64_t dilation, int64_t padding, int64_t stride) {
  const int64_t least = std::max<int64_t>(dilation * (kernel - 1) + 1 - 2 * padding, 1);
  return least + irand(r, 0, 2 * stride + 1);
}

// ---- conv2d -----------------------------------------------------------------------------------

struct ConvConfig {
  int64_t c, o, kh, kw;
  Conv2dOptions opt;
  const char* what;
};

const std::vector<ConvConfig>& conv_configs() {
  static const std::vector<ConvConfig> kConfigs = {
      {2, 3, 3, 3, {{1, 1}, {0, 0}, {1, 1}, 1}, "plain 3x3"},
      {2, 2, 3, 2, {{2, 1}, {1, 0}, {1, 1}, 1}, "stride 2x1, padding 1x0, 3x2 kernel"},
      {3, 2, 2, 2, {{1, 1}, {1, 1}, {2, 1}, 1}, "dilation 2x1, padding 1"},
      {4, 6, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 2}, "groups 2"},
      {3, 3, 3, 3, {{2, 2}, {1, 1}, {1, 1}, 3}, "depthwise, stride 2"},
      {3, 6, 3, 1, {{1, 2}, {1, 0}, {1, 1}, 3}, "depthwise with multiplier 2, 3x1 kernel"},
      {3, 4, 1, 1, {{1, 1}, {0, 0}, {1, 1}, 1}, "1x1"},
      {2, 4, 3, 3, {{3, 2}, {2, 1}, {2, 2}, 2}, "stride 3x2, padding 2x1, dilation 2, groups 2"},
      {2, 2, 5, 4, {{1, 1}, {0, 0}, {1, 1}, 1}, "kernel = input"},
  };
  return kConfigs;
}

// Trial t: configuration t % 9, with a bias on the first pass over them. Batch 1 or 2; the
// weight is strided half the time.
GradInstance conv2d_case(Rng& r, int trial) {
  const std::vector<ConvConfig>& configs = conv_configs();
  const ConvConfig& cfg = configs[size_t(trial) % configs.size()];
  const bool has_bias = size_t(trial) / configs.size() % 2 == 0;
  const Conv2dOptions opt = cfg.opt;
  const bool exact = std::string(cfg.what) == "kernel = input";
  const int64_t h =
      exact ? cfg.kh : extent(r, cfg.kh, opt.dilation[0], opt.padding[0], opt.stride[0]);
  const int64_t w =
      exact ? cfg.kw : extent(r, cfg.kw, opt.dilation[1], opt.padding[1], opt.stride[1]);
  std::vector<Tensor> inputs = {
      uniform(r, {irand(r, 1, 2), cfg.c, h, w}, -1.0, 1.0),
      maybe_strided(r, uniform(r, {cfg.o, cfg.c / opt.groups, cfg.kh, cfg.kw}, -1.0, 1.0))};
  if (has_bias) inputs.push_back(uniform(r, {cfg.o}, -1.0, 1.0));
  return instance(
      inputs,
      [opt, has_bias](const Vars& v) {
        return conv2d(v[0], v[1], has_bias ? v[2] : Variable(), opt);
      },
      std::string(cfg.what) + (has_bias ? ", bias" : ", no bias"));
}

// ---- pooling ----------------------------------------------------------------------------------

struct PoolConfig {
  Pool2dOptions opt;
  const char* what;
};

Pool2dOptions pool_opt(std::array<int64_t, 2> k, std::array<int64_t, 2> s, std::array<int64_t, 2> p,
                       std::array<int64_t, 2> d, bool ceil, bool include_pad = true) {
  Pool2dOptions o;
  o.kernel = k;
  o.stride = s;
  o.padding = p;
  o.dilation = d;
  o.ceil_mode = ceil;
  o.count_include_pad = include_pad;
  return o;
}

// With dilation the input spans the dilated kernel: a window of padding only would give -inf.
GradInstance pool_input(Rng& r, const Pool2dOptions& o, bool distinct_values) {
  Shape shape = {irand(r, 1, 2), irand(r, 1, 3)};
  for (size_t i = 0; i < 2; ++i) {
    const int64_t stride = o.stride[i] == 0 ? o.kernel[i] : o.stride[i];
    const int64_t padding = o.dilation[i] > 1 ? 0 : o.padding[i];
    shape.push_back(extent(r, o.kernel[i], o.dilation[i], padding, stride));
  }
  // Distinct values: a maximum is never tied, so it moves with no finite perturbation.
  return instance({distinct_values ? maybe_strided(r, distinct(r, shape))
                                   : maybe_strided(r, uniform(r, shape, -1.0, 1.0))},
                  {});
}

GradInstance max_pool_case(Rng& r, int trial) {
  static const std::vector<PoolConfig> kConfigs = {
      {pool_opt({2, 2}, {0, 0}, {0, 0}, {1, 1}, false), "2x2"},
      {pool_opt({3, 3}, {2, 2}, {1, 1}, {1, 1}, false), "3x3 stride 2 padding 1"},
      {pool_opt({3, 2}, {1, 2}, {1, 0}, {1, 1}, false), "3x2 stride 1x2 padding 1x0"},
      {pool_opt({2, 2}, {1, 1}, {0, 1}, {2, 2}, false), "dilation 2"},
      {pool_opt({2, 2}, {2, 2}, {0, 0}, {1, 1}, true), "2x2 ceil_mode"},
      {pool_opt({3, 3}, {2, 2}, {1, 1}, {1, 1}, true), "3x3 stride 2 padding 1 ceil_mode"},
  };
  const PoolConfig& cfg = kConfigs[size_t(trial) % kConfigs.size()];
  GradInstance g = pool_input(r, cfg.opt, true);
  g.fn = [o = cfg.opt](const Vars& v) { return max_pool2d(v[0], o); };
  g.desc += std::string(", ") + cfg.what;
  return g;
}

GradInstance avg_pool_case(Rng& r, int trial) {
  static const std::vector<PoolConfig> kConfigs = {
      {pool_opt({2, 2}, {0, 0}, {0, 0}, {1, 1}, false), "2x2"},
      {pool_opt({3, 3}, {2, 2}, {1, 1}, {1, 1}, false), "3x3 stride 2 padding 1"},
      {pool_opt({3, 3}, {2, 2}, {1, 1}, {1, 1}, false, false),
       "3x3 stride 2 padding 1 without the padding in the count"},
      {pool_opt({3, 2}, {1, 2}, {1, 1}, {1, 1}, false), "3x2 stride 1x2 padding 1"},
      {pool_opt({2, 2}, {2, 2}, {1, 1}, {1, 1}, true), "2x2 padding 1 ceil_mode"},
      {pool_opt({3, 3}, {2, 2}, {1, 0}, {1, 1}, true, false),
       "3x3 stride 2 padding 1x0 ceil_mode without the padding in the count"},
  };
  const PoolConfig& cfg = kConfigs[size_t(trial) % kConfigs.size()];
  GradInstance g = pool_input(r, cfg.opt, false);
  g.fn = [o = cfg.opt](const Vars& v) { return avg_pool2d(v[0], o); };
  g.desc += std::string(", ") + cfg.what;
  return g;
}

// Output sizes that divide the input, do not, and exceed it.
GradInstance adaptive_pool_case(Rng& r, int) {
  const std::array<int64_t, 2> out = {irand(r, 1, 4), irand(r, 1, 4)};
  const Shape shape = {irand(r, 1, 2), irand(r, 1, 3), irand(r, 1, 7), irand(r, 1, 7)};
  return instance(
      {maybe_strided(r, uniform(r, shape, -1.0, 1.0))},
      [out](const Vars& v) { return adaptive_avg_pool2d(v[0], out); }, "output " + pair_str(out));
}

// ---- batch norm -------------------------------------------------------------------------------

// Trial t: training on even t, evaluation on odd; affine parameters (t / 2) % 3: none, gamma
// only, gamma and beta; the fused relu on (t / 6) % 2. x is [N, C], [N, C, L] or [N, C, H, W].
// With relu, inputs are redrawn until every pre-activation is 0.02 or more from the kink.
GradInstance batch_norm_case(Rng& r, int trial) {
  const bool training = trial % 2 == 0;
  const int affine = (trial / 2) % 3;
  const bool relu = (trial / 6) % 2 == 1;
  const Activation act = relu ? Activation::Relu : Activation::None;
  const int64_t c = irand(r, 1, 3);
  Shape shape = {irand(r, 2, 3), c};
  for (int64_t d = 0, extra = irand(r, 0, 2); d < extra; ++d) shape.push_back(irand(r, 1, 3));
  std::vector<Tensor> inputs;
  for (int attempt = 0; attempt < 200; ++attempt) {
    inputs = {maybe_strided(r, uniform(r, shape, -2.0, 2.0)), uniform(r, {c}, -0.5, 0.5),
              uniform(r, {c}, 0.5, 2.0)};  // x, running_mean, running_var
    if (affine >= 1) inputs.push_back(uniform(r, {c}, 0.5, 1.5));
    if (affine >= 2) inputs.push_back(uniform(r, {c}, -0.5, 0.5));
    if (!relu) break;
    Tensor rm = inputs[1].clone(), rv = inputs[2].clone();
    const Tensor pre = batch_norm(inputs[0], affine >= 1 ? inputs[3] : Tensor(),
                                  affine >= 2 ? inputs[4] : Tensor(), rm, rv, training);
    const std::vector<double> p = pre.to_vector<double>();
    if (std::all_of(p.begin(), p.end(), [](double v) { return std::abs(v) > 0.02; })) break;
  }
  GradInstance g = instance(
      inputs,
      [training, affine, act](const Vars& v) {
        // Clones: the forward updates the running statistics in training, and the inputs stay
        // as drawn.
        Tensor rm = v[1].data().clone(), rv = v[2].data().clone();
        return batch_norm(v[0], affine >= 1 ? v[3] : Variable(), affine >= 2 ? v[4] : Variable(),
                          rm, rv, training, 0.1, 1e-5, act);
      },
      std::string(training ? "training" : "evaluation") +
          (affine == 0   ? ", no gamma or beta"
           : affine == 1 ? ", gamma"
                         : ", gamma and beta") +
          (relu ? ", relu" : ""));
  g.options.differentiable.assign(inputs.size(), true);
  g.options.differentiable[1] = g.options.differentiable[2] = false;
  return g;
}

}  // namespace

void add_conv_rows(std::vector<GradRow>& t) {
  t.push_back({"conv2d",
               {"conv2d(Variable, Variable, Variable, Conv2dOptions)"},
               conv2d_case,
               int(2 * conv_configs().size())});
  t.push_back({"max_pool2d", {"max_pool2d(Variable, Pool2dOptions)"}, max_pool_case, 12});
  t.push_back({"avg_pool2d", {"avg_pool2d(Variable, Pool2dOptions)"}, avg_pool_case, 12});
  t.push_back({"adaptive_avg_pool2d",
               {"adaptive_avg_pool2d(Variable, array<int64_t, 2>)"},
               adaptive_pool_case,
               8});
  t.push_back({"batch_norm",
               {"batch_norm(Variable, Variable, Variable, Tensor, Tensor, bool, double, double, "
                "Activation)"},
               batch_norm_case,
               12});
}

}  // namespace nn::test
