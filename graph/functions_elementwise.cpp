// Differentiable elementwise ops (graph/functions.h): unary ops and activations, broadcasting
// binary ops, the scalar forms, where, and the operator spellings.
//
// Unary backward is one fused unary_backward launch on the saved input. Binary backward sums
// each input's gradient back over the axes it was broadcast along (sum_to). Saving an input costs
// nothing: the node's edges keep the input Variables, and so their data, alive anyway.
#include <utility>
#include <vector>

#include "graph/functions.h"

namespace nn {

namespace {

using Grads = std::vector<Tensor>;

// A 0-d tensor of `value` in t's dtype on t's device (a fill launch, no host data).
Tensor scalar_like(const Tensor& t, double value) {
  return full({}, value, {t.dtype(), t.device()});
}

}  // namespace

// ---- unary ------------------------------------------------------------------------------------

Variable unary(UnaryOp op, const Variable& x, double alpha, double beta) {
  Tensor out = unary(op, x.data(), alpha, beta);
  if (op == UnaryOp::Neg) {
    return make_variable(
        std::move(out), {x},
        [](const Tensor& g, const std::vector<bool>&) { return Grads{neg(g)}; }, unary_op_name(op));
  }
  return make_variable(
      std::move(out), {x},
      [op, xd = x.data(), alpha, beta](const Tensor& g, const std::vector<bool>&) {
        return Grads{unary_backward(op, g, xd, alpha, beta)};
      },
      unary_op_name(op));
}

Variable neg(const Variable& x) { return unary(UnaryOp::Neg, x); }
Variable exp(const Variable& x) { return unary(UnaryOp::Exp, x); }
Variable log(const Variable& x) { return unary(UnaryOp::Log, x); }
Variable sqrt(const Variable& x) { return unary(UnaryOp::Sqrt, x); }
Variable rsqrt(const Variable& x) { return unary(UnaryOp::Rsqrt, x); }
Variable abs(const Variable& x) { return unary(UnaryOp::Abs, x); }
Variable pow(const Variable& x, double exponent) { return unary(UnaryOp::Pow, x, exponent); }
Variable clamp(const Variable& x, double lo, double hi) { return unary(UnaryOp::Clamp, x, lo, hi); }
Variable relu(const Variable& x) { return unary(UnaryOp::Relu, x); }
Variable leaky_relu(const Variable& x, double negative_slope) {
  return unary(UnaryOp::LeakyRelu, x, negative_slope);
}
Variable sigmoid(const Variable& x) { return unary(UnaryOp::Sigmoid, x); }
Variable tanh(const Variable& x) { return unary(UnaryOp::Tanh, x); }
Variable gelu(const Variable& x, bool tanh_approximation) {
  return unary(tanh_approximation ? UnaryOp::GeluTanh : UnaryOp::Gelu, x);
}
Variable silu(const Variable& x) { return unary(UnaryOp::Silu, x); }
Variable softplus(const Variable& x, double beta, double threshold) {
  return unary(UnaryOp::Softplus, x, beta, threshold);
}

Variable activation(Activation act, const Variable& x) {
  if (act == Activation::None) {
    (void)x.data();  // an undefined x throws here as it would in every other activation
    return x;
  }
  return unary(activation_unary_op(act), x);
}

// ---- binary -----------------------------------------------------------------------------------

Variable binary(BinaryOp op, const Variable& a, const Variable& b) {
  NN_CHECK(!is_comparison(op), ValueError, "binary: ", binary_op_name(op),
           " is a comparison and has no gradient; call the Tensor form on .data()");
  const Tensor& ad = a.data();
  const Tensor& bd = b.data();
  Tensor out = binary(op, ad, bd);
  const char* name = binary_op_name(op);
  BackwardFn fn;
  switch (op) {
    case BinaryOp::Add:
      fn = [sa = ad.shape(), sb = bd.shape()](const Tensor& g, const std::vector<bool>& needs) {
        return Grads{needs[0] ? sum_to(g, sa) : Tensor(), needs[1] ? sum_to(g, sb) : Tensor()};
      };
      break;
    case BinaryOp::Sub:
      fn = [sa = ad.shape(), sb = bd.shape()](const Tensor& g, const std::vector<bool>& needs) {
        return Grads{needs[0] ? sum_to(g, sa) : Tensor(), needs[1] ? sum_to(neg(g), sb) : Tensor()};
      };
      break;
    case BinaryOp::Mul:
      fn = [ad, bd](const Tensor& g, const std::vector<bool>& needs) {
        return Grads{needs[0] ? sum_to(mul(g, bd), ad.shape()) : Tensor(),
                     needs[1] ? sum_to(mul(g, ad), bd.shape()) : Tensor()};
      };
      break;
    case BinaryOp::Div:
      // d(a/b)/db = -(a/b)/b: reuse the quotient instead of squaring b.
      fn = [sa = ad.shape(), bd, out](const Tensor& g, const std::vector<bool>& needs) {
        Tensor ga = div(g, bd);
        Tensor gb = needs[1] ? sum_to(neg(mul(ga, out)), bd.shape()) : Tensor();
        return Grads{needs[0] ? sum_to(ga, sa) : Tensor(), gb};
      };
      break;
    case BinaryOp::Maximum:
    case BinaryOp::Minimum:
      // The winner takes the gradient; a tie gives each side half. b gets what a does not.
      fn = [ad, bd, op](const Tensor& g, const std::vector<bool>& needs) {
        Tensor wins = op == BinaryOp::Maximum ? gt(ad, bd) : lt(ad, bd);
        Tensor zero = scalar_like(g, 0.0);
        Tensor ga = where(wins, g, where(eq(ad, bd), mul(g, 0.5), zero));
        Tensor gb = needs[1] ? sum_to(sub(g, ga), bd.shape()) : Tensor();
        return Grads{needs[0] ? sum_to(ga, ad.shape()) : Tensor(), gb};
      };
      break;
    case BinaryOp::Pow:
      // As PyTorch: no gradient to a where b == 0 (0^-1 would give NaN), none to b where a == 0
      // and b >= 0 (log 0).
      fn = [ad, bd, out](const Tensor& g, const std::vector<bool>& needs) {
        Tensor zero = scalar_like(g, 0.0);
        Tensor ga, gb;
        if (needs[0]) {
          Tensor d = mul(mul(g, bd), pow(ad, add(bd, -1.0)));
          ga = sum_to(where(eq(bd, zero), zero, d), ad.shape());
        }
        if (needs[1]) {
          Tensor d = mul(mul(g, out), log(ad));
          Tensor base_zero = where(ge(bd, zero), zero, d);
          gb = sum_to(where(eq(ad, zero), base_zero, d), bd.shape());
        }
        return Grads{ga, gb};
      };
      break;
    default:
      NN_THROW(ValueError, "binary: no gradient for ", name);
  }
  return make_variable(std::move(out), {a, b}, std::move(fn), name);
}

Variable add(const Variable& a, const Variable& b) { return binary(BinaryOp::Add, a, b); }
Variable sub(const Variable& a, const Variable& b) { return binary(BinaryOp::Sub, a, b); }
Variable mul(const Variable& a, const Variable& b) { return binary(BinaryOp::Mul, a, b); }
Variable div(const Variable& a, const Variable& b) { return binary(BinaryOp::Div, a, b); }
Variable maximum(const Variable& a, const Variable& b) { return binary(BinaryOp::Maximum, a, b); }
Variable minimum(const Variable& a, const Variable& b) { return binary(BinaryOp::Minimum, a, b); }
Variable pow(const Variable& a, const Variable& b) { return binary(BinaryOp::Pow, a, b); }

// ---- scalar operands --------------------------------------------------------------------------

Variable add(const Variable& a, double b) {
  return make_variable(
      binary(BinaryOp::Add, a.data(), b), {a},
      [](const Tensor& g, const std::vector<bool>&) { return Grads{g}; }, "add");
}
Variable sub(const Variable& a, double b) {
  return make_variable(
      binary(BinaryOp::Sub, a.data(), b), {a},
      [](const Tensor& g, const std::vector<bool>&) { return Grads{g}; }, "sub");
}
Variable mul(const Variable& a, double b) {
  return make_variable(
      binary(BinaryOp::Mul, a.data(), b), {a},
      [b](const Tensor& g, const std::vector<bool>&) { return Grads{mul(g, b)}; }, "mul");
}
Variable div(const Variable& a, double b) {
  return make_variable(
      binary(BinaryOp::Div, a.data(), b), {a},
      [b](const Tensor& g, const std::vector<bool>&) { return Grads{binary(BinaryOp::Div, g, b)}; },
      "div");
}
Variable rsub(double a, const Variable& b) {
  const Tensor& bd = b.data();
  return make_variable(
      sub(scalar_like(bd, a), bd), {b},
      [](const Tensor& g, const std::vector<bool>&) { return Grads{neg(g)}; }, "rsub");
}

Variable where(const Tensor& cond, const Variable& a, const Variable& b) {
  const Tensor& ad = a.data();
  const Tensor& bd = b.data();
  Tensor out = where(cond, ad, bd);
  return make_variable(
      std::move(out), {a, b},
      [cond, sa = ad.shape(), sb = bd.shape()](const Tensor& g, const std::vector<bool>& needs) {
        Tensor zero = scalar_like(g, 0.0);
        return Grads{needs[0] ? sum_to(where(cond, g, zero), sa) : Tensor(),
                     needs[1] ? sum_to(where(cond, zero, g), sb) : Tensor()};
      },
      "where");
}

// ---- operators --------------------------------------------------------------------------------

Variable operator-(const Variable& a) { return neg(a); }
Variable operator+(const Variable& a, const Variable& b) { return add(a, b); }
Variable operator-(const Variable& a, const Variable& b) { return sub(a, b); }
Variable operator*(const Variable& a, const Variable& b) { return mul(a, b); }
Variable operator/(const Variable& a, const Variable& b) { return div(a, b); }
Variable operator+(const Variable& a, double b) { return add(a, b); }
Variable operator-(const Variable& a, double b) { return sub(a, b); }
Variable operator*(const Variable& a, double b) { return mul(a, b); }
Variable operator/(const Variable& a, double b) { return div(a, b); }
Variable operator+(double a, const Variable& b) { return add(b, a); }
Variable operator-(double a, const Variable& b) { return rsub(a, b); }
Variable operator*(double a, const Variable& b) { return mul(b, a); }

}  // namespace nn
