// Scalar maths of the elementwise ops, written once and compiled into both backends (host and
// device), so the CPU oracle and the CUDA kernels cannot drift apart. A = the accumulation type
// (float for float32 and the half types, double for float64).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/macros.h"
#include "core/rng.h"
#include "kernels/ops.h"

namespace nn::math {

// Precision-matched wrappers: expf for float, exp for double, on host and device alike.
// int64 maths in two's complement through uint64_t, so overflow wraps (as in PyTorch) instead of
// being undefined. One definition for the CPU loops and the CUDA functors.
template <UnaryOp Op>
NN_HOST_DEVICE NN_INLINE int64_t int_unary(int64_t x) {
  const uint64_t u = static_cast<uint64_t>(x);
  if constexpr (Op == UnaryOp::Neg)
    return static_cast<int64_t>(0 - u);
  else if constexpr (Op == UnaryOp::Abs)
    return x < 0 ? static_cast<int64_t>(0 - u) : x;
  else
    return int64_t(x > 0) - int64_t(x < 0);  // Sign
}

template <BinaryOp Op>
NN_HOST_DEVICE NN_INLINE int64_t int_binary(int64_t a, int64_t b) {
  const uint64_t ua = static_cast<uint64_t>(a), ub = static_cast<uint64_t>(b);
  if constexpr (Op == BinaryOp::Add)
    return static_cast<int64_t>(ua + ub);
  else if constexpr (Op == BinaryOp::Sub)
    return static_cast<int64_t>(ua - ub);
  else if constexpr (Op == BinaryOp::Mul)
    return static_cast<int64_t>(ua * ub);
  else if constexpr (Op == BinaryOp::Maximum)
    return a > b ? a : b;
  else
    return a < b ? a : b;  // Minimum
}

NN_HOST_DEVICE NN_INLINE float exp_(float x) { return ::expf(x); }
NN_HOST_DEVICE NN_INLINE double exp_(double x) { return ::exp(x); }
NN_HOST_DEVICE NN_INLINE float log_(float x) { return ::logf(x); }
NN_HOST_DEVICE NN_INLINE double log_(double x) { return ::log(x); }
NN_HOST_DEVICE NN_INLINE float log1p_(float x) { return ::log1pf(x); }
NN_HOST_DEVICE NN_INLINE double log1p_(double x) { return ::log1p(x); }
NN_HOST_DEVICE NN_INLINE float sqrt_(float x) { return ::sqrtf(x); }
NN_HOST_DEVICE NN_INLINE double sqrt_(double x) { return ::sqrt(x); }
NN_HOST_DEVICE NN_INLINE float tanh_(float x) { return ::tanhf(x); }
NN_HOST_DEVICE NN_INLINE double tanh_(double x) { return ::tanh(x); }
NN_HOST_DEVICE NN_INLINE float erf_(float x) { return ::erff(x); }
NN_HOST_DEVICE NN_INLINE double erf_(double x) { return ::erf(x); }
NN_HOST_DEVICE NN_INLINE float pow_(float x, float y) { return ::powf(x, y); }
NN_HOST_DEVICE NN_INLINE double pow_(double x, double y) { return ::pow(x, y); }
NN_HOST_DEVICE NN_INLINE float abs_(float x) { return ::fabsf(x); }
NN_HOST_DEVICE NN_INLINE double abs_(double x) { return ::fabs(x); }
NN_HOST_DEVICE NN_INLINE float fma_(float x, float y, float z) { return ::fmaf(x, y, z); }
NN_HOST_DEVICE NN_INLINE double fma_(double x, double y, double z) { return ::fma(x, y, z); }
template <class A>
NN_HOST_DEVICE NN_INLINE bool isnan_(A x) {
  return x != x;
}

template <class A>
NN_HOST_DEVICE NN_INLINE A sigmoid_(A x) {
  // Written so neither branch overflows: exp of a non-positive number only.
  if (x >= A(0)) {
    A z = exp_(-x);
    return A(1) / (A(1) + z);
  }
  A z = exp_(x);
  return z / (A(1) + z);
}

template <class A> constexpr A kSqrt2OverPi = A(0.79788456080286535587989211986876);
template <class A> constexpr A kInvSqrt2 = A(0.70710678118654752440084436210485);
template <class A> constexpr A kInvSqrt2Pi = A(0.39894228040143267793994605993438);
template <class A> constexpr A kGeluCubic = A(0.044715);

// op(x; alpha, beta), see UnaryOp in kernels/ops.h for the meaning of alpha and beta.
template <UnaryOp Op, class A>
NN_HOST_DEVICE NN_INLINE A unary_fn(A x, A alpha, A beta) {
  if constexpr (Op == UnaryOp::Neg) return -x;
  else if constexpr (Op == UnaryOp::Exp) return exp_(x);
  else if constexpr (Op == UnaryOp::Log) return log_(x);
  else if constexpr (Op == UnaryOp::Sqrt) return sqrt_(x);
  else if constexpr (Op == UnaryOp::Rsqrt) return A(1) / sqrt_(x);
  else if constexpr (Op == UnaryOp::Abs) return abs_(x);
  else if constexpr (Op == UnaryOp::Sign) return isnan_(x) ? x : A((x > A(0)) - (x < A(0)));
  else if constexpr (Op == UnaryOp::Pow) return pow_(x, alpha);
  else if constexpr (Op == UnaryOp::Clamp) return isnan_(x) ? x : (x < alpha ? alpha : (x > beta ? beta : x));
  else if constexpr (Op == UnaryOp::Relu) return x > A(0) ? x : (isnan_(x) ? x : A(0));
  else if constexpr (Op == UnaryOp::LeakyRelu) return x > A(0) ? x : x * alpha;
  else if constexpr (Op == UnaryOp::Sigmoid) return sigmoid_(x);
  else if constexpr (Op == UnaryOp::Tanh) return tanh_(x);
  else if constexpr (Op == UnaryOp::Gelu) return A(0.5) * x * (A(1) + erf_(x * kInvSqrt2<A>));
  else if constexpr (Op == UnaryOp::GeluTanh) {
    A inner = kSqrt2OverPi<A> * (x + kGeluCubic<A> * x * x * x);
    return A(0.5) * x * (A(1) + tanh_(inner));
  } else if constexpr (Op == UnaryOp::Silu) return x * sigmoid_(x);
  else if constexpr (Op == UnaryOp::Softplus) {
    A bx = alpha * x;
    return bx > beta ? x : log1p_(exp_(bx)) / alpha;
  } else {
    static_assert(Op == UnaryOp::Neg, "unary_fn: op missing");
    return x;
  }
}

// d op(x)/dx times grad.
template <UnaryOp Op, class A>
NN_HOST_DEVICE NN_INLINE A unary_grad_fn(A grad, A x, A alpha, A beta) {
  if constexpr (Op == UnaryOp::Neg) return -grad;
  else if constexpr (Op == UnaryOp::Exp) return grad * exp_(x);
  else if constexpr (Op == UnaryOp::Log) return grad / x;
  else if constexpr (Op == UnaryOp::Sqrt) return grad * A(0.5) / sqrt_(x);
  else if constexpr (Op == UnaryOp::Rsqrt) return grad * A(-0.5) / (x * sqrt_(x));
  else if constexpr (Op == UnaryOp::Abs) return grad * unary_fn<UnaryOp::Sign>(x, alpha, beta);
  else if constexpr (Op == UnaryOp::Sign) return grad * A(0);
  else if constexpr (Op == UnaryOp::Pow) return alpha == A(0) ? A(0) : grad * alpha * pow_(x, alpha - A(1));
  else if constexpr (Op == UnaryOp::Clamp) return (x >= alpha && x <= beta) ? grad : A(0);
  else if constexpr (Op == UnaryOp::Relu) return x > A(0) ? grad : A(0);
  else if constexpr (Op == UnaryOp::LeakyRelu) return x > A(0) ? grad : grad * alpha;
  else if constexpr (Op == UnaryOp::Sigmoid) {
    A s = sigmoid_(x);
    return grad * s * (A(1) - s);
  } else if constexpr (Op == UnaryOp::Tanh) {
    A t = tanh_(x);
    return grad * (A(1) - t * t);
  } else if constexpr (Op == UnaryOp::Gelu) {
    A cdf = A(0.5) * (A(1) + erf_(x * kInvSqrt2<A>));
    A pdf = kInvSqrt2Pi<A> * exp_(A(-0.5) * x * x);
    return grad * (cdf + x * pdf);
  } else if constexpr (Op == UnaryOp::GeluTanh) {
    A x2 = x * x;
    A t = tanh_(kSqrt2OverPi<A> * (x + kGeluCubic<A> * x2 * x));
    A dinner = kSqrt2OverPi<A> * (A(1) + A(3) * kGeluCubic<A> * x2);
    return grad * (A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * dinner);
  } else if constexpr (Op == UnaryOp::Silu) {
    A s = sigmoid_(x);
    return grad * s * (A(1) + x * (A(1) - s));
  } else if constexpr (Op == UnaryOp::Softplus) {
    A bx = alpha * x;
    return bx > beta ? grad : grad * sigmoid_(bx);
  } else {
    static_assert(Op == UnaryOp::Neg, "unary_grad_fn: op missing");
    return grad;
  }
}

// a op b for the arithmetic ops; comparisons go through compare_fn.
template <BinaryOp Op, class A>
NN_HOST_DEVICE NN_INLINE A binary_fn(A a, A b) {
  if constexpr (Op == BinaryOp::Add) return a + b;
  else if constexpr (Op == BinaryOp::Sub) return a - b;
  else if constexpr (Op == BinaryOp::Mul) return a * b;
  else if constexpr (Op == BinaryOp::Div) return a / b;
  else if constexpr (Op == BinaryOp::Maximum) return (isnan_(a) || a > b) ? a : b;  // NaN propagates
  else if constexpr (Op == BinaryOp::Minimum) return (isnan_(a) || a < b) ? a : b;
  else if constexpr (Op == BinaryOp::Pow) return pow_(a, b);
  else {
    static_assert(Op == BinaryOp::Add, "binary_fn: not an arithmetic op");
    return a;
  }
}

template <BinaryOp Op, class A>
NN_HOST_DEVICE NN_INLINE bool compare_fn(A a, A b) {
  if constexpr (Op == BinaryOp::Eq) return a == b;
  else if constexpr (Op == BinaryOp::Ne) return a != b;
  else if constexpr (Op == BinaryOp::Lt) return a < b;
  else if constexpr (Op == BinaryOp::Le) return a <= b;
  else if constexpr (Op == BinaryOp::Gt) return a > b;
  else if constexpr (Op == BinaryOp::Ge) return a >= b;
  else {
    static_assert(Op == BinaryOp::Eq, "compare_fn: not a comparison");
    return false;
  }
}

// Element i of a random fill (see RandomKind and core/rng.h): Uniform in [a, b), Normal with
// mean a and standard deviation b, Bernoulli 1 with probability a. Explicit fma so the host and
// the device round identically whatever the compiler's contraction defaults.
template <RandomKind Kind, class A>
NN_HOST_DEVICE NN_INLINE A random_fn(uint64_t seed, uint64_t offset, uint64_t i, A a, A b) {
  if constexpr (Kind == RandomKind::Normal) {
    return fma_(b, philox_normal<A>(seed, offset, i), a);
  } else {
    A u = A(1) - philox_uniform<A>(seed, offset, i);  // philox_uniform is in (0, 1]
    if constexpr (Kind == RandomKind::Uniform) return fma_(b - a, u, a);
    else return u < a ? A(1) : A(0);
  }
}

}  // namespace nn::math

namespace nn {

template <class F>
decltype(auto) visit_random_kind(RandomKind kind, F&& f) {
  switch (kind) {
    case RandomKind::Uniform: return f.template operator()<RandomKind::Uniform>();
    case RandomKind::Normal: return f.template operator()<RandomKind::Normal>();
    case RandomKind::Bernoulli: return f.template operator()<RandomKind::Bernoulli>();
  }
  NN_THROW(ValueError, "unknown random kind code ", int(kind));
}

// Calls f.template operator()<Op>() with the compile-time form of a runtime op, so each
// backend instantiates one specialised loop per op:  visit_unary(op, [&]<UnaryOp Op>() {...});
template <class F>
decltype(auto) visit_unary(UnaryOp op, F&& f) {
  switch (op) {
#define NN_UNARY_CASE(name) \
  case UnaryOp::name: return f.template operator()<UnaryOp::name>();
    NN_UNARY_CASE(Neg) NN_UNARY_CASE(Exp) NN_UNARY_CASE(Log) NN_UNARY_CASE(Sqrt)
    NN_UNARY_CASE(Rsqrt) NN_UNARY_CASE(Abs) NN_UNARY_CASE(Sign) NN_UNARY_CASE(Pow)
    NN_UNARY_CASE(Clamp) NN_UNARY_CASE(Relu) NN_UNARY_CASE(LeakyRelu) NN_UNARY_CASE(Sigmoid)
    NN_UNARY_CASE(Tanh) NN_UNARY_CASE(Gelu) NN_UNARY_CASE(GeluTanh) NN_UNARY_CASE(Silu)
    NN_UNARY_CASE(Softplus)
#undef NN_UNARY_CASE
  }
  NN_THROW(ValueError, "unknown unary op code ", int(op));
}

template <class F>
decltype(auto) visit_binary(BinaryOp op, F&& f) {
  switch (op) {
#define NN_BINARY_CASE(name) \
  case BinaryOp::name: return f.template operator()<BinaryOp::name>();
    NN_BINARY_CASE(Add) NN_BINARY_CASE(Sub) NN_BINARY_CASE(Mul) NN_BINARY_CASE(Div)
    NN_BINARY_CASE(Maximum) NN_BINARY_CASE(Minimum) NN_BINARY_CASE(Pow) NN_BINARY_CASE(Eq)
    NN_BINARY_CASE(Ne) NN_BINARY_CASE(Lt) NN_BINARY_CASE(Le) NN_BINARY_CASE(Gt) NN_BINARY_CASE(Ge)
#undef NN_BINARY_CASE
  }
  NN_THROW(ValueError, "unknown binary op code ", int(op));
}

}  // namespace nn
