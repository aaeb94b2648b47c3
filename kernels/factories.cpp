// Factories, fills and random fills. Values are produced by the fill and random rows on the
// target's device; only arange and from_vector build their values on the host (they are
// inherently host data) and copy them over once.
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>

#include "kernels/backend.h"
#include "kernels/op_checks.h"

namespace nn {

namespace {

Tensor filled(const char* op, const Shape& shape, double value, TensorOptions options) {
  detail::check_sizes(op, shape);
  Tensor t = empty(shape, options);
  return fill_(t, value);
}

Tensor& random_fill(const char* op, Tensor& t, RandomKind kind, double a, double b,
                    Generator* gen) {
  detail::check_inputs(op, {{"t", t}});
  detail::check_floating(op, {"t", t});
  detail::check_writable(op, t);
  if (t.numel() == 0) return t;
  Generator& g = gen ? *gen : default_generator();
  uint64_t seed = g.seed(), offset = g.next_offset();
  // Draw i goes to element i in row-major order, so a strided target gets the same values as
  // a contiguous one: fill a contiguous temporary and copy.
  if (t.is_contiguous()) {
    backend::random(t, kind, a, b, seed, offset);
    return t;
  }
  Tensor tmp = empty(t.shape(), {t.dtype(), t.device()});
  backend::random(tmp, kind, a, b, seed, offset);
  return t.copy_(tmp);
}

}  // namespace

Tensor zeros(const Shape& shape, TensorOptions options) {
  return filled("zeros", shape, 0.0, options);
}
Tensor ones(const Shape& shape, TensorOptions options) {
  return filled("ones", shape, 1.0, options);
}
Tensor full(const Shape& shape, double value, TensorOptions options) {
  return filled("full", shape, value, options);
}

Tensor arange(double start, double end, double step, TensorOptions options) {
  NN_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step), ValueError,
           "arange: start, end and step must be finite, got ", start, ", ", end, ", ", step);
  NN_CHECK(step != 0.0, ValueError, "arange: step must be nonzero");
  NN_CHECK(!((end > start && step < 0) || (end < start && step > 0)), ValueError, "arange: step ",
           step, " moves away from end ", end, " starting at ", start);
  double count = std::ceil((end - start) / step);
  NN_CHECK(count < double(std::numeric_limits<int64_t>::max() / 16), ValueError, "arange: ", count,
           " elements is too many");
  Tensor out = empty({int64_t(count)}, options);
  if (out.numel() > 0) backend::arange(out, start, step);
  return out;
}

Tensor empty_like(const Tensor& t) {
  detail::check_inputs("empty_like", {{"t", t}});
  return empty(t.shape(), {t.dtype(), t.device()});
}
Tensor zeros_like(const Tensor& t) {
  detail::check_inputs("zeros_like", {{"t", t}});
  return zeros(t.shape(), {t.dtype(), t.device()});
}
Tensor ones_like(const Tensor& t) {
  detail::check_inputs("ones_like", {{"t", t}});
  return ones(t.shape(), {t.dtype(), t.device()});
}

Tensor rand(const Shape& shape, TensorOptions options, Generator* gen) {
  detail::check_sizes("rand", shape);
  Tensor t = empty(shape, options);
  return uniform_(t, 0.0, 1.0, gen);
}

Tensor randn(const Shape& shape, TensorOptions options, Generator* gen) {
  detail::check_sizes("randn", shape);
  Tensor t = empty(shape, options);
  return normal_(t, 0.0, 1.0, gen);
}

Tensor& fill_(Tensor& t, double value) {
  detail::check_inputs("fill_", {{"t", t}});
  if (t.numel() > 0) backend::fill(t, value);
  return t;
}

Tensor& uniform_(Tensor& t, double low, double high, Generator* gen) {
  NN_CHECK(std::isfinite(low) && std::isfinite(high) && low <= high, ValueError,
           "uniform_: expects finite low <= high, got low ", low, ", high ", high);
  return random_fill("uniform_", t, RandomKind::Uniform, low, high, gen);
}

Tensor& normal_(Tensor& t, double mean, double std, Generator* gen) {
  NN_CHECK(std::isfinite(mean) && std::isfinite(std) && std >= 0.0, ValueError,
           "normal_: expects a finite mean and std >= 0, got mean ", mean, ", std ", std);
  return random_fill("normal_", t, RandomKind::Normal, mean, std, gen);
}

Tensor& bernoulli_(Tensor& t, double p, Generator* gen) {
  NN_CHECK(p >= 0.0 && p <= 1.0, ValueError, "bernoulli_: p must be in [0, 1], got ", p);
  return random_fill("bernoulli_", t, RandomKind::Bernoulli, p, 0.0, gen);
}

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions options) {
  detail::check_sizes("from_vector", shape);
  NN_CHECK(shape_numel(shape) == int64_t(values.size()), ShapeError, "from_vector: ", values.size(),
           " values do not fill shape ", shape_str(shape), " of ", shape_numel(shape), " elements");
  Tensor out = empty(shape, options);
  if (values.empty()) return out;
  if constexpr (std::is_same_v<T, bool>) {
    // std::vector<bool> packs bits: unpack into real bools first.
    std::unique_ptr<bool[]> unpacked(new bool[values.size()]);
    std::copy(values.begin(), values.end(), unpacked.get());
    out.copy_(from_blob(unpacked.get(), shape, Dtype::Bool));
  } else {
    // The copy is synchronous (pageable host memory), so the caller's buffer may go after it.
    out.copy_(from_blob(const_cast<T*>(values.data()), shape, dtype_of<T>));
  }
  return out;
}

#define NN_INSTANTIATE_FROM_VECTOR(T) \
  template Tensor from_vector<T>(const std::vector<T>&, const Shape&, TensorOptions);
NN_INSTANTIATE_FROM_VECTOR(float)
NN_INSTANTIATE_FROM_VECTOR(double)
NN_INSTANTIATE_FROM_VECTOR(int64_t)
NN_INSTANTIATE_FROM_VECTOR(bool)
NN_INSTANTIATE_FROM_VECTOR(bfloat16)
NN_INSTANTIATE_FROM_VECTOR(float16)
#undef NN_INSTANTIATE_FROM_VECTOR

}  // namespace nn
