// Differentiable matmul and the fused neural-network ops (graph/functions.h): matmul, bmm,
// linear (kernels/nn_ops.h's fused GEMM + bias + activation), cross_entropy and dropout.
//
// Everything a backward here needs that depends on data (the summed sample weight of a mean
// cross-entropy, the dropout mask) stays in device tensors: a step never reads a value back.
#include <string>
#include <utility>
#include <vector>

#include "graph/functions.h"

namespace nn {

namespace {

using Grads = std::vector<Tensor>;

}  // namespace

// ---- matmul -----------------------------------------------------------------------------------

// With A = op(a), B = op(b) and C = A B: dA = G B^T and dB = A^T G, written as matmuls of the
// stored operands with transpose flags (no transposed copies). 1-D operands are handled in their
// promoted 2-D form; broadcast batch dimensions are summed back with sum_to.
Variable matmul(const Variable& a, const Variable& b, bool trans_a, bool trans_b) {
  const Tensor& ad = a.data();
  const Tensor& bd = b.data();
  Tensor out = matmul(ad, bd, trans_a, trans_b);  // validates
  return make_variable(
      std::move(out), {a, b},
      [ad, bd, trans_a, trans_b](const Tensor& g, const std::vector<bool>& needs) {
        const bool a_vec = ad.dim() == 1, b_vec = bd.dim() == 1;
        const Tensor a2 = a_vec ? ad.unsqueeze(0) : ad;
        const Tensor b2 = b_vec ? bd.unsqueeze(1) : bd;
        const bool ta = trans_a && !a_vec, tb = trans_b && !b_vec;
        const int64_t m = ta ? a2.size(-1) : a2.size(-2);
        const int64_t n = tb ? b2.size(-2) : b2.size(-1);
        // G with the dimensions the 1-D promotion dropped put back: [batch..., m, n].
        const size_t kept = size_t(!a_vec) + size_t(!b_vec);
        Shape g_shape(g.shape().begin(), g.shape().end() - ptrdiff_t(kept));
        g_shape.push_back(m);
        g_shape.push_back(n);
        const Tensor g2 = g.reshape(g_shape);
        Tensor ga, gb;
        if (needs[0]) {
          Tensor d = ta ? matmul(b2, g2, tb, true) : matmul(g2, b2, false, !tb);
          ga = sum_to(d, a2.shape()).reshape(ad.shape());
        }
        if (needs[1]) {
          Tensor d = tb ? matmul(g2, a2, true, ta) : matmul(a2, g2, !ta, false);
          gb = sum_to(d, b2.shape()).reshape(bd.shape());
        }
        return Grads{ga, gb};
      },
      "matmul");
}

Variable bmm(const Variable& a, const Variable& b) {
  const Tensor& ad = a.data();
  const Tensor& bd = b.data();
  Tensor out = bmm(ad, bd);  // validates
  return make_variable(
      std::move(out), {a, b},
      [ad, bd](const Tensor& g, const std::vector<bool>& needs) {
        return Grads{needs[0] ? matmul(g, bd, false, true) : Tensor(),
                     needs[1] ? matmul(ad, g, true, false) : Tensor()};
      },
      "bmm");
}

// ---- linear -----------------------------------------------------------------------------------

Variable linear(const Variable& x, const Variable& w, const Variable& b, Activation act) {
  std::vector<Variable> inputs = {x, w};
  if (b.defined()) inputs.push_back(b);
  const bool need_grad = any_requires_grad(inputs);
  // What the activation's backward reads (kernels/nn_ops.h): y itself for relu, sigmoid and tanh
  // (no extra memory), z from the same pass for the GELUs and SiLU, nothing without one; asked
  // for only when backward will run.
  Tensor saved;
  Tensor y = linear(x.data(), w.data(), b.defined() ? b.data() : Tensor(), act,
                    need_grad ? &saved : nullptr);
  if (!need_grad) return Variable(std::move(y), false);
  const bool has_bias = b.defined();
  // dx reads w and dW reads x: each is kept only when the other side wants a gradient.
  const Tensor xd = w.requires_grad() ? x.data() : Tensor();
  const Tensor wd = x.requires_grad() ? w.data() : Tensor();
  // linear_backward validates shapes, dtypes and devices of both; the one not kept stands in as
  // a one-element tensor expanded with stride 0 (never read: its gradient partner is not asked).
  auto stand_in = [](const Tensor& t) {
    return empty({}, {t.dtype(), t.device()}).expand(t.shape());
  };
  const Tensor xs = xd.defined() ? xd : stand_in(x.data());
  const Tensor ws = wd.defined() ? wd : stand_in(w.data());
  return make_variable(
      std::move(y), std::move(inputs),
      [xs, ws, saved, act, has_bias, keep_x = xd.defined(), keep_w = wd.defined()](
          const Tensor& g, const std::vector<bool>& needs) {
        // A flag turned on after the forward pass finds its partner operand not kept: no gradient.
        LinearGrads r = linear_backward(g, xs, ws, saved, act, needs[0] && keep_w,
                                        needs[1] && keep_x, has_bias && needs[2]);
        Grads grads{std::move(r.dx), std::move(r.dw)};
        if (has_bias) grads.push_back(std::move(r.db));
        return grads;
      },
      "linear");
}

// ---- cross_entropy ----------------------------------------------------------------------------

Reduction parse_reduction(const std::string& name) {
  if (name == "none") return Reduction::None;
  if (name == "mean") return Reduction::Mean;
  if (name == "sum") return Reduction::Sum;
  NN_THROW(ValueError, "parse_reduction: unknown reduction '", name,
           "', expected 'none', 'mean' or 'sum'");
}

Variable cross_entropy(const Variable& logits, const Tensor& target,
                       const CrossEntropyOptions& options, Reduction reduction) {
  const Tensor& ld = logits.data();
  const bool need_grad = any_requires_grad({logits});
  Tensor lse, sample_weight;
  Tensor loss = cross_entropy(ld, target, options, need_grad ? &lse : nullptr,
                              reduction == Reduction::Mean ? &sample_weight : nullptr);
  Tensor out, total_weight;
  switch (reduction) {
    case Reduction::None:
      out = loss;
      break;
    case Reduction::Sum:
      out = sum(loss);
      break;
    case Reduction::Mean:
      // PyTorch's weighted mean: divided by the weight of the samples that count, on the device.
      total_weight = sum(sample_weight);
      out = div(sum(loss), total_weight);
      break;
    default:
      NN_THROW(ValueError, "cross_entropy: unknown reduction code ", int(reduction));
  }
  if (!need_grad) return Variable(std::move(out), false);
  const int64_t n = ld.size(0);
  return make_variable(
      std::move(out), {logits},
      [ld, target, options, lse, total_weight, reduction, n](const Tensor& g,
                                                             const std::vector<bool>&) {
        Tensor grad_loss;
        if (reduction == Reduction::None)
          grad_loss = g;
        else if (reduction == Reduction::Sum)
          grad_loss = g.expand({n});
        else
          grad_loss = div(g, total_weight).expand({n});
        return Grads{cross_entropy_backward(grad_loss.contiguous(), ld, target, lse, options)};
      },
      "cross_entropy");
}

// ---- dropout ----------------------------------------------------------------------------------

Variable dropout(const Variable& x, double p, bool training, Generator* gen) {
  NN_CHECK(p >= 0.0 && p <= 1.0, ValueError, "dropout: p must be in [0, 1], got ", p);
  const Tensor& xd = x.data();
  if (!training || p == 0.0) return x;
  // The kept elements scaled by 1/(1-p): one tensor serves forward and backward. With p == 1
  // the draw keeps nothing and the output is zeros.
  Tensor mask = empty(xd.shape(), {xd.dtype(), xd.device()});
  bernoulli_(mask, 1.0 - p, gen);
  if (p < 1.0) mul_(mask, 1.0 / (1.0 - p));
  Tensor out = mul(xd, mask);
  return make_variable(
      std::move(out), {x},
      [mask](const Tensor& g, const std::vector<bool>&) { return Grads{mul(g, mask)}; }, "dropout");
}

}  // namespace nn
