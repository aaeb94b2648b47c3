// Tensor metadata and views. Nothing here launches a kernel; copies live in kernels/.
#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "core/allocator.h"

namespace nn {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape strides(s.size());
  int64_t running = 1;
  for (size_t i = s.size(); i-- > 0;) {
    strides[i] = running;
    running *= std::max<int64_t>(s[i], 1);
  }
  return strides;
}

int64_t wrap_dim(int64_t d, int64_t dim, const char* op) {
  int64_t lo = dim == 0 ? -1 : -dim, hi = dim == 0 ? 0 : dim - 1;
  NN_CHECK(d >= lo && d <= hi, IndexError, op, ": dimension ", d, " out of range for a tensor of rank ",
           dim, ", expected [", lo, ", ", hi, "]");
  return d < 0 ? d + std::max<int64_t>(dim, 1) : d;
}

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset,
               Dtype dtype)
    : storage_(std::move(storage)),
      shape_(std::move(shape)),
      strides_(std::move(strides)),
      offset_(offset),
      dtype_(dtype) {
  NN_CHECK(shape_.size() == strides_.size(), ShapeError, "Tensor: shape ", shape_str(shape_),
           " and strides ", shape_str(strides_), " differ in rank");
}

int64_t Tensor::size(int64_t d) const { return shape_[size_t(wrap_dim(d, dim(), "size"))]; }
int64_t Tensor::stride(int64_t d) const { return strides_[size_t(wrap_dim(d, dim(), "stride"))]; }
Device Tensor::device() const { return storage_ ? storage_->device() : Device::cpu(); }
bool Tensor::is_pinned() const { return storage_ && storage_->pinned(); }

void* Tensor::data_ptr() const {
  NN_CHECK(defined(), ValueError, "data_ptr: the tensor is undefined");
  if (!storage_->data()) return nullptr;
  return static_cast<char*>(storage_->data()) + offset_ * int64_t(itemsize());
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return shape_numel(shape_) == 0;
    expected *= shape_[i];
  }
  return true;
}

namespace {

void check_defined(const Tensor& t, const char* op) {
  NN_CHECK(t.defined(), ValueError, op, ": the tensor is undefined");
}

// Resolves one -1 in `shape` against numel; throws ShapeError naming `op`.
Shape infer_shape(const Shape& shape, int64_t numel, const Shape& from, const char* op) {
  Shape out = shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      NN_CHECK(infer < 0, ShapeError, op, ": only one dimension can be -1, got ", shape_str(shape));
      infer = int(i);
    } else {
      NN_CHECK(out[i] >= 0, ShapeError, op, ": invalid size ", out[i], " in ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    NN_CHECK(known != 0 && numel % known == 0, ShapeError, op, ": shape ", shape_str(shape),
             " is invalid for a tensor of shape ", shape_str(from), " (", numel, " elements)");
    out[size_t(infer)] = numel / known;
  }
  NN_CHECK(shape_numel(out) == numel, ShapeError, op, ": shape ", shape_str(shape),
           " is invalid for a tensor of shape ", shape_str(from), " (", numel, " elements)");
  return out;
}

// Strides for viewing `t` with `shape` without a copy, or false when the layouts disagree
// (the chunks of `t` that are contiguous in memory must map onto whole groups of new sizes).
bool view_strides(const Tensor& t, const Shape& shape, Shape& strides) {
  strides.assign(shape.size(), 0);
  if (t.numel() == 0 || t.dim() == 0) {
    strides = contiguous_strides(shape);
    return true;
  }
  // Walk old dims from the innermost, grouping runs that are contiguous with each other.
  int64_t view_d = int64_t(shape.size()) - 1;
  int64_t chunk_base_stride = t.dim() ? t.strides().back() : 1;
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    tensor_numel *= t.shape()[size_t(d)];
    bool chunk_ends = d == 0 || (t.shape()[size_t(d - 1)] != 1 &&
                                 t.strides()[size_t(d - 1)] != tensor_numel * chunk_base_stride);
    if (chunk_ends) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[size_t(view_d)] == 1)) {
        strides[size_t(view_d)] = view_numel * chunk_base_stride;
        view_numel *= shape[size_t(view_d)];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = t.strides()[size_t(d - 1)];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

}  // namespace

Tensor Tensor::view(const Shape& shape) const {
  check_defined(*this, "view");
  Shape resolved = infer_shape(shape, numel(), shape_, "view");
  Shape new_strides;
  NN_CHECK(view_strides(*this, resolved, new_strides), ShapeError, "view: a tensor of shape ",
           shape_str(shape_), " with strides ", shape_str(strides_), " cannot be viewed as ",
           shape_str(resolved), " without a copy; use reshape()");
  return Tensor(storage_, resolved, new_strides, offset_, dtype_);
}

Tensor Tensor::reshape(const Shape& shape) const {
  check_defined(*this, "reshape");
  Shape resolved = infer_shape(shape, numel(), shape_, "reshape");
  Shape new_strides;
  if (view_strides(*this, resolved, new_strides))
    return Tensor(storage_, resolved, new_strides, offset_, dtype_);
  return contiguous().view(resolved);
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  check_defined(*this, "transpose");
  int64_t a = wrap_dim(d0, dim(), "transpose"), b = wrap_dim(d1, dim(), "transpose");
  if (dim() == 0) return *this;
  Shape s = shape_, st = strides_;
  std::swap(s[size_t(a)], s[size_t(b)]);
  std::swap(st[size_t(a)], st[size_t(b)]);
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::t() const {
  NN_CHECK(dim() <= 2, ShapeError, "t: expects a tensor of rank <= 2, got shape ", shape_str(shape_));
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  check_defined(*this, "permute");
  NN_CHECK(int64_t(dims.size()) == dim(), ShapeError, "permute: got ", dims.size(),
           " dimensions for a tensor of rank ", dim());
  Shape s(dims.size()), st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    NN_CHECK(!seen[size_t(d)], IndexError, "permute: dimension ", d, " repeated in ", shape_str(dims));
    seen[size_t(d)] = true;
    s[i] = shape_[size_t(d)];
    st[i] = strides_[size_t(d)];
  }
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  check_defined(*this, "slice");
  NN_CHECK(dim() > 0, IndexError, "slice: cannot slice a 0-d tensor");
  d = wrap_dim(d, dim(), "slice");
  NN_CHECK(step > 0, ValueError, "slice: step must be positive, got ", step);
  int64_t n = shape_[size_t(d)];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = shape_, st = strides_;
  s[size_t(d)] = (end - start + step - 1) / step;
  st[size_t(d)] = strides_[size_t(d)] * step;
  return Tensor(storage_, s, st, offset_ + start * strides_[size_t(d)], dtype_);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  check_defined(*this, "narrow");
  NN_CHECK(dim() > 0, IndexError, "narrow: cannot narrow a 0-d tensor");
  d = wrap_dim(d, dim(), "narrow");
  int64_t n = shape_[size_t(d)];
  if (start < 0) start += n;
  NN_CHECK(start >= 0 && length >= 0 && start + length <= n, IndexError, "narrow: range [", start,
           ", ", start + length, ") is outside dimension ", d, " of size ", n);
  return slice(d, start, start + length);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  check_defined(*this, "select");
  NN_CHECK(dim() > 0, IndexError, "select: cannot select from a 0-d tensor");
  d = wrap_dim(d, dim(), "select");
  int64_t n = shape_[size_t(d)];
  NN_CHECK(index >= -n && index < n, IndexError, "select: index ", index,
           " is out of range for dimension ", d, " of size ", n);
  if (index < 0) index += n;
  Shape s = shape_, st = strides_;
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return Tensor(storage_, s, st, offset_ + index * strides_[size_t(d)], dtype_);
}

Tensor Tensor::squeeze() const {
  check_defined(*this, "squeeze");
  Shape s, st;
  for (size_t i = 0; i < shape_.size(); ++i)
    if (shape_[i] != 1) s.push_back(shape_[i]), st.push_back(strides_[i]);
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::squeeze(int64_t d) const {
  check_defined(*this, "squeeze");
  if (dim() == 0) return *this;
  d = wrap_dim(d, dim(), "squeeze");
  if (shape_[size_t(d)] != 1) return *this;
  Shape s = shape_, st = strides_;
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  check_defined(*this, "unsqueeze");
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape_, st = strides_;
  int64_t stride = size_t(d) < shape_.size() ? strides_[size_t(d)] * shape_[size_t(d)] : 1;
  s.insert(s.begin() + d, 1);
  st.insert(st.begin() + d, stride);
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::expand(const Shape& shape) const {
  check_defined(*this, "expand");
  NN_CHECK(shape.size() >= shape_.size(), ShapeError, "expand: cannot expand shape ", shape_str(shape_),
           " to ", shape_str(shape), " of lower rank");
  size_t lead = shape.size() - shape_.size();
  Shape s(shape.size()), st(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      NN_CHECK(shape[i] >= 0, ShapeError, "expand: size -1 is not allowed for a new leading dimension in ",
               shape_str(shape));
      s[i] = shape[i];
      st[i] = 0;
      continue;
    }
    int64_t have = shape_[i - lead];
    int64_t want = shape[i] == -1 ? have : shape[i];
    NN_CHECK(want == have || have == 1, ShapeError, "expand: the expanded size ", want,
             " must match the existing size ", have, " at dimension ", i, " (shape ", shape_str(shape_),
             " to ", shape_str(shape), ")");
    s[i] = want;
    st[i] = (want == have) ? strides_[i - lead] : 0;
  }
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::as_strided(const Shape& shape, const Shape& strides, int64_t offset) const {
  check_defined(*this, "as_strided");
  NN_CHECK(shape.size() == strides.size(), ShapeError, "as_strided: shape ", shape_str(shape),
           " and strides ", shape_str(strides), " differ in rank");
  NN_CHECK(offset >= 0, IndexError, "as_strided: negative offset ", offset);
  int64_t last = offset;
  for (size_t i = 0; i < shape.size(); ++i) {
    NN_CHECK(shape[i] >= 0 && strides[i] >= 0, ShapeError, "as_strided: negative size or stride in ",
             shape_str(shape), " / ", shape_str(strides));
    if (shape[i] == 0) last = -1;
    if (last >= 0) last += (shape[i] - 1) * strides[i];
  }
  int64_t capacity = int64_t(storage_->nbytes() / itemsize());
  NN_CHECK(last < capacity, IndexError, "as_strided: view reaches element ", last,
           " but the storage holds ", capacity);
  return Tensor(storage_, shape, strides, offset, dtype_);
}

Tensor empty(const Shape& shape, TensorOptions options) {
  for (int64_t d : shape)
    NN_CHECK(d >= 0, ValueError, "empty: negative size in shape ", shape_str(shape));
  cuda::check_device(options.device, "empty");
  NN_CHECK(!(options.pinned && options.device.is_cuda()), ValueError,
           "empty: pinned applies to CPU tensors, asked for ", options.device.str());
  size_t nbytes = size_t(shape_numel(shape)) * dtype_size(options.dtype);
  auto storage = allocate_storage(nbytes, options.device, options.pinned);
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, options.dtype);
}

Tensor from_blob(void* data, const Shape& shape, Dtype dtype) {
  size_t nbytes = size_t(shape_numel(shape)) * dtype_size(dtype);
  return Tensor(wrap_storage(data, nbytes, Device::cpu()), shape, contiguous_strides(shape), 0, dtype);
}

// ---- printing -------------------------------------------------------------------------------

namespace {

constexpr int64_t kPrintEdgeItems = 3;   // values shown at each end of a long dimension
constexpr int64_t kPrintThreshold = 1000;  // summarise tensors with more elements

void print_values(std::ostream& os, const std::vector<double>& v, const Shape& shape,
                  const Shape& strides, size_t d, int64_t base, bool summarize, bool integral,
                  int indent) {
  if (d == shape.size()) {
    double x = v[size_t(base)];
    if (integral)
      os << int64_t(x);
    else if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 1e6)
      os << int64_t(x) << '.';
    else
      os << std::setprecision(4) << x;
    return;
  }
  os << '[';
  int64_t n = shape[d];
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kPrintEdgeItems && i == kPrintEdgeItems) {
      os << "..., ";
      i = n - kPrintEdgeItems;
    }
    if (i > 0 && !(summarize && n > 2 * kPrintEdgeItems && i == n - kPrintEdgeItems)) {
      os << ',';
      os << (d + 1 == shape.size() ? " " : "\n" + std::string(size_t(indent + 1), ' '));
    }
    print_values(os, v, shape, strides, d + 1, base + i * strides[d], summarize, integral, indent + 1);
  }
  os << ']';
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  std::ostringstream os;
  os << "tensor(";
  Tensor host = contiguous().to(Device::cpu());
  std::vector<double> values = host.to_vector<double>();
  bool integral = dtype_ == Dtype::Int64 || dtype_ == Dtype::Bool;
  print_values(os, values, shape_, contiguous_strides(shape_), 0, 0, numel() > kPrintThreshold,
               integral, 7);
  os << ", shape=" << shape_str(shape_) << ", dtype=" << dtype_name(dtype_);
  if (device().is_cuda()) os << ", device='" << device().str() << "'";
  os << ')';
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace nn
