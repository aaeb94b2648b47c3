// Input building, rounding and comparison for the op harness (the table is in op_table.cpp).
#include "tests/op_harness.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace nn::test {

const char* err_kind_name(ErrKind k) {
  switch (k) {
    case ErrKind::Shape:
      return "ShapeError";
    case ErrKind::Dtype:
      return "DtypeError";
    case ErrKind::Index:
      return "IndexError";
    case ErrKind::Value:
      return "ValueError";
    case ErrKind::Device:
      return "DeviceError";
  }
  return "?";
}

const OpCase& op_case(const std::string& name) {
  for (const OpCase& row : op_table())
    if (row.name == name) return row;
  throw std::out_of_range("op harness: no row named " + name);
}

double round_to(Dtype d, double x) {
  switch (d) {
    case Dtype::Float32:
      return static_cast<float>(x);
    case Dtype::Float64:
      return x;
    case Dtype::BFloat16:
      return static_cast<float>(bfloat16(static_cast<float>(x)));
    case Dtype::Float16:
      return static_cast<float>(float16(static_cast<float>(x)));
    case Dtype::Int64:
      return std::trunc(x);
    case Dtype::Bool:
      return x != 0.0 ? 1.0 : 0.0;
  }
  return x;
}

std::vector<int64_t> unravel(int64_t i, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = i % s[d];
    i /= s[d];
  }
  return idx;
}

int64_t ravel(const std::vector<int64_t>& idx, const Shape& s) {
  int64_t i = 0;
  for (size_t d = 0; d < s.size(); ++d) i = i * s[d] + idx[d];
  return i;
}

Shape broadcast_shapes(const std::vector<Shape>& shapes) {
  size_t rank = 0;
  for (const Shape& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (const Shape& s : shapes) {
    for (size_t k = 0; k < s.size(); ++k) {
      int64_t& o = out[rank - s.size() + k];
      if (s[k] != 1) o = s[k];
    }
  }
  return out;
}

int64_t broadcast_offset(const Shape& in, const Shape& out, const std::vector<int64_t>& out_index) {
  int64_t i = 0;
  size_t lead = out.size() - in.size();
  for (size_t k = 0; k < in.size(); ++k) i = i * in[k] + (in[k] == 1 ? 0 : out_index[lead + k]);
  return i;
}

namespace {

double draw_value(const Domain& dom, std::mt19937& rng) {
  if (dom.boolean) return std::bernoulli_distribution(0.5)(rng) ? 1.0 : 0.0;
  if (dom.integer) {
    return static_cast<double>(
        std::uniform_int_distribution<int64_t>(int64_t(dom.lo), int64_t(dom.hi))(rng));
  }
  std::uniform_real_distribution<double> u(dom.lo, dom.hi);
  // Sign-symmetric domains keep clear of 0: the kinks of relu/abs/sign and division by ~0.
  const double band = 0.05 * (dom.hi - dom.lo) / 4.0;
  for (;;) {
    double x = u(rng);
    if (!(dom.lo < 0.0 && dom.hi > 0.0) || std::abs(x) >= band) return x;
  }
}

Layout pick_layout(const Shape& s, std::mt19937& rng, int64_t& d0, int64_t& d1, bool allow_expand) {
  const int64_t rank = static_cast<int64_t>(s.size());
  int choice = std::uniform_int_distribution<int>(0, 4)(rng);  // 0, 1: contiguous
  std::vector<int64_t> wide;  // dims of size >= 2: swapping or expanding others changes nothing
  for (int64_t d = 0; d < rank; ++d)
    if (s[d] >= 2) wide.push_back(d);
  if (choice == 2 && wide.size() >= 2) {
    std::shuffle(wide.begin(), wide.end(), rng);
    d0 = std::min(wide[0], wide[1]);
    d1 = std::max(wide[0], wide[1]);
    return Layout::Transposed;
  }
  if (choice == 3 && rank >= 1) {
    d0 = std::uniform_int_distribution<int64_t>(0, rank - 1)(rng);
    return Layout::Sliced;
  }
  if (choice == 4 && allow_expand && !wide.empty()) {
    d0 = wide[std::uniform_int_distribution<size_t>(0, wide.size() - 1)(rng)];
    return Layout::Expanded;
  }
  return Layout::Contiguous;
}

}  // namespace

std::vector<InputSpec> make_inputs(const OpCase& row, const Draw& draw, Dtype dtype,
                                   std::mt19937& rng, bool allow_layouts) {
  std::vector<InputSpec> specs;
  for (int i = 0; i < row.arity; ++i) {
    const Domain& dom = row.domains.at(i);
    InputSpec spec;
    spec.logical.shape = draw.shapes.at(i);
    spec.boolean = dom.boolean;
    spec.integer = dom.integer;
    if (allow_layouts && row.noncontiguous)
      spec.layout = pick_layout(spec.logical.shape, rng, spec.d0, spec.d1, row.expand_ok);
    const int64_t n = spec.logical.numel();
    spec.logical.v.resize(n);
    const Dtype stored = dom.boolean ? Dtype::Bool : dtype;
    for (int64_t k = 0; k < n; ++k) spec.logical.v[k] = round_to(stored, draw_value(dom, rng));
    if (spec.layout == Layout::Expanded) {  // constant along d0: copy index 0 of that axis
      for (int64_t k = 0; k < n; ++k) {
        std::vector<int64_t> idx = unravel(k, spec.logical.shape);
        idx[spec.d0] = 0;
        spec.logical.v[k] = spec.logical.v[ravel(idx, spec.logical.shape)];
      }
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

Tensor realize(const InputSpec& spec, Dtype dtype, Device device) {
  const TensorOptions opts{spec.boolean ? Dtype::Bool : dtype, device};
  const Shape& s = spec.logical.shape;
  const std::vector<double>& v = spec.logical.v;
  switch (spec.layout) {
    case Layout::Contiguous:
      return from_vector<double>(v, s, opts);
    case Layout::Transposed: {
      Shape phys = s;
      std::swap(phys[spec.d0], phys[spec.d1]);
      std::vector<double> pv(v.size());
      for (size_t k = 0; k < pv.size(); ++k) {
        std::vector<int64_t> idx = unravel(int64_t(k), phys);
        std::swap(idx[spec.d0], idx[spec.d1]);
        pv[k] = v[ravel(idx, s)];
      }
      return from_vector<double>(pv, phys, opts).transpose(spec.d0, spec.d1);
    }
    case Layout::Sliced: {  // logical element j sits at 2j+1; the gaps hold a sentinel
      Shape phys = s;
      phys[spec.d0] = 2 * s[spec.d0] + 1;
      std::vector<double> pv(shape_numel(phys), spec.boolean ? 1.0 : 3.0);
      for (size_t k = 0; k < pv.size(); ++k) {
        std::vector<int64_t> idx = unravel(int64_t(k), phys);
        if (idx[spec.d0] % 2 == 0) continue;
        idx[spec.d0] /= 2;
        pv[k] = v[ravel(idx, s)];
      }
      return from_vector<double>(pv, phys, opts).slice(spec.d0, 1, phys[spec.d0], 2);
    }
    case Layout::Expanded: {
      Shape phys = s;
      phys[spec.d0] = 1;
      std::vector<double> pv(shape_numel(phys));
      for (size_t k = 0; k < pv.size(); ++k) pv[k] = v[ravel(unravel(int64_t(k), phys), s)];
      return from_vector<double>(pv, phys, opts).expand(s);
    }
  }
  return {};
}

HostTensor to_host(const Tensor& t) { return HostTensor{t.shape(), t.to_vector<double>()}; }

namespace {
// Per-dtype tolerance: the half types share their limits everywhere; float32 and float64 differ
// between a comparison with the float64 reference and one between two backends.
double tolerance(Dtype d, double f32, double f64) {
  switch (d) {
    case Dtype::Float32: return f32;
    case Dtype::Float64: return f64;
    case Dtype::BFloat16: return 1e-2;
    case Dtype::Float16: return 2e-3;
    default: return 0.0;
  }
}
}  // namespace

double cpu_tolerance(Dtype d) { return tolerance(d, 1e-5, 1e-10); }

double gpu_tolerance(Dtype d) { return tolerance(d, allow_tf32() ? 1e-3 : 1e-5, 1e-12); }

double max_rel_error(const HostTensor& out, const HostTensor& ref, double floor) {
  const double kInf = std::numeric_limits<double>::infinity();
  if (out.shape != ref.shape || out.v.size() != ref.v.size()) return kInf;
  double worst = 0.0;
  for (size_t i = 0; i < out.v.size(); ++i) {
    const double o = out.v[i], r = ref.v[i];
    if (std::isnan(o) || std::isnan(r)) {
      if (!(std::isnan(o) && std::isnan(r))) return kInf;
      continue;
    }
    if (std::isinf(o) || std::isinf(r)) {
      if (o != r) return kInf;
      continue;
    }
    worst = std::max(worst, std::abs(o - r) / std::max(std::abs(r), floor));
  }
  return worst;
}

std::string describe(const Draw& d) {
  std::ostringstream os;
  os << "shapes";
  for (const Shape& s : d.shapes) os << ' ' << shape_str(s);
  if (!d.dims.empty()) {
    os << " dims [";
    for (size_t i = 0; i < d.dims.size(); ++i) os << (i ? ", " : "") << d.dims[i];
    os << ']';
  }
  os << " keepdim/trans_a " << d.keepdim << " trans_b " << d.flag << " correction " << d.correction;
  if (!d.out_shape.empty()) os << " out " << shape_str(d.out_shape);
  return os.str();
}

std::string describe(const std::vector<InputSpec>& inputs) {
  static const char* kNames[] = {"contiguous", "transposed", "sliced", "expanded"};
  std::ostringstream os;
  os << "layouts";
  for (const InputSpec& s : inputs) {
    os << ' ' << kNames[int(s.layout)];
    if (s.layout == Layout::Transposed) os << '(' << s.d0 << ',' << s.d1 << ')';
    if (s.layout == Layout::Sliced || s.layout == Layout::Expanded) os << '(' << s.d0 << ')';
  }
  return os.str();
}

// Whether e is the subclass of nn::Error that `kind` names.
bool is_error_kind(ErrKind kind, const Error& e) {
  switch (kind) {
    case ErrKind::Shape: return dynamic_cast<const ShapeError*>(&e) != nullptr;
    case ErrKind::Dtype: return dynamic_cast<const DtypeError*>(&e) != nullptr;
    case ErrKind::Index: return dynamic_cast<const IndexError*>(&e) != nullptr;
    case ErrKind::Value: return dynamic_cast<const ValueError*>(&e) != nullptr;
    case ErrKind::Device: return dynamic_cast<const DeviceError*>(&e) != nullptr;
  }
  return false;
}

void expect_error(ErrKind kind, const std::string& name, const std::function<void()>& fn,
                  const std::string& context) {
  try {
    fn();
  } catch (const Error& e) {
    const bool right = is_error_kind(kind, e);
    EXPECT_TRUE(right) << context << ": expected " << err_kind_name(kind)
                       << ", got another nn::Error: " << e.what();
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr(name)) << context;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << context << ": expected " << err_kind_name(kind)
                  << ", got an exception outside the nn::Error hierarchy: " << e.what();
    return;
  }
  ADD_FAILURE() << context << ": expected " << err_kind_name(kind) << ", nothing was thrown";
}

void expect_outputs_match(const OpCase& row, Dtype dtype, const std::vector<Tensor>& outs,
                          const std::vector<HostTensor>& refs, Device device,
                          double (*tol_of)(Dtype), const std::string& context) {
  ASSERT_EQ(outs.size(), refs.size()) << context;
  for (size_t k = 0; k < outs.size(); ++k) {
    const Dtype want = row.out_dtypes.at(k).value_or(dtype);
    ASSERT_TRUE(outs[k].defined()) << context << " output " << k;
    EXPECT_EQ(dtype_name(outs[k].dtype()), std::string(dtype_name(want)))
        << context << " output " << k;
    EXPECT_EQ(outs[k].device().str(), device.str()) << context << " output " << k;
    double tol = is_floating(want) ? tol_of(want) : 0.0;
    if (want == Dtype::Float32 || want == Dtype::Float64) tol *= row.tol_scale;
    const HostTensor got = to_host(outs[k]);
    const double err = max_rel_error(got, refs[k], row.floor);
    EXPECT_LE(err, tol) << context << " output " << k << ": got shape " << shape_str(got.shape)
                        << ", want " << shape_str(refs[k].shape);
    if (err > tol && got.shape == refs[k].shape) {  // the first few offending elements
      int shown = 0;
      for (size_t i = 0; i < got.v.size() && shown < 4; ++i) {
        double e = std::abs(got.v[i] - refs[k].v[i]) / std::max(std::abs(refs[k].v[i]), row.floor);
        if (e > tol || std::isnan(got.v[i]) != std::isnan(refs[k].v[i])) {
          ADD_FAILURE() << context << " output " << k << " element " << i << ": got " << got.v[i]
                        << ", want " << refs[k].v[i];
          ++shown;
        }
      }
    }
  }
}

uint32_t case_seed(const std::string& name, Dtype dtype) {
  uint32_t h = 2166136261u;  // FNV-1a: stable across platforms, unlike std::hash
  for (char c : name) h = (h ^ uint8_t(c)) * 16777619u;
  return (h ^ uint32_t(dtype)) * 16777619u;
}

std::string case_name(const std::string& row, Dtype dtype) { return row + "_" + dtype_name(dtype); }

void expect_gpu_matches_cpu(const OpCase& row, Dtype dtype, int trials) {
  const uint32_t seed = case_seed(row.name, dtype) ^ 0x9e3779b9u;
  std::mt19937 rng(seed);
  const Device gpu = Device::cuda(0);
  for (int trial = 0; trial < trials && !::testing::Test::HasFailure(); ++trial) {
    const Draw draw = row.draw(rng);
    const std::vector<InputSpec> specs = make_inputs(row, draw, dtype, rng, trial > 0);
    std::ostringstream ctx;
    ctx << row.name << " " << dtype_name(dtype) << " seed " << seed << " trial " << trial << ": "
        << describe(draw) << " " << describe(specs);
    std::vector<Tensor> on_cpu, on_gpu;
    for (const InputSpec& s : specs) {
      on_cpu.push_back(realize(s, dtype, Device::cpu()));
      on_gpu.push_back(realize(s, dtype, gpu));
    }
    std::vector<Tensor> want, got;
    try {
      want = row.run(on_cpu, draw);
      got = row.run(on_gpu, draw);
    } catch (const std::exception& e) {
      ADD_FAILURE() << ctx.str() << ": threw " << e.what();
      return;
    }
    std::vector<HostTensor> ref;
    for (const Tensor& t : want) ref.push_back(to_host(t));
    expect_outputs_match(row, dtype, got, ref, gpu, gpu_tolerance, ctx.str());
  }
}

}  // namespace nn::test

void nn::PrintTo(Dtype d, std::ostream* os) { *os << dtype_name(d); }
