// The standalone fused bias + activation and activation backward on the CPU: every activation and
// floating dtype against a float64 reference composed of add and the unary ops (awkward shapes,
// dims -1, 0 and 1, non-contiguous inputs); what `saved` holds (the output itself, the
// pre-activation, or nothing); the differentiable form against the same function composed of
// Variables; and the errors of bad arguments.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "graph/functions.h"
#include "kernels/nn_ops.h"
#include "kernels/ops.h"
#include "tests/op_harness.h"
#include "tests/test_util.h"

namespace nn {
namespace {

using test::cpu_tolerance;
using test::float_dtypes;
using test::max_rel;

const std::vector<Activation> kActs = {Activation::None,     Activation::Relu, Activation::Gelu,
                                       Activation::GeluTanh, Activation::Silu, Activation::Tanh,
                                       Activation::Sigmoid};

// A bias of `channels` broadcast along `dim` of a tensor of rank `rank`: a view [1, .., C, .., 1].
Tensor bias_view(const Tensor& b, int64_t rank, int64_t dim) {
  Shape s(size_t(rank), 1);
  s[size_t(dim < 0 ? dim + rank : dim)] = b.numel();
  return b.view(s);
}

// act(x + b) and the pre-activation, in float64 from ops the op table tests elsewhere.
std::pair<Tensor, Tensor> reference(const Tensor& x, const Tensor& b, Activation act, int64_t dim) {
  const Tensor x64 = x.to(Dtype::Float64), b64 = b.to(Dtype::Float64);
  const Tensor z = add(x64, bias_view(b64, x.dim(), dim));
  const Tensor y = act == Activation::None ? z : unary(activation_unary_op(act), z);
  return {y, z};
}

struct Case {
  Shape shape;
  int64_t dim;
};

// Sizes of 1, primes and sizes that are no multiple of a vector width.
const std::vector<Case> kCases = {{{1}, -1},         {{7}, 0},          {{3, 1}, -1},
                                  {{5, 13}, -1},     {{13, 5}, 0},      {{2, 3, 17}, 1},
                                  {{2, 7, 3, 5}, 1}, {{1, 1, 1, 1}, 1}, {{4, 31, 2, 3}, -1},
                                  {{3, 1031}, -1},   {{2, 5, 8, 8}, 1}};

TEST(BiasActivation, MatchesComposedReference) {
  for (Dtype dt : float_dtypes()) {
    for (Activation act : kActs) {
      uint64_t seed = 1;
      for (const Case& c : kCases) {
        Generator gen(seed++);
        const int64_t d = c.dim < 0 ? c.dim + int64_t(c.shape.size()) : c.dim;
        const Tensor x = randn(c.shape, {dt}, &gen) * 2.0;
        const Tensor b = randn({c.shape[size_t(d)]}, {dt}, &gen);
        Tensor saved;
        const Tensor y = bias_activation(x, b, act, c.dim, &saved);
        const auto [ref_y, ref_z] = reference(x, b, act, c.dim);
        const std::string ctx = std::string(dtype_name(dt)) + " " + activation_name(act) + " " +
                                shape_str(c.shape) + " dim " + std::to_string(c.dim);
        EXPECT_EQ(y.dtype(), dt) << ctx;
        EXPECT_EQ(y.shape(), c.shape) << ctx;
        // Floor 0.01: the float32 GELU tails (|y| ~ 1e-3) carry a few ulps of absolute error.
        EXPECT_LE(max_rel(y, ref_y, 1e-2), cpu_tolerance(dt)) << ctx;
        if (activation_saved(act) == ActivationSaved::PreActivation) {
          EXPECT_LE(max_rel(saved, ref_z), cpu_tolerance(dt)) << ctx << " saved";
        }
      }
    }
  }
}

TEST(BiasActivation, NonContiguousInputAndNoBias) {
  Generator gen(5);
  // x is a transposed view: the values the op sees are those of the view.
  const Tensor base = randn({9, 6}, {Dtype::Float32}, &gen);
  const Tensor x = base.t();  // [6, 9], strides (1, 6)
  ASSERT_FALSE(x.is_contiguous());
  const Tensor b = randn({9}, {Dtype::Float32}, &gen);
  for (Activation act : kActs) {
    const Tensor y = bias_activation(x, b, act, -1);
    EXPECT_LE(max_rel(y, reference(x, b, act, -1).first), 1e-5) << activation_name(act);
    const Tensor y0 = bias_activation(x, Tensor(), act, 1);
    const Tensor z = x.to(Dtype::Float64);
    const Tensor want = act == Activation::None ? z : unary(activation_unary_op(act), z);
    EXPECT_LE(max_rel(y0, want), 1e-5) << activation_name(act) << " without bias";
  }
}

TEST(BiasActivation, SavedIsWhatBackwardReads) {
  Generator gen(9);
  const Tensor x = randn({4, 6}, {Dtype::Float32}, &gen), b = randn({6}, {Dtype::Float32}, &gen);
  for (Activation act : kActs) {
    Tensor saved = ones({1});  // must be replaced
    const Tensor y = bias_activation(x, b, act, -1, &saved);
    switch (activation_saved(act)) {
      case ActivationSaved::Nothing:
        EXPECT_FALSE(saved.defined()) << activation_name(act);
        break;
      case ActivationSaved::Output:
        // The output itself: same storage and view, no copy.
        ASSERT_TRUE(saved.defined()) << activation_name(act);
        EXPECT_EQ(saved.storage(), y.storage()) << activation_name(act);
        EXPECT_EQ(saved.data_ptr(), y.data_ptr()) << activation_name(act);
        break;
      case ActivationSaved::PreActivation:
        ASSERT_TRUE(saved.defined()) << activation_name(act);
        EXPECT_NE(saved.storage(), y.storage()) << activation_name(act);
        EXPECT_LE(max_rel(saved, add(x, b)), 1e-6) << activation_name(act);
        break;
    }
  }
}

TEST(ActivationBackward, MatchesUnaryBackward) {
  for (Dtype dt : float_dtypes()) {
    for (Activation act : kActs) {
      if (act == Activation::None) continue;
      for (const Shape& s : std::vector<Shape>{{1}, {17}, {3, 1031}, {2, 3, 5, 7}}) {
        Generator gen(uint64_t(shape_numel(s)));
        const Tensor x = randn(s, {dt}, &gen) * 2.0;
        const Tensor b = randn({s.back()}, {dt}, &gen);
        const Tensor g = randn(s, {dt}, &gen);
        Tensor saved;
        bias_activation(x, b, act, -1, &saved);
        const Tensor dx = activation_backward(g, saved, act);
        // g * act'(z) written from what was saved (y or z, as stored in dt), in float64.
        const Tensor s64 = saved.to(Dtype::Float64), g64 = g.to(Dtype::Float64);
        Tensor want;
        if (act == Activation::Tanh)
          want = mul(g64, add(mul(mul(s64, s64), -1.0), 1.0));
        else if (act == Activation::Sigmoid)
          want = mul(g64, mul(s64, add(mul(s64, -1.0), 1.0)));
        else  // relu: y > 0 exactly where z > 0
          want = unary_backward(activation_unary_op(act), g64, s64);
        const std::string ctx =
            std::string(dtype_name(dt)) + " " + activation_name(act) + " " + shape_str(s);
        EXPECT_EQ(dx.dtype(), dt) << ctx;
        EXPECT_LE(max_rel(dx, want, 1.0), cpu_tolerance(dt)) << ctx;
        if (dt == Dtype::Float64) {
          // And it is the derivative at z, whichever of y and z was kept.
          const Tensor exact =
              unary_backward(activation_unary_op(act), g64, add(x, b).to(Dtype::Float64));
          EXPECT_LE(max_rel(dx, exact, 1.0), 1e-10) << ctx << " vs the derivative at z";
        }
      }
    }
  }
}

TEST(ActivationBackward, NoneReturnsGradAndStridedInputsWork) {
  Generator gen(3);
  const Tensor g = randn({5, 4}, {Dtype::Float32}, &gen).t();
  const Tensor dx = activation_backward(g, Tensor(), Activation::None);
  EXPECT_TRUE(dx.is_contiguous());
  EXPECT_EQ(dx.to_vector<float>(), g.contiguous().to_vector<float>());
  const Tensor z = randn({5, 4}, {Dtype::Float32}, &gen).t();
  const Tensor got = activation_backward(g, z, Activation::Silu);
  EXPECT_TRUE(got.is_contiguous());
  EXPECT_LE(max_rel(got, unary_backward(UnaryOp::Silu, g, z)), 1e-6);
}

// The fused Variable op against the same function composed of add and activation: values and
// both gradients, the bias along the channels of an NCHW input.
TEST(BiasActivation, VariableMatchesComposition) {
  Generator gen(21);
  const Tensor xd = randn({2, 3, 4, 5}, {Dtype::Float32}, &gen);
  const Tensor bd = randn({3}, {Dtype::Float32}, &gen);
  const Tensor gy = randn({2, 3, 4, 5}, {Dtype::Float32}, &gen);
  for (Activation act : kActs) {
    Variable x1(xd, true), b1(bd, true), x2(xd, true), b2(bd, true);
    Variable y1 = bias_activation(x1, b1, act, 1);
    Variable y2 = activation(act, add(x2, view(b2, {1, 3, 1, 1})));
    y1.backward(gy);
    y2.backward(gy);
    EXPECT_LE(max_rel(y1.data(), y2.data()), 1e-6) << activation_name(act);
    EXPECT_LE(max_rel(x1.grad(), x2.grad()), 1e-5) << activation_name(act) << " dx";
    EXPECT_LE(max_rel(b1.grad(), b2.grad()), 1e-5) << activation_name(act) << " db";
  }
  // Without a gradient anywhere no node is recorded.
  Variable plain = bias_activation(Variable(xd, false), Variable(bd, false), Activation::Gelu, 1);
  EXPECT_FALSE(plain.requires_grad());
}

TEST(BiasActivation, BadArguments) {
  const Tensor x = ones({2, 3, 4}), b3 = ones({3}), b4 = ones({4});
  std::string m = test::message_of<ShapeError>([&] { bias_activation(x, b3, Activation::Relu); });
  EXPECT_NE(m.find("bias_activation"), std::string::npos) << m;
  EXPECT_NE(m.find("[4]"), std::string::npos) << m;
  m = test::message_of<ShapeError>([&] { bias_activation(x, b4, Activation::Relu, 3); });
  EXPECT_NE(m.find("dim 3"), std::string::npos) << m;
  m = test::message_of<ShapeError>([&] { bias_activation(x, b4, Activation::Relu, -4); });
  EXPECT_NE(m.find("bias_activation"), std::string::npos) << m;
  m = test::message_of<ShapeError>([&] { bias_activation(x, ones({2, 2}), Activation::None, 0); });
  EXPECT_NE(m.find("bias_activation"), std::string::npos) << m;
  m = test::message_of<ShapeError>(
      [&] { bias_activation(ones(Shape{}), ones({1}), Activation::Tanh); });
  EXPECT_NE(m.find("bias_activation"), std::string::npos) << m;
  m = test::message_of<DtypeError>(
      [&] { bias_activation(x, b4.to(Dtype::Float64), Activation::Relu); });
  EXPECT_NE(m.find("bias_activation"), std::string::npos) << m;
  m = test::message_of<DtypeError>(
      [&] { bias_activation(x.to(Dtype::Int64), b4.to(Dtype::Int64), Activation::Relu); });
  EXPECT_NE(m.find("bias_activation"), std::string::npos) << m;

  m = test::message_of<ValueError>([&] { activation_backward(x, Tensor(), Activation::Gelu); });
  EXPECT_NE(m.find("activation_backward"), std::string::npos) << m;
  EXPECT_NE(m.find("gelu"), std::string::npos) << m;
  m = test::message_of<ShapeError>([&] { activation_backward(x, ones({2, 3}), Activation::Relu); });
  EXPECT_NE(m.find("activation_backward"), std::string::npos) << m;
  m = test::message_of<DtypeError>(
      [&] { activation_backward(x, x.to(Dtype::Float64), Activation::Tanh); });
  EXPECT_NE(m.find("activation_backward"), std::string::npos) << m;
  m = test::message_of<DtypeError>(
      [&] { activation_backward(x.to(Dtype::Int64), x.to(Dtype::Int64), Activation::Sigmoid); });
  EXPECT_NE(m.find("activation_backward"), std::string::npos) << m;
}

TEST(BiasActivation, EmptyInput) {
  const Tensor x = ones({0, 5}), b = ones({5});
  Tensor saved;
  const Tensor y = bias_activation(x, b, Activation::Silu, -1, &saved);
  EXPECT_EQ(y.shape(), (Shape{0, 5}));
  EXPECT_EQ(saved.shape(), (Shape{0, 5}));
  EXPECT_EQ(activation_backward(y, saved, Activation::Silu).shape(), (Shape{0, 5}));
}

}  // namespace
}  // namespace nn
