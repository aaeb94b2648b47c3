// Integer and bool tensors in the op table (kernels/ops.h, "Integer and bool tensors"): rows in
// the harness's shape (tests/op_harness.h) for comparisons, int64 arithmetic, neg/abs/sign,
// sums, extremes and arg-reductions, each run here on the CPU against an exact host reference
// (broadcasting, transposed / sliced / expanded views, empty tensors), and by
// test_int_ops_gpu.cpp on CUDA against the CPU; tests/test_int_ops.cpp runs them on the CPU.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "graph/functions.h"
#include "layers/batchnorm.h"
#include "tests/op_refs.h"
#include "tests/test_util.h"

namespace nn::test {

namespace {

const Domain kSmallInts{-4.0, 4.0, true};  // ties and equal operands are common
const Domain kBits{0.0, 1.0, true};        // balanced true / false for bool inputs

using Values = std::vector<double>;

// ---- draws ----------------------------------------------------------------------------------

// One input of any shape (empty ones included) and axes to reduce.
Draw reduce_draw(std::mt19937& rng, bool allow_empty) {
  Draw d{{random_shape(rng, 0, 4, allow_empty)}};
  d.dims = random_dims(rng, int64_t(d.shapes[0].size()));
  d.keepdim = coin(rng);
  return d;
}

// One input of rank >= 1 without empty dimensions, and one axis.
Draw axis_draw(std::mt19937& rng) {
  Draw d{{random_shape(rng, 1, 4, false)}};
  d.dims = {random_axis(rng, int64_t(d.shapes[0].size()))};
  d.keepdim = coin(rng);
  return d;
}

// a of the broadcast shape, b broadcasting into it (the in-place forms).
Draw inplace_draw(std::mt19937& rng) {
  Draw d = broadcast_draw(rng, 2, true);
  d.shapes[0] = broadcast_shapes(d.shapes);
  return d;
}

// ---- references -----------------------------------------------------------------------------

// The first index of the extreme of a lane.
double lane_arg(const Values& lane, bool is_max) {
  size_t best = 0;
  for (size_t i = 1; i < lane.size(); ++i)
    if (is_max ? lane[i] > lane[best] : lane[i] < lane[best]) best = i;
  return double(best);
}

HostTensor index_ref(const HostTensor& x, int64_t dim, bool keepdim, bool is_max, bool values) {
  return reduce_ref(x, {dim}, keepdim, [&](const Values& lane) {
    const double i = lane_arg(lane, is_max);
    return values ? lane[size_t(i)] : i;
  });
}

// ---- rows -----------------------------------------------------------------------------------

OpCase base_row(std::string name, std::string err, int arity, Domain dom, DrawFn draw) {
  OpCase row;
  row.name = std::move(name);
  row.err_name = std::move(err);
  row.arity = arity;
  row.domains = std::vector<Domain>(size_t(arity), dom);
  row.draw = std::move(draw);
  row.dtype_errors = false;  // the TESTs below check the errors of the integer dtypes
  return row;
}

// A broadcasting binary row: run through the table's Tensor form, reference f on the values.
OpCase binary_row(const std::string& name, BinaryOp op, std::function<double(double, double)> f,
                  bool compare) {
  OpCase row = base_row(name, binary_op_name(op), 2, kSmallInts,
                        [](std::mt19937& rng) { return broadcast_draw(rng, 2, true); });
  row.run = [op](const std::vector<Tensor>& in, const Draw&) {
    return std::vector<Tensor>{binary(op, in[0], in[1])};
  };
  row.ref = [f](const std::vector<HostTensor>& in, const Draw&) {
    return std::vector<HostTensor>{
        map_broadcast(in, [&](const Values& a) { return f(a[0], a[1]); })};
  };
  if (compare) row.out_dtypes = {Dtype::Bool};
  return row;
}

double cmp(BinaryOp op, double a, double b) {
  switch (op) {
    case BinaryOp::Eq:
      return a == b;
    case BinaryOp::Ne:
      return a != b;
    case BinaryOp::Lt:
      return a < b;
    case BinaryOp::Le:
      return a <= b;
    case BinaryOp::Gt:
      return a > b;
    case BinaryOp::Ge:
      return a >= b;
    default:
      return 0.0;
  }
}

std::vector<std::pair<OpCase, Dtype>> build_cases() {
  std::vector<std::pair<OpCase, Dtype>> cases;
  auto add_case = [&](OpCase row, Dtype dtype) {
    if (dtype == Dtype::Bool)
      for (Domain& d : row.domains) d = kBits;
    row.name += std::string("_") + dtype_name(dtype);
    cases.emplace_back(std::move(row), dtype);
  };

  // Comparisons: int64 and bool, tensor-tensor and tensor-scalar.
  for (BinaryOp op :
       {BinaryOp::Eq, BinaryOp::Ne, BinaryOp::Lt, BinaryOp::Le, BinaryOp::Gt, BinaryOp::Ge}) {
    const std::string name = binary_op_name(op);
    OpCase row = binary_row(
        name, op, [op](double a, double b) { return cmp(op, a, b); }, true);
    add_case(row, Dtype::Int64);
    add_case(row, Dtype::Bool);
    for (double s : {-2.0, 0.0, 1.0}) {
      const std::string tag = s < 0 ? "m" + std::to_string(int(-s)) : std::to_string(int(s));
      OpCase scalar = base_row(name + "_scalar" + tag, name, 1, kSmallInts,
                               [](std::mt19937& rng) { return same_shape_draw(rng, 1); });
      scalar.run = [op, s](const std::vector<Tensor>& in, const Draw&) {
        return std::vector<Tensor>{binary(op, in[0], s)};
      };
      scalar.ref = [op, s](const std::vector<HostTensor>& in, const Draw&) {
        return std::vector<HostTensor>{
            map_broadcast(in, [&](const Values& a) { return cmp(op, a[0], s); })};
      };
      scalar.out_dtypes = {Dtype::Bool};
      add_case(scalar, Dtype::Int64);
      if (s >= 0.0) add_case(scalar, Dtype::Bool);
    }
  }

  // int64 arithmetic: operators, scalars and in-place forms.
  const std::vector<std::tuple<BinaryOp, std::function<double(double, double)>>> arith = {
      {BinaryOp::Add, [](double a, double b) { return a + b; }},
      {BinaryOp::Sub, [](double a, double b) { return a - b; }},
      {BinaryOp::Mul, [](double a, double b) { return a * b; }},
      {BinaryOp::Maximum, [](double a, double b) { return std::max(a, b); }},
      {BinaryOp::Minimum, [](double a, double b) { return std::min(a, b); }},
  };
  for (const auto& [op, f] : arith) {
    const std::string name = binary_op_name(op);
    add_case(binary_row(name, op, f, false), Dtype::Int64);
    OpCase scalar = base_row(name + "_scalar", name, 1, kSmallInts,
                             [](std::mt19937& rng) { return same_shape_draw(rng, 1); });
    scalar.run = [op](const std::vector<Tensor>& in, const Draw&) {
      return std::vector<Tensor>{binary(op, in[0], -3.0)};
    };
    scalar.ref = [f](const std::vector<HostTensor>& in, const Draw&) {
      return std::vector<HostTensor>{
          map_broadcast(in, [&](const Values& a) { return f(a[0], -3.0); })};
    };
    add_case(scalar, Dtype::Int64);
    if (op == BinaryOp::Maximum || op == BinaryOp::Minimum) continue;
    OpCase inplace = base_row(name + "_inplace", name + "_", 2, kSmallInts, inplace_draw);
    inplace.expand_ok = false;
    inplace.run = [op](const std::vector<Tensor>& in, const Draw&) {
      Tensor a = in[0].clone();
      binary_(op, a, in[1]);
      return std::vector<Tensor>{a};
    };
    inplace.ref = [f](const std::vector<HostTensor>& in, const Draw&) {
      return std::vector<HostTensor>{
          map_broadcast(in, [&](const Values& a) { return f(a[0], a[1]); })};
    };
    add_case(inplace, Dtype::Int64);
  }
  {
    OpCase ops = base_row("operators", "sub", 2, kSmallInts,
                          [](std::mt19937& rng) { return broadcast_draw(rng, 2, true); });
    ops.run = [](const std::vector<Tensor>& in, const Draw&) {
      return std::vector<Tensor>{(-in[0] + in[1] * 2.0) - (in[1] - 5.0) * in[0]};
    };
    ops.ref = [](const std::vector<HostTensor>& in, const Draw&) {
      return std::vector<HostTensor>{map_broadcast(
          in, [](const Values& a) { return (-a[0] + a[1] * 2.0) - (a[1] - 5.0) * a[0]; })};
    };
    add_case(ops, Dtype::Int64);
  }

  // where over int64 values (a bool mask from a comparison is the usual source).
  {
    OpCase w = base_row("where", "where", 3, kSmallInts,
                        [](std::mt19937& rng) { return broadcast_draw(rng, 3, true); });
    w.domains[0] = Domain{0.0, 1.0, false, true};
    w.run = [](const std::vector<Tensor>& in, const Draw&) {
      return std::vector<Tensor>{where(in[0], in[1], in[2])};
    };
    w.ref = [](const std::vector<HostTensor>& in, const Draw&) {
      return std::vector<HostTensor>{
          map_broadcast(in, [](const Values& a) { return a[0] != 0.0 ? a[1] : a[2]; })};
    };
    add_case(w, Dtype::Int64);
  }

  // neg, abs, sign of int64.
  const std::vector<std::tuple<UnaryOp, std::function<double(double)>>> unaries = {
      {UnaryOp::Neg, [](double x) { return -x; }},
      {UnaryOp::Abs, [](double x) { return std::abs(x); }},
      {UnaryOp::Sign, [](double x) { return double((x > 0) - (x < 0)); }},
  };
  for (const auto& [op, f] : unaries) {
    OpCase row = base_row(unary_op_name(op), unary_op_name(op), 1, kSmallInts,
                          [](std::mt19937& rng) { return same_shape_draw(rng, 1); });
    row.run = [op](const std::vector<Tensor>& in, const Draw&) {
      return std::vector<Tensor>{unary(op, in[0])};
    };
    row.ref = [f](const std::vector<HostTensor>& in, const Draw&) {
      return std::vector<HostTensor>{map_broadcast(in, [&](const Values& a) { return f(a[0]); })};
    };
    add_case(row, Dtype::Int64);
  }

  // Reductions. Sums (of int64 and of bool) are int64; extremes keep int64.
  {
    OpCase s = base_row("sum", "sum", 1, kSmallInts,
                        [](std::mt19937& rng) { return reduce_draw(rng, true); });
    s.run = [](const std::vector<Tensor>& in, const Draw& d) {
      return std::vector<Tensor>{sum(in[0], d.dims, d.keepdim)};
    };
    s.ref = [](const std::vector<HostTensor>& in, const Draw& d) {
      return std::vector<HostTensor>{reduce_ref(in[0], d.dims, d.keepdim, lane_sum)};
    };
    s.out_dtypes = {Dtype::Int64};
    add_case(s, Dtype::Int64);
    add_case(s, Dtype::Bool);
  }
  for (bool is_max : {true, false}) {
    const std::string name = is_max ? "amax" : "amin";
    OpCase e = base_row(name, name, 1, kSmallInts, [](std::mt19937& rng) {
      Draw d = reduce_draw(rng, false);
      return d;
    });
    e.run = [is_max](const std::vector<Tensor>& in, const Draw& d) {
      return std::vector<Tensor>{is_max ? amax(in[0], d.dims, d.keepdim)
                                        : amin(in[0], d.dims, d.keepdim)};
    };
    e.ref = [is_max](const std::vector<HostTensor>& in, const Draw& d) {
      return std::vector<HostTensor>{reduce_ref(in[0], d.dims, d.keepdim, [&](const Values& l) {
        return is_max ? *std::max_element(l.begin(), l.end())
                      : *std::min_element(l.begin(), l.end());
      })};
    };
    add_case(e, Dtype::Int64);

    const std::string iname = is_max ? "max" : "min";
    OpCase m = base_row(iname + "_dim", iname, 1, kSmallInts, axis_draw);
    m.run = [is_max](const std::vector<Tensor>& in, const Draw& d) {
      auto [v, i] = is_max ? max(in[0], d.dims[0], d.keepdim) : min(in[0], d.dims[0], d.keepdim);
      return std::vector<Tensor>{v, i};
    };
    m.ref = [is_max](const std::vector<HostTensor>& in, const Draw& d) {
      return std::vector<HostTensor>{index_ref(in[0], d.dims[0], d.keepdim, is_max, true),
                                     index_ref(in[0], d.dims[0], d.keepdim, is_max, false)};
    };
    m.out_dtypes = {std::nullopt, Dtype::Int64};
    add_case(m, Dtype::Int64);

    const std::string aname = is_max ? "argmax" : "argmin";
    OpCase a = base_row(aname, aname, 1, kSmallInts, axis_draw);
    a.run = [is_max](const std::vector<Tensor>& in, const Draw& d) {
      return std::vector<Tensor>{is_max ? argmax(in[0], d.dims[0], d.keepdim)
                                        : argmin(in[0], d.dims[0], d.keepdim)};
    };
    a.ref = [is_max](const std::vector<HostTensor>& in, const Draw& d) {
      return std::vector<HostTensor>{index_ref(in[0], d.dims[0], d.keepdim, is_max, false)};
    };
    a.out_dtypes = {Dtype::Int64};
    add_case(a, Dtype::Int64);
  }
  {
    OpCase a = base_row("argmax_flat", "argmax", 1, kSmallInts,
                        [](std::mt19937& rng) { return Draw{{random_shape(rng, 0, 4, false)}}; });
    a.run = [](const std::vector<Tensor>& in, const Draw&) {
      return std::vector<Tensor>{argmax(in[0])};
    };
    a.ref = [](const std::vector<HostTensor>& in, const Draw&) {
      return std::vector<HostTensor>{HostTensor{{}, {lane_arg(in[0].v, true)}}};
    };
    a.out_dtypes = {Dtype::Int64};
    add_case(a, Dtype::Int64);
  }
  // The accuracy idiom: (argmax(logits, 1) == labels).sum(), an exact int64 count.
  {
    OpCase acc = base_row("accuracy_count", "argmax", 2, kSmallInts, [](std::mt19937& rng) {
      const int64_t n = uniform_int(rng, 0, 9), c = uniform_int(rng, 5, 7);
      return Draw{{{n, c}, {n}}};
    });
    acc.domains[1] = Domain{0.0, 4.0, true};  // labels below the class count
    acc.run = [](const std::vector<Tensor>& in, const Draw&) {
      return std::vector<Tensor>{sum(eq(argmax(in[0], 1), in[1]))};
    };
    acc.ref = [](const std::vector<HostTensor>& in, const Draw&) {
      const int64_t n = in[0].shape[0], c = in[0].shape[1];
      double hits = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        Values row(in[0].v.begin() + i * c, in[0].v.begin() + (i + 1) * c);
        hits += lane_arg(row, true) == in[1].v[size_t(i)];
      }
      return std::vector<HostTensor>{HostTensor{{}, {hits}}};
    };
    acc.out_dtypes = {Dtype::Int64};
    add_case(acc, Dtype::Int64);
  }
  return cases;
}

}  // namespace

const std::vector<std::pair<OpCase, Dtype>>& int_op_cases() {
  static const std::vector<std::pair<OpCase, Dtype>> kCases = build_cases();
  return kCases;
}

}  // namespace nn::test
