// Front end of the elementwise rows of the op table: unary ops and activations (forward and
// backward), binary ops with NumPy broadcasting, where, and the operator spellings.
// Validation happens here; backends receive operands already expanded to the output's shape.
// Integer and bool operands follow PyTorch without its type promotion (see kernels/ops.h): the
// checks below say which ops take which dtypes, and refuse the rest with a hint to convert.
#include <cmath>
#include <string>

#include "kernels/backend.h"
#include "kernels/op_checks.h"

namespace nn {

using detail::Arg;

const char* unary_op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg:
      return "neg";
    case UnaryOp::Exp:
      return "exp";
    case UnaryOp::Log:
      return "log";
    case UnaryOp::Sqrt:
      return "sqrt";
    case UnaryOp::Rsqrt:
      return "rsqrt";
    case UnaryOp::Abs:
      return "abs";
    case UnaryOp::Sign:
      return "sign";
    case UnaryOp::Pow:
      return "pow";
    case UnaryOp::Clamp:
      return "clamp";
    case UnaryOp::Relu:
      return "relu";
    case UnaryOp::LeakyRelu:
      return "leaky_relu";
    case UnaryOp::Sigmoid:
      return "sigmoid";
    case UnaryOp::Tanh:
      return "tanh";
    case UnaryOp::Gelu:
      return "gelu";
    case UnaryOp::GeluTanh:
      return "gelu_tanh";
    case UnaryOp::Silu:
      return "silu";
    case UnaryOp::Softplus:
      return "softplus";
  }
  return "unary";
}

const char* binary_op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add:
      return "add";
    case BinaryOp::Sub:
      return "sub";
    case BinaryOp::Mul:
      return "mul";
    case BinaryOp::Div:
      return "div";
    case BinaryOp::Maximum:
      return "maximum";
    case BinaryOp::Minimum:
      return "minimum";
    case BinaryOp::Pow:
      return "pow";
    case BinaryOp::Eq:
      return "eq";
    case BinaryOp::Ne:
      return "ne";
    case BinaryOp::Lt:
      return "lt";
    case BinaryOp::Le:
      return "le";
    case BinaryOp::Gt:
      return "gt";
    case BinaryOp::Ge:
      return "ge";
  }
  return "binary";
}

namespace {

// The parameters some unary ops need to be meaningful.
void check_unary_params(const char* name, UnaryOp op, double alpha, double beta) {
  if (op == UnaryOp::Clamp)
    NN_CHECK(!(alpha > beta), ValueError, name, ": lower bound ", alpha, " exceeds upper bound ",
             beta);
  if (op == UnaryOp::Softplus) NN_CHECK(alpha != 0.0, ValueError, name, ": beta must be nonzero");
}

// The in-place spelling of an op's name, for messages: "add_".
std::string inplace_name(const char* name) { return std::string(name) + "_"; }

// Neg, Abs and Sign take int64 as well; every other unary op needs a floating dtype.
void check_unary_dtype(const char* name, UnaryOp op, const Tensor& x) {
  if (is_integer_unary(op))
    detail::check_floating_or_int64(name, {"x", x});
  else
    detail::check_floating(name, {"x", x});
}

}  // namespace

// ---- unary ----------------------------------------------------------------------------------

Tensor unary(UnaryOp op, const Tensor& x, double alpha, double beta) {
  const char* name = unary_op_name(op);
  detail::check_inputs(name, {{"x", x}});
  check_unary_dtype(name, op, x);
  check_unary_params(name, op, alpha, beta);
  Tensor out = empty(x.shape(), {x.dtype(), x.device()});
  if (out.numel() > 0) backend::unary(out, op, x, alpha, beta);
  return out;
}

Tensor& unary_(UnaryOp op, Tensor& x, double alpha, double beta) {
  std::string name = inplace_name(unary_op_name(op));
  detail::check_inputs(name.c_str(), {{"x", x}});
  check_unary_dtype(name.c_str(), op, x);
  check_unary_params(name.c_str(), op, alpha, beta);
  detail::check_writable(name.c_str(), x);
  if (x.numel() > 0) backend::unary(x, op, x, alpha, beta);
  return x;
}

Tensor unary_backward(UnaryOp op, const Tensor& grad_out, const Tensor& x, double alpha,
                      double beta) {
  std::string name = std::string(unary_op_name(op)) + "_backward";
  const char* n = name.c_str();
  detail::check_inputs(n, {{"grad_out", grad_out}, {"x", x}});
  detail::check_floating(n, {"x", x});
  detail::check_same_dtype(n, {"grad_out", grad_out}, {"x", x});
  detail::check_same_shape(n, {"grad_out", grad_out}, {"x", x});
  check_unary_params(n, op, alpha, beta);
  Tensor out = empty(x.shape(), {x.dtype(), x.device()});
  if (out.numel() > 0) backend::unary_backward(out, op, grad_out, x, alpha, beta);
  return out;
}

Tensor neg(const Tensor& x) { return unary(UnaryOp::Neg, x); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::Exp, x); }
Tensor log(const Tensor& x) { return unary(UnaryOp::Log, x); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::Sqrt, x); }
Tensor rsqrt(const Tensor& x) { return unary(UnaryOp::Rsqrt, x); }
Tensor abs(const Tensor& x) { return unary(UnaryOp::Abs, x); }
Tensor sign(const Tensor& x) { return unary(UnaryOp::Sign, x); }
Tensor pow(const Tensor& x, double exponent) { return unary(UnaryOp::Pow, x, exponent); }
Tensor clamp(const Tensor& x, double lo, double hi) { return unary(UnaryOp::Clamp, x, lo, hi); }
Tensor& neg_(Tensor& x) { return unary_(UnaryOp::Neg, x); }
Tensor& exp_(Tensor& x) { return unary_(UnaryOp::Exp, x); }
Tensor& log_(Tensor& x) { return unary_(UnaryOp::Log, x); }
Tensor& sqrt_(Tensor& x) { return unary_(UnaryOp::Sqrt, x); }
Tensor& abs_(Tensor& x) { return unary_(UnaryOp::Abs, x); }
Tensor& clamp_(Tensor& x, double lo, double hi) { return unary_(UnaryOp::Clamp, x, lo, hi); }

Tensor relu(const Tensor& x) { return unary(UnaryOp::Relu, x); }
Tensor leaky_relu(const Tensor& x, double negative_slope) {
  return unary(UnaryOp::LeakyRelu, x, negative_slope);
}
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::Sigmoid, x); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::Tanh, x); }
Tensor gelu(const Tensor& x, bool tanh_approximation) {
  return unary(tanh_approximation ? UnaryOp::GeluTanh : UnaryOp::Gelu, x);
}
Tensor silu(const Tensor& x) { return unary(UnaryOp::Silu, x); }
Tensor softplus(const Tensor& x, double beta, double threshold) {
  return unary(UnaryOp::Softplus, x, beta, threshold);
}
Tensor& relu_(Tensor& x) { return unary_(UnaryOp::Relu, x); }

// ---- binary ---------------------------------------------------------------------------------

namespace {

// One dtype for both operands (no promotion), and one the op is defined on: comparisons take
// every dtype, the integer arithmetic ops int64 too, div and pow floating dtypes only.
void check_binary_operands(const char* name, BinaryOp op, const Tensor& a, const Tensor& b) {
  detail::check_inputs(name, {{"a", a}, {"b", b}});
  detail::check_same_dtype(name, {"a", a}, {"b", b});
  if (is_comparison(op)) return;
  if (is_integer_arithmetic(op)) {
    detail::check_floating_or_int64(name, {"a", a});
    return;
  }
  if (a.dtype() == Dtype::Int64) {
    NN_CHECK(op != BinaryOp::Div, DtypeError, name,
             ": a and b are int64; true division of integers gives a floating result (PyTorch "
             "promotes, this library does not), so convert with .to(float32) first");
    NN_THROW(DtypeError, name, ": a and b are int64, expected a floating dtype (float32, float64, ",
             "bfloat16 or float16); convert with .to(float32) first");
  }
  detail::check_floating(name, {"a", a});
}

// A 0-d tensor holding `value` in a's dtype on a's device, for the scalar forms. The value must
// survive the conversion: an int64 a takes integers only (1.5 would need the float promotion
// PyTorch does and this library does not), a bool a only 0 and 1.
Tensor scalar_like(const char* name, const Tensor& a, double value) {
  detail::check_inputs(name, {{"a", a}});
  constexpr double kInt64Bound = 9223372036854775808.0;  // 2^63
  if (a.dtype() == Dtype::Int64)
    NN_CHECK(std::trunc(value) == value && std::abs(value) < kInt64Bound, DtypeError, name,
             ": the scalar ", value,
             " is not an integer in the int64 range, and a is int64; "
             "convert a with .to(float32) or .to(float64) first");
  if (a.dtype() == Dtype::Bool)
    NN_CHECK(value == 0.0 || value == 1.0, DtypeError, name, ": the scalar ", value,
             " is not 0 or 1, and a is bool; convert a with .to(int64) first");
  return full({}, value, {a.dtype(), a.device()});
}

}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_op_name(op);
  check_binary_operands(name, op, a, b);
  Shape shape = detail::broadcast_shapes(name, {a.shape(), b.shape()});
  Tensor out = empty(shape, {is_comparison(op) ? Dtype::Bool : a.dtype(), a.device()});
  if (out.numel() > 0) backend::binary(out, op, a.expand(shape), b.expand(shape));
  return out;
}

Tensor& binary_(BinaryOp op, Tensor& a, const Tensor& b) {
  std::string name_s = inplace_name(binary_op_name(op));
  const char* name = name_s.c_str();
  check_binary_operands(name, op, a, b);
  NN_CHECK(!is_comparison(op), DtypeError, name,
           ": a comparison produces bool and cannot be written in place into ",
           dtype_name(a.dtype()), " a; use the out-of-place form");
  Shape shape = detail::broadcast_shapes(name, {a.shape(), b.shape()});
  NN_CHECK(shape == a.shape(), ShapeError, name, ": b of shape ", shape_str(b.shape()),
           " broadcast with a gives ", shape_str(shape), ", but the in-place target a has shape ",
           shape_str(a.shape()));
  detail::check_writable(name, a);
  if (a.numel() == 0) return a;
  // Exact aliasing (a op= a) is safe elementwise; any other overlap is read from a copy.
  Tensor src = detail::overlaps_partially(a, b) ? b.clone() : b;
  backend::binary(a, op, a, src.expand(shape));
  return a;
}

Tensor binary(BinaryOp op, const Tensor& a, double b) {
  return binary(op, a, scalar_like(binary_op_name(op), a, b));
}

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Div, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Minimum, a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Pow, a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Ge, a, b); }
Tensor add(const Tensor& a, double b) { return binary(BinaryOp::Add, a, b); }
Tensor mul(const Tensor& a, double b) { return binary(BinaryOp::Mul, a, b); }
Tensor& add_(Tensor& a, const Tensor& b) { return binary_(BinaryOp::Add, a, b); }
Tensor& sub_(Tensor& a, const Tensor& b) { return binary_(BinaryOp::Sub, a, b); }
Tensor& mul_(Tensor& a, const Tensor& b) { return binary_(BinaryOp::Mul, a, b); }
Tensor& div_(Tensor& a, const Tensor& b) { return binary_(BinaryOp::Div, a, b); }
Tensor& add_(Tensor& a, double b) { return binary_(BinaryOp::Add, a, scalar_like("add_", a, b)); }
Tensor& mul_(Tensor& a, double b) { return binary_(BinaryOp::Mul, a, scalar_like("mul_", a, b)); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  detail::check_inputs("where", {{"cond", cond}, {"a", a}, {"b", b}});
  NN_CHECK(cond.dtype() == Dtype::Bool, DtypeError, "where: cond is ", dtype_name(cond.dtype()),
           ", expected bool");
  detail::check_same_dtype("where", {"a", a}, {"b", b});
  Shape shape = detail::broadcast_shapes("where", {cond.shape(), a.shape(), b.shape()});
  Tensor out = empty(shape, {a.dtype(), a.device()});
  if (out.numel() > 0) backend::where(out, cond.expand(shape), a.expand(shape), b.expand(shape));
  return out;
}

Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return binary(BinaryOp::Add, a, b); }
Tensor operator-(const Tensor& a, double b) { return binary(BinaryOp::Sub, a, b); }
Tensor operator*(const Tensor& a, double b) { return binary(BinaryOp::Mul, a, b); }
Tensor operator/(const Tensor& a, double b) { return binary(BinaryOp::Div, a, b); }

}  // namespace nn
