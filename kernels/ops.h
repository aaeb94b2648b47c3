// The op table's public face: device-neutral functions over Tensors. Each validates its
// arguments (shapes, dtypes, devices; a clear nn::Error otherwise), allocates its output on the
// inputs' device and dispatches to the CPU or CUDA implementation declared in kernels/backend.h.
//
// Dtypes: every op takes float32, float64, bfloat16 and float16 (the half types compute in
// float32), on the CPU and on CUDA; comparisons return bool; indices are int64.
// Integer and bool tensors, as in PyTorch but without type promotion (operands of one op share
// a dtype; int64 with float32 is a DtypeError naming both, convert one with .to()):
//  - comparisons and where take every dtype, int64 and bool included;
//  - int64 also takes neg, abs, sign, add, sub, mul, maximum, minimum (exact, wrapping on
//    overflow), amax, amin, max, min and the arg-reductions; div and pow of int64 refuse
//    (PyTorch true-divides to float: convert first);
//  - sum of int64 or bool is int64 (exact); mean and var need a floating dtype;
//  - a scalar operand of an int64 op must be an integer, of a bool comparison 0 or 1.
// Binary ops broadcast as NumPy does. All inputs of one op must be on one device.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace nn {

// ---- factories -----------------------------------------------------------------------------
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor arange(double start, double end, double step = 1.0, TensorOptions options = {});
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor empty_like(const Tensor& t);
// Random tensors: the same numbers on the CPU and on CUDA for the same seed (core/rng.h).
Tensor rand(const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr);   // U[0,1)
Tensor randn(const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr);  // N(0,1)

// ---- fills and random fills (in place) ------------------------------------------------------
enum class RandomKind : uint8_t { Uniform, Normal, Bernoulli };
Tensor& fill_(Tensor& t, double value);
Tensor& uniform_(Tensor& t, double low = 0.0, double high = 1.0, Generator* gen = nullptr);
Tensor& normal_(Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
Tensor& bernoulli_(Tensor& t, double p, Generator* gen = nullptr);  // 1 with probability p, else 0

// ---- elementwise unary ----------------------------------------------------------------------
enum class UnaryOp : uint8_t {
  Neg, Exp, Log, Sqrt, Rsqrt, Abs, Sign,
  Pow,        // x^alpha
  Clamp,      // min(max(x, alpha), beta)
  Relu,
  LeakyRelu,  // slope alpha for x < 0
  Sigmoid, Tanh,
  Gelu,       // exact: x * Phi(x)
  GeluTanh,   // tanh approximation
  Silu,
  Softplus,   // log(1 + exp(alpha x)) / alpha, linear where alpha x > beta
};
const char* unary_op_name(UnaryOp op);
// The unary ops defined on int64 (the rest need a floating dtype).
constexpr bool is_integer_unary(UnaryOp op) {
  return op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Sign;
}

// out = op(x; alpha, beta). The generic entry behind every named form below.
Tensor unary(UnaryOp op, const Tensor& x, double alpha = 0.0, double beta = 0.0);
Tensor& unary_(UnaryOp op, Tensor& x, double alpha = 0.0, double beta = 0.0);

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor clamp(const Tensor& x, double lo, double hi);
Tensor& neg_(Tensor& x);
Tensor& exp_(Tensor& x);
Tensor& log_(Tensor& x);
Tensor& sqrt_(Tensor& x);
Tensor& abs_(Tensor& x);
Tensor& clamp_(Tensor& x, double lo, double hi);

// ---- activations, forward and backward ------------------------------------------------------
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor gelu(const Tensor& x, bool tanh_approximation = false);
Tensor silu(const Tensor& x);
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
Tensor& relu_(Tensor& x);

// grad_in = grad_out * d op(x)/dx, for the activation ops above (and the differentiable unary
// ops: Neg, Exp, Log, Sqrt, Rsqrt, Abs, Sign, Pow, Clamp). Same shapes, dtype and device.
Tensor unary_backward(UnaryOp op, const Tensor& grad_out, const Tensor& x, double alpha = 0.0,
                      double beta = 0.0);

// ---- elementwise binary (NumPy broadcasting) -------------------------------------------------
enum class BinaryOp : uint8_t {
  Add, Sub, Mul, Div, Maximum, Minimum, Pow,
  Eq, Ne, Lt, Le, Gt, Ge,  // comparisons: bool output
};
const char* binary_op_name(BinaryOp op);
constexpr bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq; }
// The arithmetic ops defined on int64 (Div and Pow need a floating dtype).
constexpr bool is_integer_arithmetic(BinaryOp op) {
  return op == BinaryOp::Add || op == BinaryOp::Sub || op == BinaryOp::Mul ||
         op == BinaryOp::Maximum || op == BinaryOp::Minimum;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
// In place: a's shape must be the broadcast shape (b broadcasts into a).
Tensor& binary_(BinaryOp op, Tensor& a, const Tensor& b);
// A scalar operand: a tensor of b's value on a's device and dtype, broadcast.
Tensor binary(BinaryOp op, const Tensor& a, double b);

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor& add_(Tensor& a, const Tensor& b);
Tensor& sub_(Tensor& a, const Tensor& b);
Tensor& mul_(Tensor& a, const Tensor& b);
Tensor& div_(Tensor& a, const Tensor& b);
Tensor& add_(Tensor& a, double b);
Tensor& mul_(Tensor& a, double b);

// cond (bool) ? a : b, all three broadcast together; a and b share a dtype.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);

// ---- reductions -----------------------------------------------------------------------------
// `dims` lists axes to reduce (negative counts from the end; empty means all). float32 sums
// accumulate in float64 on the CPU and in float32 trees on CUDA; variance uses Welford.
// sum of int64 or bool gives int64, summed exactly (wrapping on overflow); amax, amin and the
// index forms take int64 too; mean and var take floating dtypes only.
enum class ReduceOp : uint8_t { Sum, Mean, Max, Min, Var };
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// correction 1 is the unbiased (Bessel) estimate, 0 the population variance.
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1,
           bool keepdim = false);
// Values and int64 indices along one axis; ties pick the first index.
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x);  // index into the flattened tensor, a 0-d int64 tensor
Tensor max(const Tensor& x);     // over all elements, 0-d
Tensor min(const Tensor& x);

// ---- softmax --------------------------------------------------------------------------------
// Stable for large logits (the row max is subtracted). Backward takes the forward output y.
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
Tensor softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim = -1);
Tensor log_softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim = -1);

// ---- matmul ---------------------------------------------------------------------------------
// a: [..., m, k] (or [..., k, m] with trans_a), b: [..., k, n] (or [..., n, k] with trans_b).
// 1-D operands are promoted as in NumPy. Batch dimensions broadcast. Both operands share a
// dtype; the output has it. BLAS on the CPU (half types through float32); cuBLAS on CUDA with
// float32 accumulation (TF32 for float32 only when allowed).
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
Tensor bmm(const Tensor& a, const Tensor& b);  // [B, m, k] x [B, k, n]
void set_allow_tf32(bool allow);  // default false
bool allow_tf32();

}  // namespace nn
