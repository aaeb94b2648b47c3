// The gradient table (tests/grad_table.h): elementwise, reduction, softmax and matmul-family
// rows here; the neural-network ops and the shape ops in grad_table_nn.cpp.

// GCC 12 reports a false -Wmaybe-uninitialized inside std::regex's std::function members when
// building with -O2 and the sanitizers (a known libstdc++/GCC issue); the code here is fine.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "tests/grad_table.h"

#include <regex>


#include "graph/functions.h"
#include "tests/grad_table_util.h"

namespace nn::test {

namespace {

// ---- unary ------------------------------------------------------------------------------------

// How an op's input is drawn: away from its kinks and inside its domain.
enum class UDraw { Any, Positive, AwayFromZero, Clamp, Wide, Softplus };

Tensor draw_unary(Rng& r, const Shape& s, UDraw d) {
  switch (d) {
    case UDraw::Any:
      return uniform(r, s, -2.0, 2.0);
    case UDraw::Positive:
      return uniform(r, s, 0.2, 2.0);
    case UDraw::AwayFromZero:
      return away(r, s, 0.1, 2.0);
    case UDraw::Clamp:  // clamp(-0.5, 0.5)
      return avoiding(r, s, -1.0, 1.0, {-0.5, 0.5}, 0.05);
    case UDraw::Wide:
      return uniform(r, s, -3.0, 3.0);
    case UDraw::Softplus:  // softplus(beta 2, threshold 3): linear beyond x = 1.5
      return avoiding(r, s, -2.0, 2.0, {1.5}, 0.05);
  }
  return {};
}

struct UnarySpec {
  UnaryOp op;
  double alpha, beta;
  UDraw draw;
};

const std::vector<UnarySpec>& unary_specs() {
  static const std::vector<UnarySpec> kSpecs = {
      {UnaryOp::Neg, 0, 0, UDraw::Any},
      {UnaryOp::Exp, 0, 0, UDraw::Any},
      {UnaryOp::Log, 0, 0, UDraw::Positive},
      {UnaryOp::Sqrt, 0, 0, UDraw::Positive},
      {UnaryOp::Rsqrt, 0, 0, UDraw::Positive},
      {UnaryOp::Abs, 0, 0, UDraw::AwayFromZero},
      {UnaryOp::Sign, 0, 0, UDraw::AwayFromZero},
      {UnaryOp::Pow, 2.5, 0, UDraw::Positive},
      {UnaryOp::Clamp, -0.5, 0.5, UDraw::Clamp},
      {UnaryOp::Relu, 0, 0, UDraw::AwayFromZero},
      {UnaryOp::LeakyRelu, 0.1, 0, UDraw::AwayFromZero},
      {UnaryOp::Sigmoid, 0, 0, UDraw::Wide},
      {UnaryOp::Tanh, 0, 0, UDraw::Wide},
      {UnaryOp::Gelu, 0, 0, UDraw::Wide},
      {UnaryOp::GeluTanh, 0, 0, UDraw::Wide},
      {UnaryOp::Silu, 0, 0, UDraw::Wide},
      {UnaryOp::Softplus, 2.0, 3.0, UDraw::Softplus},
  };
  return kSpecs;
}

// A row for a one-input function drawn with `d` on a random shape (strided half the time).
GradRow unary_row(const std::string& name, const std::string& cover, UDraw d,
                  std::function<Variable(const Variable&)> f) {
  return {name, {cover}, [d, f](Rng& r, int) {
            Tensor x = maybe_strided(r, draw_unary(r, rand_shape(r, 0, 4), d));
            return instance({x}, [f](const Vars& v) { return f(v[0]); });
          }};
}

void add_unary_rows(std::vector<GradRow>& t) {
  // The generic entry: every unary op at once, one input each, results joined.
  t.push_back({"unary_every_op", {"unary(UnaryOp, Variable, double, double)"}, [](Rng& r, int) {
                 std::vector<Tensor> xs;
                 for (const UnarySpec& s : unary_specs())
                   xs.push_back(draw_unary(r, rand_shape(r, 0, 3), s.draw));
                 return instance(xs, [](const Vars& v) {
                   Vars outs;
                   for (size_t i = 0; i < v.size(); ++i) {
                     const UnarySpec& s = unary_specs()[i];
                     outs.push_back(reshape(unary(s.op, v[i], s.alpha, s.beta), {-1}));
                   }
                   return cat(outs);
                 });
               }});
  t.push_back(unary_row("neg", "neg(Variable)", UDraw::Any, [](auto& x) { return neg(x); }));
  t.push_back(unary_row("exp", "exp(Variable)", UDraw::Any, [](auto& x) { return exp(x); }));
  t.push_back(unary_row("log", "log(Variable)", UDraw::Positive, [](auto& x) { return log(x); }));
  t.push_back(
      unary_row("sqrt", "sqrt(Variable)", UDraw::Positive, [](auto& x) { return sqrt(x); }));
  t.push_back(
      unary_row("rsqrt", "rsqrt(Variable)", UDraw::Positive, [](auto& x) { return rsqrt(x); }));
  t.push_back(
      unary_row("abs", "abs(Variable)", UDraw::AwayFromZero, [](auto& x) { return abs(x); }));
  t.push_back(unary_row("clamp", "clamp(Variable, double, double)", UDraw::Clamp,
                        [](auto& x) { return clamp(x, -0.5, 0.5); }));
  t.push_back(
      unary_row("relu", "relu(Variable)", UDraw::AwayFromZero, [](auto& x) { return relu(x); }));
  t.push_back(
      unary_row("sigmoid", "sigmoid(Variable)", UDraw::Wide, [](auto& x) { return sigmoid(x); }));
  t.push_back(unary_row("tanh", "tanh(Variable)", UDraw::Wide, [](auto& x) { return tanh(x); }));
  t.push_back(unary_row("silu", "silu(Variable)", UDraw::Wide, [](auto& x) { return silu(x); }));
  t.push_back({"gelu", {"gelu(Variable, bool)"}, [](Rng& r, int trial) {
                 const bool approx = trial % 2 == 1;
                 Tensor x = maybe_strided(r, uniform(r, rand_shape(r, 0, 4), -3.0, 3.0));
                 return instance(
                     {x}, [approx](const Vars& v) { return gelu(v[0], approx); },
                     approx ? "tanh approximation" : "exact");
               }});
  t.push_back({"leaky_relu", {"leaky_relu(Variable, double)"}, [](Rng& r, int) {
                 const double slope = uni(r, 0.01, 0.3);
                 Tensor x = away(r, rand_shape(r, 0, 4), 0.1, 2.0);
                 return instance(
                     {x}, [slope](const Vars& v) { return leaky_relu(v[0], slope); },
                     "slope " + std::to_string(slope));
               }});
  t.push_back({"pow_scalar",
               {"pow(Variable, double)"},
               [](Rng& r, int trial) {
                 // Non-integer exponents need x > 0; integer ones take any sign.
                 static const double kExp[] = {2.5, 3.0, -2.0, 0.5, 1.0, 0.0};
                 const double e = kExp[trial % 6];
                 const Shape s = rand_shape(r, 0, 4);
                 Tensor x = e == 2.5 || e == 0.5 ? uniform(r, s, 0.2, 2.0) : away(r, s, 0.3, 2.0);
                 return instance(
                     {x}, [e](const Vars& v) { return pow(v[0], e); },
                     "exponent " + std::to_string(e));
               },
               6});
  t.push_back({"softplus",
               {"softplus(Variable, double, double)"},
               [](Rng& r, int trial) {
                 static const double kBeta[] = {1.0, 2.0, 0.5}, kThreshold[] = {20.0, 3.0, 1.0};
                 const double beta = kBeta[trial % 3], threshold = kThreshold[trial % 3];
                 Tensor x = avoiding(r, rand_shape(r, 0, 4), -3.0, 3.0, {threshold / beta}, 0.05);
                 return instance(
                     {x}, [=](const Vars& v) { return softplus(v[0], beta, threshold); },
                     "beta " + std::to_string(beta) + " threshold " + std::to_string(threshold));
               },
               3});
  t.push_back({"activation", {"activation(Activation, Variable)"}, [](Rng& r, int) {
                 std::vector<Tensor> xs;
                 for (Activation a : all_activations()) {
                   const Shape s = rand_shape(r, 0, 3);
                   xs.push_back(a == Activation::Relu ? away(r, s, 0.1, 2.0)
                                                      : uniform(r, s, -3.0, 3.0));
                 }
                 return instance(xs, [](const Vars& v) {
                   Vars outs;
                   for (size_t i = 0; i < v.size(); ++i)
                     outs.push_back(reshape(activation(all_activations()[i], v[i]), {-1}));
                   return cat(outs);
                 });
               }});
}

// ---- binary -----------------------------------------------------------------------------------

// Operands for op: b away from 0 for div, both positive-based for pow, interleaved grids for
// maximum / minimum (every pair of values differs by at least 0.06, so no tie).
std::pair<Tensor, Tensor> draw_binary(Rng& r, BinaryOp op) {
  auto [sa, sb] = broadcast_pair(r);
  switch (op) {
    case BinaryOp::Div:
      return {uniform(r, sa, -2.0, 2.0), away(r, sb, 0.3, 2.0)};
    case BinaryOp::Pow:
      return {uniform(r, sa, 0.5, 2.0), uniform(r, sb, -2.0, 2.0)};
    case BinaryOp::Maximum:
    case BinaryOp::Minimum:
      return {grid(r, sa, 0.0), grid(r, sb, 0.1)};
    default:
      return {uniform(r, sa, -2.0, 2.0), uniform(r, sb, -2.0, 2.0)};
  }
}

GradRow binary_row(const std::string& name, BinaryOp op,
                   std::function<Variable(const Variable&, const Variable&)> f) {
  return {name,
          {name + "(Variable, Variable)"},
          [op, f](Rng& r, int) {
            auto [a, b] = draw_binary(r, op);
            return instance({maybe_strided(r, a), b}, [f](const Vars& v) { return f(v[0], v[1]); });
          },
          6};
}

const std::vector<BinaryOp>& arithmetic_ops() {
  static const std::vector<BinaryOp> kOps = {BinaryOp::Add, BinaryOp::Sub,     BinaryOp::Mul,
                                             BinaryOp::Div, BinaryOp::Maximum, BinaryOp::Minimum,
                                             BinaryOp::Pow};
  return kOps;
}

// A row for a function of one Variable and a scalar drawn per trial.
GradRow scalar_row(const std::string& name, const std::string& cover,
                   std::function<Variable(const Variable&, double)> f) {
  return {name, {cover}, [f](Rng& r, int) {
            const double s = (coin(r) ? 1.0 : -1.0) * uni(r, 0.3, 3.0);
            Tensor x = uniform(r, rand_shape(r, 0, 4), -2.0, 2.0);
            return instance(
                {x}, [f, s](const Vars& v) { return f(v[0], s); }, "scalar " + std::to_string(s));
          }};
}

void add_binary_rows(std::vector<GradRow>& t) {
  t.push_back({"binary_every_op", {"binary(BinaryOp, Variable, Variable)"}, [](Rng& r, int) {
                 std::vector<Tensor> xs;
                 for (BinaryOp op : arithmetic_ops()) {
                   auto [a, b] = draw_binary(r, op);
                   xs.push_back(a);
                   xs.push_back(b);
                 }
                 return instance(xs, [](const Vars& v) {
                   Vars outs;
                   for (size_t i = 0; i < arithmetic_ops().size(); ++i)
                     outs.push_back(
                         reshape(binary(arithmetic_ops()[i], v[2 * i], v[2 * i + 1]), {-1}));
                   return cat(outs);
                 });
               }});
  t.push_back(binary_row("add", BinaryOp::Add, [](auto& a, auto& b) { return add(a, b); }));
  t.push_back(binary_row("sub", BinaryOp::Sub, [](auto& a, auto& b) { return sub(a, b); }));
  t.push_back(binary_row("mul", BinaryOp::Mul, [](auto& a, auto& b) { return mul(a, b); }));
  t.push_back(binary_row("div", BinaryOp::Div, [](auto& a, auto& b) { return div(a, b); }));
  t.push_back(binary_row("pow", BinaryOp::Pow, [](auto& a, auto& b) { return pow(a, b); }));
  t.push_back(
      binary_row("maximum", BinaryOp::Maximum, [](auto& a, auto& b) { return maximum(a, b); }));
  t.push_back(
      binary_row("minimum", BinaryOp::Minimum, [](auto& a, auto& b) { return minimum(a, b); }));

  t.push_back(scalar_row("add_scalar", "add(Variable, double)",
                         [](const Variable& x, double s) { return add(x, s); }));
  t.push_back(scalar_row("sub_scalar", "sub(Variable, double)",
                         [](const Variable& x, double s) { return sub(x, s); }));
  t.push_back(scalar_row("mul_scalar", "mul(Variable, double)",
                         [](const Variable& x, double s) { return mul(x, s); }));
  t.push_back(scalar_row("div_scalar", "div(Variable, double)",
                         [](const Variable& x, double s) { return div(x, s); }));
  t.push_back(scalar_row("rsub_scalar", "rsub(double, Variable)",
                         [](const Variable& x, double s) { return rsub(s, x); }));

  t.push_back({"where", {"where(Tensor, Variable, Variable)"}, [](Rng& r, int) {
                 auto [sa, sb] = broadcast_pair(r);
                 const Shape sc = broadcast_of(r, broadcast_shapes({sa, sb}));
                 std::vector<bool> c(size_t(shape_numel(sc)));
                 for (size_t i = 0; i < c.size(); ++i) c[i] = coin(r);
                 // cond travels as a constant input, so the row can be moved to another device.
                 GradInstance g =
                     instance({uniform(r, sa, -2.0, 2.0), uniform(r, sb, -2.0, 2.0),
                               from_vector(c, sc, {Dtype::Bool})},
                              [](const Vars& v) { return where(v[2].data(), v[0], v[1]); });
                 g.options.differentiable = {true, true, false};
                 return g;
               }});

  // Every operator spelling in one expression (b is kept away from 0 for the divisions).
  t.push_back(
      {"operators",
       {"operator-(Variable)", "operator+(Variable, Variable)", "operator-(Variable, Variable)",
        "operator*(Variable, Variable)", "operator/(Variable, Variable)",
        "operator+(Variable, double)", "operator-(Variable, double)", "operator*(Variable, double)",
        "operator/(Variable, double)", "operator+(double, Variable)", "operator-(double, Variable)",
        "operator*(double, Variable)"},
       [](Rng& r, int) {
         auto [sa, sb] = broadcast_pair(r);
         return instance({uniform(r, sa, -2.0, 2.0), away(r, sb, 0.3, 2.0)}, [](const Vars& v) {
           const Variable &a = v[0], &b = v[1];
           Variable e1 = (-a + b) - a * b + a / b;
           Variable e2 = (a + 2.0) - (a - 1.5) + a * 0.5 + b / 3.0;
           Variable e3 = (1.0 + a) + (2.0 - b) + 3.0 * b;
           return e1 * e2 + e3;
         });
       }});
}

// ---- reductions and softmax -------------------------------------------------------------------

// A random subset of x's axes (possibly empty = all), some spelled negatively.
std::vector<int64_t> rand_dims(Rng& r, int64_t rank) {
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < rank; ++d)
    if (coin(r, 0.4)) dims.push_back(coin(r) ? d : d - rank);
  return dims;
}

using ReduceFn = std::function<Variable(const Variable&, const std::vector<int64_t>&, bool)>;

GradRow reduce_row(const std::string& name, bool distinct_values, ReduceFn f) {
  return {name,
          {name + "(Variable, vector<int64_t>, bool)"},
          [distinct_values, f](Rng& r, int) {
            const Shape s = rand_shape(r, 0, 4);
            const std::vector<int64_t> dims = rand_dims(r, int64_t(s.size()));
            const bool keepdim = coin(r);
            Tensor x = distinct_values ? distinct(r, s) : uniform(r, s, -2.0, 2.0);
            return instance(
                {maybe_strided(r, x)}, [=](const Vars& v) { return f(v[0], dims, keepdim); },
                "dims " + shape_str(dims) + (keepdim ? " keepdim" : ""));
          },
          6};
}

GradRow index_reduce_row(const std::string& name, bool is_max) {
  return {name,
          {name + "(Variable, int64_t, bool)"},
          [is_max](Rng& r, int) {
            const Shape s = rand_shape(r, 0, 4);
            const int64_t rank = int64_t(s.size());
            const int64_t dim = rank == 0 ? 0 : irand(r, -rank, rank - 1);
            const bool keepdim = coin(r);
            return instance(
                {maybe_strided(r, distinct(r, s))},
                [=](const Vars& v) {
                  return (is_max ? max(v[0], dim, keepdim) : min(v[0], dim, keepdim)).first;
                },
                "dim " + std::to_string(dim) + (keepdim ? " keepdim" : ""));
          },
          6};
}

GradRow softmax_row(const std::string& name, bool log) {
  return {name,
          {name + "(Variable, int64_t)"},
          [log](Rng& r, int) {
            const Shape s = rand_shape(r, 1, 4);
            const int64_t rank = int64_t(s.size());
            const int64_t dim = irand(r, -rank, rank - 1);
            return instance(
                {maybe_strided(r, uniform(r, s, -3.0, 3.0))},
                [=](const Vars& v) { return log ? log_softmax(v[0], dim) : softmax(v[0], dim); },
                "dim " + std::to_string(dim));
          },
          6};
}

void add_reduce_rows(std::vector<GradRow>& t) {
  t.push_back(reduce_row("sum", false, [](auto& x, auto& d, bool k) { return sum(x, d, k); }));
  t.push_back(reduce_row("mean", false, [](auto& x, auto& d, bool k) { return mean(x, d, k); }));
  t.push_back(reduce_row("amax", true, [](auto& x, auto& d, bool k) { return amax(x, d, k); }));
  t.push_back(reduce_row("amin", true, [](auto& x, auto& d, bool k) { return amin(x, d, k); }));
  t.push_back({"var",
               {"var(Variable, vector<int64_t>, int64_t, bool)"},
               [](Rng& r, int trial) {
                 // At least three elements per group, so every correction 0..2 is finite.
                 Shape s = rand_shape(r, 1, 4);
                 std::vector<int64_t> dims = rand_dims(r, int64_t(s.size()));
                 int64_t d0 = dims.empty() ? 0 : (dims[0] + int64_t(s.size())) % int64_t(s.size());
                 s[size_t(d0)] = std::max<int64_t>(s[size_t(d0)], 3);
                 const int64_t correction = trial % 3;
                 const bool keepdim = coin(r);
                 return instance(
                     {uniform(r, s, -2.0, 2.0)},
                     [=](const Vars& v) { return var(v[0], dims, correction, keepdim); },
                     "dims " + shape_str(dims) + " correction " + std::to_string(correction));
               },
               6});
  t.push_back(index_reduce_row("max", true));
  t.push_back(index_reduce_row("min", false));
  t.push_back(softmax_row("softmax", false));
  t.push_back(softmax_row("log_softmax", true));
}

// ---- matmul and bmm ---------------------------------------------------------------------------

// Trial cases: 2-D x 2-D, equal batches, broadcast batches, vector x matrix, matrix x vector,
// vector x vector; each with the four transpose combinations.
GradInstance matmul_case(Rng& r, int trial) {
  const int kind = trial % 6;
  const bool ta = (trial / 6) & 1, tb = (trial / 6) & 2;
  const int64_t m = irand(r, 1, 4), k = irand(r, 1, 5), n = irand(r, 1, 4);
  auto mat = [&](int64_t rows, int64_t cols, bool trans, Shape batch) {
    batch.push_back(trans ? cols : rows);
    batch.push_back(trans ? rows : cols);
    return maybe_strided(r, uniform(r, batch, -2.0, 2.0));
  };
  Tensor a, b;
  switch (kind) {
    case 0:
      a = mat(m, k, ta, {}), b = mat(k, n, tb, {});
      break;
    case 1:
      a = mat(m, k, ta, {2}), b = mat(k, n, tb, {2});
      break;
    case 2:
      a = mat(m, k, ta, {2, 1}), b = mat(k, n, tb, {3});
      break;
    case 3:
      a = uniform(r, {k}, -2.0, 2.0), b = mat(k, n, tb, coin(r) ? Shape{2} : Shape{});
      break;
    case 4:
      a = mat(m, k, ta, coin(r) ? Shape{3} : Shape{}), b = uniform(r, {k}, -2.0, 2.0);
      break;
    default:
      a = uniform(r, {k}, -2.0, 2.0), b = uniform(r, {k}, -2.0, 2.0);
      break;
  }
  return instance(
      {a, b}, [ta, tb](const Vars& v) { return matmul(v[0], v[1], ta, tb); },
      std::string(ta ? "trans_a " : "") + (tb ? "trans_b" : ""));
}

void add_matmul_rows(std::vector<GradRow>& t) {
  t.push_back({"matmul", {"matmul(Variable, Variable, bool, bool)"}, matmul_case, 24});
  t.push_back({"bmm", {"bmm(Variable, Variable)"}, [](Rng& r, int) {
                 const int64_t batch = irand(r, 1, 3), m = irand(r, 1, 4), k = irand(r, 1, 4),
                               n = irand(r, 1, 4);
                 return instance({maybe_strided(r, uniform(r, {batch, m, k}, -2.0, 2.0)),
                                  uniform(r, {batch, k, n}, -2.0, 2.0)},
                                 [](const Vars& v) { return bmm(v[0], v[1]); });
               }});
}

}  // namespace

const std::vector<GradRow>& grad_table() {
  static const std::vector<GradRow> kTable = [] {
    std::vector<GradRow> t;
    add_unary_rows(t);
    add_binary_rows(t);
    add_reduce_rows(t);
    add_matmul_rows(t);
    add_nn_rows(t);
    add_activation_rows(t);
    add_conv_rows(t);
    add_shape_rows(t);
    return t;
  }();
  return kTable;
}

std::vector<std::string> declared_signatures(const std::string& header_text) {
  // Comments out, whitespace collapsed, so declarations spanning lines read as one.
  std::string text = std::regex_replace(header_text, std::regex("//[^\n]*"), "");
  text = std::regex_replace(text, std::regex("\\s+"), " ");
  static const std::regex kDecl(
      "\\b(?:Variable|std::pair<Variable, Tensor>|std::vector<Variable>) "
      "(operator ?[-+*/]|\\w+) ?\\(([^)]*)\\) ?;");
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kDecl);
       it != std::sregex_iterator(); ++it) {
    std::string name = std::regex_replace((*it)[1].str(), std::regex(" "), "");
    std::string params = (*it)[2].str(), sig = name + "(";
    size_t start = 0;
    for (int count = 0; start <= params.size(); ++count) {
      size_t comma = params.find(',', start);
      if (comma == std::string::npos) comma = params.size();
      std::string p = params.substr(start, comma - start);
      p = p.substr(0, p.find('='));
      p = std::regex_replace(p, std::regex("const |std::|&"), "");
      p = std::regex_replace(p, std::regex("^ +| +$"), "");
      p = std::regex_replace(p, std::regex(" \\w+$"), "");  // the parameter's name
      if (!p.empty()) sig += (count > 0 ? ", " : "") + p;
      start = comma + 1;
    }
    out.push_back(sig + ")");
  }
  return out;
}

}  // namespace nn::test
