// The op table: one row per op. Each reference is plain float64 host code with naive loops and
// broadcasting done here; none of it calls the library.
#include "tests/op_refs.h"

namespace nn::test {
namespace {

// ---- rows -----------------------------------------------------------------------------------
struct UnarySpec {
  std::string name;
  UnaryOp op;
  double alpha, beta;
  Domain domain;
  std::function<Tensor(const Tensor&)> fwd;
  std::function<double(double)> f;
  std::function<double(double)> df;
  double tol_scale = 1.0;
};

double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double phi_cdf(double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh_inner(double x) { return std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x); }

std::vector<UnarySpec> unary_specs() {
  return {
      {"neg", UnaryOp::Neg, 0, 0, kSym, [](const Tensor& x) { return neg(x); },
       [](double x) { return -x; }, [](double) { return -1.0; }},
      {"exp", UnaryOp::Exp, 0, 0, kSym, [](const Tensor& x) { return exp(x); },
       [](double x) { return std::exp(x); }, [](double x) { return std::exp(x); }},
      {"log", UnaryOp::Log, 0, 0, kPos, [](const Tensor& x) { return log(x); },
       [](double x) { return std::log(x); }, [](double x) { return 1.0 / x; }},
      {"sqrt", UnaryOp::Sqrt, 0, 0, kPos, [](const Tensor& x) { return sqrt(x); },
       [](double x) { return std::sqrt(x); }, [](double x) { return 0.5 / std::sqrt(x); }},
      {"rsqrt", UnaryOp::Rsqrt, 0, 0, kPos, [](const Tensor& x) { return rsqrt(x); },
       [](double x) { return 1.0 / std::sqrt(x); },
       [](double x) { return -0.5 / (x * std::sqrt(x)); }},
      {"abs", UnaryOp::Abs, 0, 0, kSym, [](const Tensor& x) { return abs(x); },
       [](double x) { return std::abs(x); }, [](double x) { return x > 0 ? 1.0 : -1.0; }},
      {"sign", UnaryOp::Sign, 0, 0, kSym, [](const Tensor& x) { return sign(x); },
       [](double x) { return x > 0 ? 1.0 : -1.0; }, [](double) { return 0.0; }},
      {"pow", UnaryOp::Pow, 2.5, 0, Domain{0.1, 3.0}, [](const Tensor& x) { return pow(x, 2.5); },
       [](double x) { return std::pow(x, 2.5); }, [](double x) { return 2.5 * std::pow(x, 1.5); }},
      {"clamp", UnaryOp::Clamp, -0.5, 0.7, kSym,
       [](const Tensor& x) { return clamp(x, -0.5, 0.7); },
       [](double x) { return std::min(std::max(x, -0.5), 0.7); },
       [](double x) { return (x >= -0.5 && x <= 0.7) ? 1.0 : 0.0; }},
      {"relu", UnaryOp::Relu, 0, 0, kSym, [](const Tensor& x) { return relu(x); },
       [](double x) { return x > 0 ? x : 0.0; }, [](double x) { return x > 0 ? 1.0 : 0.0; }},
      {"leaky_relu", UnaryOp::LeakyRelu, 0.1, 0, kSym,
       [](const Tensor& x) { return leaky_relu(x, 0.1); },
       [](double x) { return x > 0 ? x : 0.1 * x; }, [](double x) { return x > 0 ? 1.0 : 0.1; }},
      {"sigmoid", UnaryOp::Sigmoid, 0, 0, Domain{-6, 6}, [](const Tensor& x) { return sigmoid(x); },
       sigmoid_ref, [](double x) { return sigmoid_ref(x) * (1 - sigmoid_ref(x)); }, 2.0},
      {"tanh", UnaryOp::Tanh, 0, 0, kSym, [](const Tensor& x) { return tanh(x); },
       [](double x) { return std::tanh(x); },
       [](double x) { return 1 - std::tanh(x) * std::tanh(x); }, 2.0},
      // float32 erf near -2 leaves few significant bits in 1 + erf: a looser bound, not a bug.
      {"gelu", UnaryOp::Gelu, 0, 0, kSym, [](const Tensor& x) { return gelu(x); },
       [](double x) { return x * phi_cdf(x); },
       [](double x) { return phi_cdf(x) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI); }, 4.0},
      {"gelu_tanh", UnaryOp::GeluTanh, 0, 0, kSym, [](const Tensor& x) { return gelu(x, true); },
       [](double x) { return 0.5 * x * (1 + std::tanh(gelu_tanh_inner(x))); },
       [](double x) {
         double t = std::tanh(gelu_tanh_inner(x));
         double dinner = std::sqrt(2.0 / M_PI) * (1 + 3 * 0.044715 * x * x);
         return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dinner;
       },
       4.0},
      {"silu", UnaryOp::Silu, 0, 0, kSym, [](const Tensor& x) { return silu(x); },
       [](double x) { return x * sigmoid_ref(x); },
       [](double x) { return sigmoid_ref(x) * (1 + x * (1 - sigmoid_ref(x))); }, 2.0},
      // beta 2, threshold 1: both the smooth and the linear branch are hit.
      {"softplus", UnaryOp::Softplus, 2.0, 1.0, kSym,
       [](const Tensor& x) { return softplus(x, 2.0, 1.0); },
       [](double x) { return 2 * x > 1 ? x : std::log1p(std::exp(2 * x)) / 2; },
       [](double x) { return 2 * x > 1 ? 1.0 : sigmoid_ref(2 * x); }, 2.0},
  };
}

std::vector<BadCase> binary_bad() {
  return {{Draw{{{2, 3}, {4}}}, ErrKind::Shape}, {Draw{{{2, 3}, {3, 2}}}, ErrKind::Shape}};
}

void add_unary_rows(std::vector<OpCase>& rows) {
  for (const UnarySpec& u : unary_specs()) {
    OpCase fwd;
    fwd.name = u.name;
    fwd.err_name = u.name;
    fwd.arity = 1;
    fwd.domains = {u.domain};
    fwd.draw = [](std::mt19937& rng) { return same_shape_draw(rng, 1); };
    fwd.run = [f = u.fwd](const std::vector<Tensor>& in, const Draw&) {
      return std::vector<Tensor>{f(in[0])};
    };
    fwd.ref = [f = u.f](const std::vector<HostTensor>& in, const Draw&) {
      return std::vector<HostTensor>{
          map_broadcast(in, [&](const std::vector<double>& a) { return f(a[0]); })};
    };
    fwd.tol_scale = u.tol_scale;
    if (u.op == UnaryOp::Neg || u.op == UnaryOp::Abs || u.op == UnaryOp::Sign) {
      fwd.accepts = {Dtype::Int64};
    }
    rows.push_back(fwd);

    // The generic entry, in place: unary_(op, x) writes through x's (possibly strided) view.
    OpCase inplace = fwd;
    inplace.name = u.name + "_inplace";
    inplace.expand_ok = false;
    inplace.run = [op = u.op, a = u.alpha, b = u.beta](const std::vector<Tensor>& in, const Draw&) {
      Tensor x = in[0];
      Tensor& r = unary_(op, x, a, b);
      return std::vector<Tensor>{r};
    };
    rows.push_back(inplace);

    OpCase bwd;
    bwd.name = u.name + "_backward";
    bwd.err_name = u.name;
    bwd.arity = 2;
    bwd.domains = {kSym, u.domain};
    bwd.draw = [](std::mt19937& rng) { return same_shape_draw(rng, 2); };
    bwd.run = [op = u.op, a = u.alpha, b = u.beta](const std::vector<Tensor>& in, const Draw&) {
      return std::vector<Tensor>{unary_backward(op, in[0], in[1], a, b)};
    };
    bwd.ref = [df = u.df](const std::vector<HostTensor>& in, const Draw&) {
      return std::vector<HostTensor>{
          map_broadcast(in, [&](const std::vector<double>& a) { return a[0] * df(a[1]); })};
    };
    bwd.tol_scale = u.tol_scale;
    bwd.floor = 1e-2;  // gelu' and silu' cross zero: absolute error near the crossing
    bwd.bad = {{Draw{{{2, 3}, {3, 2}}}, ErrKind::Shape}};
    rows.push_back(bwd);
  }
}

struct BinarySpec {
  std::string name;
  std::function<Tensor(const Tensor&, const Tensor&)> fn;
  std::function<double(double, double)> f;
  Domain da, db;
  bool comparison = false;
};

void add_binary_rows(std::vector<OpCase>& rows) {
  const std::vector<BinarySpec> specs = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); },
       [](double a, double b) { return a + b; }, kSym, kSym},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); },
       [](double a, double b) { return a - b; }, kSym, kSym},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); },
       [](double a, double b) { return a * b; }, kSym, kSym},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); },
       [](double a, double b) { return a / b; }, kSym, kSym},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
       [](double a, double b) { return std::max(a, b); }, kSym, kSym},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
       [](double a, double b) { return std::min(a, b); }, kSym, kSym},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); },
       [](double a, double b) { return std::pow(a, b); }, Domain{0.1, 3.0}, kSym},
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); },
       [](double a, double b) { return double(a == b); }, kInts, kInts, true},
      {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); },
       [](double a, double b) { return double(a != b); }, kInts, kInts, true},
      {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); },
       [](double a, double b) { return double(a < b); }, kInts, kInts, true},
      {"le", [](const Tensor& a, const Tensor& b) { return le(a, b); },
       [](double a, double b) { return double(a <= b); }, kInts, kInts, true},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); },
       [](double a, double b) { return double(a > b); }, kInts, kInts, true},
      {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); },
       [](double a, double b) { return double(a >= b); }, kInts, kInts, true},
  };
  for (const BinarySpec& s : specs) {
    OpCase row;
    row.name = s.name == "pow" ? "pow_tensor" : s.name;
    row.err_name = s.name;
    row.arity = 2;
    row.domains = {s.da, s.db};
    row.draw = [](std::mt19937& rng) { return broadcast_draw(rng, 2, true); };
    row.run = [fn = s.fn](const std::vector<Tensor>& in, const Draw&) {
      return std::vector<Tensor>{fn(in[0], in[1])};
    };
    row.ref = [f = s.f](const std::vector<HostTensor>& in, const Draw&) {
      return std::vector<HostTensor>{
          map_broadcast(in, [&](const std::vector<double>& a) { return f(a[0], a[1]); })};
    };
    if (s.comparison) row.out_dtypes = {Dtype::Bool};
    row.bad = binary_bad();
    rows.push_back(row);
  }
  // In place: b broadcasts into a, which keeps its shape and (strided) storage.
  const std::vector<std::pair<std::string, BinaryOp>> inplace = {{"add", BinaryOp::Add},
                                                                 {"sub", BinaryOp::Sub},
                                                                 {"mul", BinaryOp::Mul},
                                                                 {"div", BinaryOp::Div}};
  for (const auto& [name, op] : inplace) {
    OpCase row = rows[size_t(
        std::find_if(rows.begin(), rows.end(), [&](const OpCase& r) { return r.name == name; }) -
        rows.begin())];
    row.name = name + "_inplace";
    row.expand_ok = false;
    row.draw = [](std::mt19937& rng) {
      Draw d = broadcast_draw(rng, 2, true);
      d.shapes[0] = broadcast_shapes(d.shapes);
      return d;
    };
    row.run = [op = op](const std::vector<Tensor>& in, const Draw&) {
      Tensor a = in[0];
      Tensor& r = op == BinaryOp::Add   ? add_(a, in[1])
                  : op == BinaryOp::Sub ? sub_(a, in[1])
                  : op == BinaryOp::Mul ? mul_(a, in[1])
                                        : div_(a, in[1]);
      return std::vector<Tensor>{r};
    };
    row.bad = {{Draw{{{3}, {2, 3}}}, ErrKind::Shape}};  // the result would not fit in a
    rows.push_back(row);
  }
  // Scalar operands and the operators.
  struct ScalarSpec {
    std::string name, err;
    std::function<Tensor(const Tensor&)> fn;
    std::function<double(double)> f;
  };
  const std::vector<ScalarSpec> scalars = {
      {"add_scalar", "add", [](const Tensor& x) { return add(x, 0.75); },
       [](double x) { return x + 0.75; }},
      {"mul_scalar", "mul", [](const Tensor& x) { return mul(x, -1.5); },
       [](double x) { return x * -1.5; }},
      {"maximum_scalar", "maximum",
       [](const Tensor& x) { return binary(BinaryOp::Maximum, x, 0.25); },
       [](double x) { return std::max(x, 0.25); }},
      {"operators", "sub", [](const Tensor& x) { return ((x - 0.5) / 1.25 + x * 2.0) - (-x); },
       [](double x) { return ((x - 0.5) / 1.25 + x * 2.0) + x; }},
  };
  for (const ScalarSpec& s : scalars) {
    OpCase row;
    row.name = s.name;
    row.err_name = s.err;
    row.domains = {kSym};
    row.draw = [](std::mt19937& rng) { return same_shape_draw(rng, 1); };
    row.run = [fn = s.fn](const std::vector<Tensor>& in, const Draw&) {
      return std::vector<Tensor>{fn(in[0])};
    };
    row.ref = [f = s.f](const std::vector<HostTensor>& in, const Draw&) {
      return std::vector<HostTensor>{
          map_broadcast(in, [&](const std::vector<double>& a) { return f(a[0]); })};
    };
    row.floor = 1.0;  // x - 0.5 cancels near 0.5
    row.dtype_errors =
        s.name != "operators";  // a chain: whichever op sees the int first names itself
    rows.push_back(row);
  }
  OpCase w;
  w.name = "where";
  w.err_name = "where";
  w.arity = 3;
  w.domains = {kBool, kSym, kSym};
  w.draw = [](std::mt19937& rng) { return broadcast_draw(rng, 3, true); };
  w.run = [](const std::vector<Tensor>& in, const Draw&) {
    return std::vector<Tensor>{where(in[0], in[1], in[2])};
  };
  w.ref = [](const std::vector<HostTensor>& in, const Draw&) {
    return std::vector<HostTensor>{
        map_broadcast(in, [](const std::vector<double>& a) { return a[0] != 0 ? a[1] : a[2]; })};
  };
  w.bad = {{Draw{{{5}, {2, 3}, {2, 3}}}, ErrKind::Shape}};
  rows.push_back(w);
}

}  // namespace

void add_reduction_rows(std::vector<OpCase>& rows);
void add_copy_rows(std::vector<OpCase>& rows);
void add_nn_rows(std::vector<OpCase>& rows);  // op_table_nn.cpp

const std::vector<OpCase>& op_table() {
  static const std::vector<OpCase> kRows = [] {
    std::vector<OpCase> rows;
    add_unary_rows(rows);
    add_binary_rows(rows);
    add_reduction_rows(rows);
    add_copy_rows(rows);
    add_nn_rows(rows);
    return rows;
  }();
  return kRows;
}

}  // namespace nn::test
