// Rows of the op table for the fused training ops (kernels/nn_ops.h): linear for every activation
// with and without bias, cross-entropy forward (weights, label smoothing, ignored targets) and
// backward. The references are plain float64 loops that never call the library.
//
// Class targets are int64 while the harness draws every input in the tested dtype, so a row's
// targets are drawn with its shapes and travel in Draw::dims; run() builds them on the logits'
// device. Draw::flag set means "pass the targets as a floating tensor" (a bad-input case).
#include "kernels/nn_ops.h"
#include "tests/op_refs.h"

namespace nn::test {
namespace {

using Ins = std::vector<Tensor>;
using HIns = std::vector<HostTensor>;

// ---- linear ---------------------------------------------------------------------------------

double act_ref(Activation a, double z) {
  const double sig = 1.0 / (1.0 + std::exp(-z));
  switch (a) {
    case Activation::None:
      return z;
    case Activation::Relu:
      return z > 0 ? z : 0.0;
    case Activation::Gelu:
      return 0.5 * z * (1.0 + std::erf(z / std::sqrt(2.0)));
    case Activation::GeluTanh:
      return 0.5 * z * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z)));
    case Activation::Silu:
      return z * sig;
    case Activation::Tanh:
      return std::tanh(z);
    case Activation::Sigmoid:
      return sig;
  }
  return z;
}

// Awkward feature counts: 1 and primes, sometimes 0 (an empty inner product: y = act(b)).
int64_t feature_size(std::mt19937& rng) {
  static const int64_t kSizes[] = {1, 2, 3, 5, 7, 13, 17};
  if (coin(rng, 0.04)) return 0;
  return kSizes[uniform_int(rng, 0, 6)];
}

// x: 1-D [in], 2-D [m, in] or 3-D [a, m, in] (a leading size may be 0); w [out, in]; b [out].
Draw linear_draw(std::mt19937& rng, bool bias) {
  const int64_t in = feature_size(rng), out = std::max<int64_t>(1, feature_size(rng));
  Shape x;
  const int64_t lead = uniform_int(rng, 0, 2);
  for (int64_t d = 0; d < lead; ++d) x.push_back(coin(rng, 0.05) ? 0 : uniform_int(rng, 1, 5));
  x.push_back(in);
  Draw d;
  d.shapes = {x, {out, in}};
  if (bias) d.shapes.push_back({out});
  return d;
}

// y (and what linear(..., &saved) keeps: y itself or the pre-activation, per activation_saved)
// of a linear layer over x viewed as [rows, in].
HIns linear_ref(const HIns& in, Activation act) {
  const HostTensor &x = in[0], &w = in[1];
  const int64_t out = w.shape[0], k = w.shape[1];
  const int64_t rows = shape_numel(Shape(x.shape.begin(), x.shape.end() - 1));
  Shape ys = x.shape;
  ys.back() = out;
  HostTensor y{ys, std::vector<double>(size_t(rows * out))}, pre = y;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double z = in.size() > 2 ? in[2].v[size_t(o)] : 0.0;
      for (int64_t j = 0; j < k; ++j) z += x.v[size_t(r * k + j)] * w.v[size_t(o * k + j)];
      pre.v[size_t(r * out + o)] = z;
      y.v[size_t(r * out + o)] = act_ref(act, z);
    }
  if (act == Activation::None) return {y};
  if (activation_saved(act) == ActivationSaved::Output) return {y, y};
  return {y, pre};
}

void add_linear_rows(std::vector<OpCase>& rows) {
  for (Activation act : {Activation::None, Activation::Relu, Activation::Gelu, Activation::GeluTanh,
                         Activation::Silu, Activation::Tanh, Activation::Sigmoid}) {
    for (bool bias : {true, false}) {
      OpCase row;
      row.name = std::string("linear_") + activation_name(act) + (bias ? "" : "_nobias");
      row.err_name = "linear";
      row.arity = bias ? 3 : 2;
      row.domains = std::vector<Domain>(size_t(row.arity), kSym);
      row.draw = [bias](std::mt19937& rng) { return linear_draw(rng, bias); };
      row.run = [act, bias](const Ins& in, const Draw&) {
        Tensor saved;
        Tensor y = linear(in[0], in[1], bias ? in[2] : Tensor(), act, &saved);
        if (act == Activation::None) return Ins{y};
        return Ins{y, saved};
      };
      row.ref = [act](const HIns& in, const Draw&) { return linear_ref(in, act); };
      if (act != Activation::None) row.out_dtypes = {std::nullopt, std::nullopt};
      row.tol_scale = 10.0;  // a GEMM, as matmul
      row.floor = 1.0;       // sums of signed products cancel
      if (bias) {
        row.bad = {{Draw{{{2, 5}, {3, 4}, {3}}}, ErrKind::Shape},     // 5 features, weight wants 4
                   {Draw{{{2, 4}, {3, 4}, {5}}}, ErrKind::Shape},     // bias size
                   {Draw{{{2, 4}, {3, 4}, {1, 3}}}, ErrKind::Shape},  // bias rank
                   {Draw{{{2, 4}, {4}, {4}}}, ErrKind::Shape}};       // 1-D weight
      } else {
        row.bad = {{Draw{{{7, 784}, {10, 512}}}, ErrKind::Shape},
                   {Draw{{{}, {3, 4}}}, ErrKind::Shape}};
      }
      rows.push_back(row);
    }
  }
}

// ---- cross-entropy --------------------------------------------------------------------------

struct CeSpec {
  std::string name;
  bool weighted = false;
  double smoothing = 0.0;
  int64_t ignore_index = -100;
  double ignore_rate = 0.0;  // share of targets replaced by ignore_index
  bool backward = false;
};

// Classes: small primes mostly, sometimes past 1024 (where CUDA gives a row a whole block).
int64_t class_count(std::mt19937& rng) {
  static const int64_t kSizes[] = {1, 2, 3, 5, 7, 11, 13, 31};
  if (coin(rng, 0.1)) return 1031;
  return kSizes[uniform_int(rng, 0, 7)];
}

// shapes: ([grad_loss [N]], logits [N, C], [weight [C]]); dims: the N targets.
Draw ce_draw(std::mt19937& rng, const CeSpec& s) {
  const int64_t n = coin(rng, 0.05) ? 0 : uniform_int(rng, 1, 9), c = class_count(rng);
  Draw d;
  if (s.backward) d.shapes.push_back({n});
  d.shapes.push_back({n, c});
  if (s.weighted) d.shapes.push_back({c});
  for (int64_t i = 0; i < n; ++i)
    d.dims.push_back(coin(rng, s.ignore_rate) ? s.ignore_index : uniform_int(rng, 0, c - 1));
  return d;
}

Tensor targets_on(const Tensor& like, const Draw& d) {
  Tensor t = from_vector<int64_t>(d.dims, {int64_t(d.dims.size())},
                                  TensorOptions{Dtype::Int64, like.device()});
  return d.flag ? t.to(like.dtype()) : t;
}

CrossEntropyOptions ce_options(const CeSpec& s, const Ins& in) {
  CrossEntropyOptions o;
  if (s.weighted) o.weight = in.back();
  o.label_smoothing = s.smoothing;
  o.ignore_index = s.ignore_index;
  return o;
}

// Per row: loss, lse, sample weight, and (backward) the gradient of sum_i g_i loss_i.
struct CeRef {
  HostTensor loss, lse, sample_weight, grad;
};

CeRef ce_ref(const HIns& in, const Draw& d, const CeSpec& s) {
  const HostTensor& z = in[s.backward ? 1 : 0];
  const int64_t n = z.shape[0], c = z.shape[1];
  auto weight = [&](int64_t k) { return s.weighted ? in.back().v[size_t(k)] : 1.0; };
  CeRef r;
  r.loss = r.lse = r.sample_weight = HostTensor{{n}, std::vector<double>(size_t(n))};
  r.grad = HostTensor{{n, c}, std::vector<double>(size_t(n * c), 0.0)};
  const double eps = s.smoothing;
  for (int64_t i = 0; i < n; ++i) {
    const double* row = &z.v[size_t(i * c)];
    double m = row[0], sum = 0.0, wsum = 0.0;
    for (int64_t k = 0; k < c; ++k) m = std::max(m, row[k]);
    for (int64_t k = 0; k < c; ++k) sum += std::exp(row[k] - m);
    const double lse = m + std::log(sum);
    r.lse.v[size_t(i)] = lse;
    const int64_t y = d.dims[size_t(i)];
    if (y == s.ignore_index) continue;
    double smooth = 0.0;
    for (int64_t k = 0; k < c; ++k) {
      smooth += weight(k) * (lse - row[k]);
      wsum += weight(k);
    }
    r.loss.v[size_t(i)] = (1 - eps) * weight(y) * (lse - row[y]) + eps / double(c) * smooth;
    r.sample_weight.v[size_t(i)] = weight(y);
    if (!s.backward) continue;
    const double g = in[0].v[size_t(i)];
    for (int64_t k = 0; k < c; ++k) {
      const double p = std::exp(row[k] - lse);
      r.grad.v[size_t(i * c + k)] = g * ((1 - eps) * weight(y) * (p - (k == y ? 1.0 : 0.0)) +
                                         eps / double(c) * (wsum * p - weight(k)));
    }
  }
  return r;
}

void add_cross_entropy_rows(std::vector<OpCase>& rows) {
  const std::vector<CeSpec> specs = {
      {"cross_entropy", false, 0.0},
      {"cross_entropy_weighted", true, 0.0},
      {"cross_entropy_smoothing", false, 0.1},
      {"cross_entropy_weighted_smoothing", true, 0.25},
      // ignore_index = -1 among real classes, with weights and smoothing: ignored rows give 0.
      {"cross_entropy_ignore", true, 0.2, -1, 0.3},
      // ignore_index a valid class: it is ignored all the same, as in PyTorch.
      {"cross_entropy_ignore_class", false, 0.0, 0, 0.0},
      {"cross_entropy_grad", false, 0.0, -100, 0.0, true},
      {"cross_entropy_grad_weighted_smoothing", true, 0.15, -1, 0.25, true},
  };
  for (const CeSpec& s : specs) {
    OpCase row;
    row.name = s.name;
    row.err_name = "cross_entropy";
    row.arity = 1 + int(s.weighted) + int(s.backward);
    // Logits over a range where exp matters (and lse is far from every logit's value).
    row.domains = {Domain{-4.0, 4.0}};
    if (s.backward) row.domains.insert(row.domains.begin(), kSym);
    if (s.weighted) row.domains.push_back(Domain{0.1, 2.0});
    row.draw = [s](std::mt19937& rng) { return ce_draw(rng, s); };
    if (!s.backward) {
      row.run = [s](const Ins& in, const Draw& d) {
        const Tensor& logits = in[0];
        Tensor lse, sw;
        Tensor loss = cross_entropy(logits, targets_on(logits, d), ce_options(s, in), &lse, &sw);
        // lse is kept in float32 (float64); compared in the tested dtype, its own is checked in
        // test_nn_ops.cpp.
        return Ins{loss, lse.to(logits.dtype()), sw};
      };
      row.ref = [s](const HIns& in, const Draw& d) {
        CeRef r = ce_ref(in, d, s);
        return HIns{r.loss, r.lse, r.sample_weight};
      };
      row.out_dtypes = {std::nullopt, std::nullopt, std::nullopt};
    } else {
      row.run = [s](const Ins& in, const Draw& d) {
        const Tensor& logits = in[1];
        const Tensor target = targets_on(logits, d);
        const CrossEntropyOptions opt = ce_options(s, in);
        Tensor lse;
        cross_entropy(logits, target, opt, &lse);
        return Ins{cross_entropy_backward(in[0], logits, target, lse, opt)};
      };
      row.ref = [s](const HIns& in, const Draw& d) { return HIns{ce_ref(in, d, s).grad}; };
    }
    row.tol_scale = 4.0;
    row.floor = s.backward ? 0.1 : 1.0;  // lse - z and p - 1 cancel
    auto bad = [&](Shape logits, std::vector<int64_t> targets, Shape weight = {},
                   bool float_target = false) {
      Draw d;
      if (s.backward) d.shapes.push_back({logits.empty() ? 1 : logits[0]});
      d.shapes.push_back(logits);
      if (s.weighted) d.shapes.push_back(weight.empty() ? Shape{logits.back()} : weight);
      d.dims = std::move(targets);
      d.flag = float_target;
      return d;
    };
    row.bad = {
        {bad({3, 4}, {0, 1}), ErrKind::Shape},               // 2 targets for 3 samples
        {bad({3, 4}, {0, 1, 2}, {}, true), ErrKind::Dtype},  // floating targets
        {bad({4, 10}, {0, 9, 1, 12}), ErrKind::Index},       // class 12 of 10
        {bad({4}, {0}), ErrKind::Shape},                     // 1-D logits
        {bad({3, 0}, {0, 0, 0}, {0}), ErrKind::Shape},       // no classes
    };
    if (s.weighted) row.bad.push_back({bad({3, 4}, {0, 1, 2}, {5}), ErrKind::Shape});
    rows.push_back(row);
  }
}

}  // namespace

void add_nn_rows(std::vector<OpCase>& rows) {
  add_linear_rows(rows);
  add_cross_entropy_rows(rows);
}

}  // namespace nn::test
