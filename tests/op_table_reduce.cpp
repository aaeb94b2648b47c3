// Rows of the op table for reductions, softmax, matmul, and fill / copy / cast.
#include "tests/op_refs.h"

namespace nn::test {
namespace {

using Ins = std::vector<Tensor>;
using HIns = std::vector<HostTensor>;

Draw reduce_draw(std::mt19937& rng, bool allow_empty, int64_t min_rank, int64_t min_size) {
  Draw d;
  d.shapes = {random_shape(rng, min_rank, 4, allow_empty, min_size)};
  d.dims = random_dims(rng, int64_t(d.shapes[0].size()));
  d.keepdim = coin(rng);
  return d;
}

Draw axis_draw(std::mt19937& rng, int arity) {
  Draw d;
  Shape s = random_shape(rng, 1, 4, false);
  d.shapes.assign(arity, s);
  d.dims = {random_axis(rng, int64_t(s.size()))};
  d.keepdim = coin(rng);
  return d;
}

OpCase reduction(std::string name, std::string err,
                 std::function<Tensor(const Tensor&, const Draw&)> fn,
                 std::function<double(const std::vector<double>&, const Draw&)> f, bool allow_empty,
                 int64_t min_size = 1) {
  OpCase row;
  row.name = std::move(name);
  row.err_name = std::move(err);
  row.domains = {kSym};
  row.draw = [=](std::mt19937& rng) { return reduce_draw(rng, allow_empty, 0, min_size); };
  row.run = [fn](const Ins& in, const Draw& d) { return Ins{fn(in[0], d)}; };
  row.ref = [f](const HIns& in, const Draw& d) {
    return HIns{reduce_ref(in[0], d.dims, d.keepdim,
                           [&](const std::vector<double>& lane) { return f(lane, d); })};
  };
  row.floor = 1.0;  // sums of signed values cancel
  row.bad = {{Draw{{{2, 3}}, {2}}, ErrKind::Index}, {Draw{{{2, 3}}, {-3}}, ErrKind::Index}};
  return row;
}

// max/min along one axis: values and int64 indices (first occurrence).
OpCase index_reduction(std::string name, std::string err, bool want_max, bool with_values,
                       Domain dom) {
  OpCase row;
  row.name = std::move(name);
  row.err_name = std::move(err);
  row.domains = {dom};
  row.draw = [](std::mt19937& rng) { return axis_draw(rng, 1); };
  row.run = [=](const Ins& in, const Draw& d) {
    if (!with_values)
      return Ins{want_max ? argmax(in[0], d.dims[0], d.keepdim)
                          : argmin(in[0], d.dims[0], d.keepdim)};
    auto [v, i] = want_max ? max(in[0], d.dims[0], d.keepdim) : min(in[0], d.dims[0], d.keepdim);
    return Ins{v, i};
  };
  row.ref = [=](const HIns& in, const Draw& d) {
    HostTensor idx = reduce_ref(in[0], d.dims, d.keepdim, [&](const std::vector<double>& l) {
      return double(lane_arg(l, want_max));
    });
    if (!with_values) return HIns{idx};
    HostTensor val = reduce_ref(in[0], d.dims, d.keepdim, [&](const std::vector<double>& l) {
      return l[lane_arg(l, want_max)];
    });
    return HIns{val, idx};
  };
  row.out_dtypes = with_values ? std::vector<std::optional<Dtype>>{std::nullopt, Dtype::Int64}
                               : std::vector<std::optional<Dtype>>{Dtype::Int64};
  row.bad = {{Draw{{{2, 3}}, {2}}, ErrKind::Index}};
  return row;
}

// Over all elements: max(x), min(x) (0-d values) and argmax(x) (0-d flat index).
OpCase full_reduction(std::string name, std::string err, int kind, Domain dom) {
  OpCase row;
  row.name = std::move(name);
  row.err_name = std::move(err);
  row.domains = {dom};
  row.draw = [](std::mt19937& rng) { return Draw{{random_shape(rng, 0, 4, false)}}; };
  row.run = [=](const Ins& in, const Draw&) {
    return Ins{kind == 0 ? max(in[0]) : kind == 1 ? min(in[0]) : argmax(in[0])};
  };
  row.ref = [=](const HIns& in, const Draw&) {
    const std::vector<double>& v = in[0].v;
    double r = kind == 2 ? double(lane_arg(v, true)) : v[lane_arg(v, kind == 0)];
    return HIns{HostTensor{{}, {r}}};
  };
  if (kind == 2) row.out_dtypes = {Dtype::Int64};
  row.dtype_errors = kind != 2;  // argmax of integers is meaningful; no claim either way
  return row;
}

using LaneFn = std::function<std::vector<double>(const std::vector<std::vector<double>>&)>;

OpCase softmax_row(std::string name, std::string err, int arity, std::vector<Domain> doms,
                   std::function<Tensor(const Ins&, int64_t)> fn, LaneFn lane) {
  OpCase row;
  row.name = std::move(name);
  row.err_name = std::move(err);
  row.arity = arity;
  row.domains = std::move(doms);
  row.draw = [arity](std::mt19937& rng) { return axis_draw(rng, arity); };
  row.run = [fn](const Ins& in, const Draw& d) { return Ins{fn(in, d.dims[0])}; };
  row.ref = [lane](const HIns& in, const Draw& d) { return HIns{along_dim(in, d.dims[0], lane)}; };
  row.bad = {{Draw{std::vector<Shape>(arity, Shape{2, 3}), {2}}, ErrKind::Index}};
  if (arity == 2) {
    row.bad.push_back({Draw{{{2, 3}, {3, 2}}, {-1}}, ErrKind::Shape});
    row.floor = 1.0;  // g - sum(g y) cancels
  }
  return row;
}

std::vector<double> softmax_lane(const std::vector<double>& x) {
  double m = *std::max_element(x.begin(), x.end()), s = 0.0;
  std::vector<double> e(x.size());
  for (size_t i = 0; i < x.size(); ++i) s += (e[i] = std::exp(x[i] - m));
  for (double& v : e) v /= s;
  return e;
}

void add_softmax_rows(std::vector<OpCase>& rows) {
  // Large logits: the row max must be subtracted before exp.
  const Domain logits{-30.0, 30.0};
  rows.push_back(softmax_row(
      "softmax", "softmax", 1, {logits}, [](const Ins& in, int64_t d) { return softmax(in[0], d); },
      [](const auto& l) { return softmax_lane(l[0]); }));
  rows.push_back(softmax_row(
      "log_softmax", "log_softmax", 1, {logits},
      [](const Ins& in, int64_t d) { return log_softmax(in[0], d); },
      [](const auto& l) {
        const auto& x = l[0];
        double m = *std::max_element(x.begin(), x.end()), s = 0.0;
        for (double v : x) s += std::exp(v - m);
        std::vector<double> r(x.size());
        for (size_t i = 0; i < x.size(); ++i) r[i] = x[i] - m - std::log(s);
        return r;
      }));
  rows.back().floor = 1.0;  // x - m - log(s) cancels where x is the max
  rows.push_back(softmax_row(
      "softmax_backward", "softmax", 2, {kSym, Domain{0.05, 1.0}},
      [](const Ins& in, int64_t d) { return softmax_backward(in[0], in[1], d); },
      [](const auto& l) {
        const auto &g = l[0], &y = l[1];
        double dot = 0.0;
        for (size_t i = 0; i < g.size(); ++i) dot += g[i] * y[i];
        std::vector<double> r(g.size());
        for (size_t i = 0; i < g.size(); ++i) r[i] = y[i] * (g[i] - dot);
        return r;
      }));
  rows.push_back(softmax_row(
      "log_softmax_backward", "log_softmax", 2, {kSym, Domain{-3.0, -0.05}},
      [](const Ins& in, int64_t d) { return log_softmax_backward(in[0], in[1], d); },
      [](const auto& l) {
        const auto &g = l[0], &y = l[1];
        double s = lane_sum(g);
        std::vector<double> r(g.size());
        for (size_t i = 0; i < g.size(); ++i) r[i] = g[i] - std::exp(y[i]) * s;
        return r;
      }));
}

int64_t mm_size(std::mt19937& rng) { return coin(rng, 0.06) ? 0 : uniform_int(rng, 1, 7); }

// Operand shapes (as stored: transposed when the flag is set) for matmul.
Draw matmul_draw(std::mt19937& rng, bool with_trans) {
  Draw d;
  const int64_t m = mm_size(rng), k = mm_size(rng), n = mm_size(rng);
  const int kind = with_trans ? 3 : int(uniform_int(rng, 0, 4));
  auto batch = [&](const Shape& full) {
    Shape s = full;
    if (coin(rng, 0.3)) s.erase(s.begin(), s.begin() + uniform_int(rng, 0, int64_t(s.size())));
    for (int64_t& x : s)
      if (coin(rng, 0.3)) x = 1;
    return s;
  };
  Shape full = random_shape(rng, 0, 2, false);
  Shape a = kind == 0 || kind == 1 ? Shape{k} : batch(full);
  Shape b = kind == 0 || kind == 2 ? Shape{k} : batch(full);
  if (a.size() != 1 || kind >= 2) {
    d.keepdim = with_trans && coin(rng);
    a.push_back(d.keepdim ? k : m);
    a.push_back(d.keepdim ? m : k);
  }
  if (b.size() != 1 || kind == 1 || kind >= 3) {
    d.flag = with_trans && coin(rng);
    b.push_back(d.flag ? n : k);
    b.push_back(d.flag ? k : n);
  }
  d.shapes = {a, b};
  return d;
}

void add_matmul_rows(std::vector<OpCase>& rows) {
  OpCase mm;
  mm.name = "matmul";
  mm.err_name = "matmul";
  mm.arity = 2;
  mm.domains = {kSym, kSym};
  mm.draw = [](std::mt19937& rng) { return matmul_draw(rng, false); };
  mm.run = [](const Ins& in, const Draw& d) {
    return Ins{matmul(in[0], in[1], d.keepdim, d.flag)};
  };
  mm.ref = [](const HIns& in, const Draw& d) {
    return HIns{matmul_ref(in[0], in[1], d.keepdim, d.flag)};
  };
  mm.tol_scale = 10.0;
  mm.floor = 1.0;
  mm.bad = {{Draw{{{2, 3}, {4, 5}}}, ErrKind::Shape},
            {Draw{{{2, 2, 3}, {3, 3, 4}}}, ErrKind::Shape}};
  rows.push_back(mm);

  OpCase tr = mm;
  tr.name = "matmul_trans";
  tr.draw = [](std::mt19937& rng) { return matmul_draw(rng, true); };
  rows.push_back(tr);

  OpCase b = mm;
  b.name = "bmm";
  b.err_name = "bmm";
  b.draw = [](std::mt19937& rng) {
    const int64_t bs = mm_size(rng), m = mm_size(rng), k = mm_size(rng), n = mm_size(rng);
    return Draw{{{bs, m, k}, {bs, k, n}}};
  };
  b.run = [](const Ins& in, const Draw&) { return Ins{bmm(in[0], in[1])}; };
  b.bad = {{Draw{{{2, 3, 4}, {3, 4, 5}}}, ErrKind::Shape},
           {Draw{{{2, 3, 4}, {2, 5, 5}}}, ErrKind::Shape},
           {Draw{{{3, 4}, {4, 5}}}, ErrKind::Shape}};
  rows.push_back(b);
}

OpCase identity_row(std::string name, std::function<Tensor(const Tensor&)> fn,
                    std::optional<Dtype> out, Domain dom = kSym) {
  OpCase row;
  row.name = std::move(name);
  row.err_name = row.name;
  row.domains = {dom};
  row.draw = [](std::mt19937& rng) { return same_shape_draw(rng, 1); };
  row.run = [fn](const Ins& in, const Draw&) { return Ins{fn(in[0])}; };
  row.ref = [out](const HIns& in, const Draw&) {
    HostTensor r = in[0];
    if (out)
      for (double& v : r.v) v = round_to(*out, v);
    return HIns{r};
  };
  row.out_dtypes = {out};
  row.dtype_errors = false;
  return row;
}

void copy_rows(std::vector<OpCase>& rows) {
  OpCase fill = identity_row(
      "fill",
      [](const Tensor& x) {
        Tensor y = x;
        fill_(y, 0.375);
        return y;
      },
      std::nullopt);
  fill.expand_ok = false;
  fill.ref = [](const HIns& in, const Draw&) {
    return HIns{HostTensor{in[0].shape, std::vector<double>(in[0].v.size(), 0.375)}};
  };
  rows.push_back(fill);
  rows.push_back(identity_row(
      "contiguous", [](const Tensor& x) { return x.contiguous(); }, std::nullopt));
  rows.push_back(identity_row(
      "clone", [](const Tensor& x) { return x.clone(); }, std::nullopt));
  for (Dtype to : {Dtype::Float32, Dtype::Float64, Dtype::BFloat16, Dtype::Float16, Dtype::Int64}) {
    rows.push_back(identity_row(
        std::string("to_") + dtype_name(to), [to](const Tensor& x) { return x.to(to); }, to,
        to == Dtype::Int64 ? Domain{-4.0, 4.0} : kSym));
  }
  rows.push_back(identity_row(
      "to_bool", [](const Tensor& x) { return x.to(Dtype::Bool); }, Dtype::Bool, kInts));

  // copy_: src broadcasts into dst and converts to dst's dtype.
  auto copy_row = [&](std::string name, bool into_view) {
    OpCase row =
        identity_row(std::move(name), nullptr, into_view ? Dtype::Float32 : Dtype::Float64);
    row.err_name = "copy";
    row.draw = [into_view](std::mt19937& rng) {
      Draw d;
      d.out_shape = random_shape(rng, into_view ? 2 : 0, 4, true);
      Shape src = d.out_shape;
      if (coin(rng, 0.3))
        src.erase(src.begin(), src.begin() + uniform_int(rng, 0, int64_t(src.size())));
      for (int64_t& x : src)
        if (coin(rng, 0.3)) x = 1;
      d.shapes = {src};
      return d;
    };
    row.run = [into_view](const Ins& in, const Draw& d) {
      const TensorOptions opts{into_view ? Dtype::Float32 : Dtype::Float64, in[0].device()};
      Tensor dst;
      if (into_view) {  // a transposed destination: copy_ must honour its strides
        Shape phys = d.out_shape;
        std::swap(phys.front(), phys.back());
        dst = zeros(phys, opts).transpose(0, int64_t(phys.size()) - 1);
      } else {
        dst = zeros(d.out_shape, opts);
      }
      dst.copy_(in[0]);
      return Ins{dst};
    };
    row.ref = [into_view](const HIns& in, const Draw& d) {
      HostTensor r{d.out_shape, std::vector<double>(shape_numel(d.out_shape))};
      for (int64_t i = 0; i < r.numel(); ++i) {
        double v = in[0].v[broadcast_offset(in[0].shape, d.out_shape, unravel(i, d.out_shape))];
        r.v[i] = into_view ? round_to(Dtype::Float32, v) : v;
      }
      return HIns{r};
    };
    Draw bad{{{3}}};
    bad.out_shape = {2, 2};
    row.bad = {{bad, ErrKind::Shape}};
    rows.push_back(row);
  };
  copy_row("copy_broadcast", false);
  copy_row("copy_into_view", true);
}

}  // namespace

void add_reduction_rows(std::vector<OpCase>& rows) {
  rows.push_back(reduction(
      "sum", "sum", [](const Tensor& x, const Draw& d) { return sum(x, d.dims, d.keepdim); },
      [](const std::vector<double>& l, const Draw&) { return lane_sum(l); }, true));
  rows.back().accepts = {Dtype::Int64, Dtype::Bool};  // summed in int64
  rows.push_back(reduction(
      "mean", "mean", [](const Tensor& x, const Draw& d) { return mean(x, d.dims, d.keepdim); },
      [](const std::vector<double>& l, const Draw&) { return lane_mean(l); }, false));
  rows.push_back(reduction(
      "amax", "amax", [](const Tensor& x, const Draw& d) { return amax(x, d.dims, d.keepdim); },
      [](const std::vector<double>& l, const Draw&) {
        return *std::max_element(l.begin(), l.end());
      },
      false));
  rows.push_back(reduction(
      "amin", "amin", [](const Tensor& x, const Draw& d) { return amin(x, d.dims, d.keepdim); },
      [](const std::vector<double>& l, const Draw&) {
        return *std::min_element(l.begin(), l.end());
      },
      false));
  rows[rows.size() - 2].accepts = rows.back().accepts = {Dtype::Int64};  // amax, amin
  for (int64_t c : {0, 1}) {
    // Every axis has at least 2 elements so the corrected count stays positive.
    OpCase v = reduction(
        c == 0 ? "var_population" : "var_unbiased", "var",
        [c](const Tensor& x, const Draw& d) { return var(x, d.dims, c, d.keepdim); },
        [c](const std::vector<double>& l, const Draw&) { return lane_var(l, c); }, false, 2);
    v.floor = 1e-3;
    rows.push_back(v);
  }
  rows.push_back(index_reduction("max_dim", "max", true, true, kSym));
  rows.push_back(index_reduction("min_dim", "min", false, true, kSym));
  rows.push_back(index_reduction("max_dim_ties", "max", true, true, kInts));
  rows.push_back(index_reduction("min_dim_ties", "min", false, true, kInts));
  for (size_t i = rows.size() - 4; i < rows.size(); ++i) rows[i].accepts = {Dtype::Int64};
  rows.push_back(index_reduction("argmax_dim", "argmax", true, false, kInts));
  rows.push_back(index_reduction("argmin_dim", "argmin", false, false, kInts));
  rows.back().dtype_errors = rows[rows.size() - 2].dtype_errors = false;
  rows.push_back(full_reduction("max_all", "max", 0, kSym));
  rows.push_back(full_reduction("min_all", "min", 1, kSym));
  rows[rows.size() - 2].accepts = rows.back().accepts = {Dtype::Int64};
  rows.push_back(full_reduction("argmax_all", "argmax", 2, kInts));
  add_softmax_rows(rows);
  add_matmul_rows(rows);
}

void add_copy_rows(std::vector<OpCase>& rows) { copy_rows(rows); }

}  // namespace nn::test
