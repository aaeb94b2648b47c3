// Front end of the matmul row. The backend wants each operand as [B, r, c] with unit column
// stride (row-major rows; the leading dimension is stride(1), the batch stride stride(0) may
// be 0). Here the operands are promoted (1-D as in NumPy), batch-broadcast, collapsed to one
// batch dimension, and brought to that layout: a column-major operand is passed as its
// transpose with the transpose flag flipped (no copy); only anything else is made contiguous.
#include <algorithm>
#include <atomic>
#include <string>

#include "kernels/backend.h"
#include "kernels/op_checks.h"

namespace nn {

namespace {

std::atomic<bool> g_allow_tf32{false};

// One operand in the layout the backend row needs, and whether op() transposes it.
struct Operand {
  Tensor t;
  bool trans;
};

// [batch..., r, c] -> [B, r, c]: a view when the batch dimensions collapse to one stride (they
// do when they are all broadcast, or dense in order), else a contiguous copy.
Tensor collapse_batch(const Tensor& t) {
  int64_t nb = t.dim() - 2;
  int64_t batch = 1, batch_stride = 0, expect = -1;
  bool collapsible = true;
  for (int64_t i = nb - 1; i >= 0; --i) {
    batch *= t.size(i);
    if (t.size(i) == 1) continue;
    if (expect < 0)
      batch_stride = t.stride(i);
    else if (t.stride(i) != expect)
      collapsible = false;
    expect = t.stride(i) * t.size(i);
  }
  Shape shape{batch, t.size(-2), t.size(-1)};
  if (!collapsible) return t.contiguous().view(shape);
  return t.as_strided(shape, {batch_stride, t.stride(-2), t.stride(-1)}, t.offset());
}

// Strides of size-1 dimensions are arbitrary; give them the values the layout tests expect so
// that a vector or a single row is recognised as row-major.
Tensor tidy_unit_strides(const Tensor& t) {
  int64_t r = t.size(1), c = t.size(2);
  Shape st = t.strides();
  if (c == 1) st[2] = 1;
  if (r == 1) st[1] = std::max<int64_t>(c, 1);
  if (t.size(0) == 1) st[0] = r * c;
  return t.as_strided(t.shape(), st, t.offset());
}

Operand normalise_operand(const Tensor& t3, bool trans) {
  Tensor t = tidy_unit_strides(t3);
  int64_t r = t.size(1), c = t.size(2);
  if (t.stride(2) == 1 && t.stride(1) >= std::max<int64_t>(c, 1)) return {t, trans};
  if (t.stride(1) == 1 && t.stride(2) >= std::max<int64_t>(r, 1))
    return {t.as_strided({t.size(0), c, r}, {t.stride(0), t.stride(2), 1}, t.offset()), !trans};
  return {tidy_unit_strides(t.contiguous()), trans};
}

std::string operand_desc(const char* name, const Tensor& t, bool trans) {
  return std::string(name) + " " + shape_str(t.shape()) + (trans ? " (transposed)" : "");
}

}  // namespace

void set_allow_tf32(bool allow) { g_allow_tf32.store(allow, std::memory_order_relaxed); }
bool allow_tf32() { return g_allow_tf32.load(std::memory_order_relaxed); }

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  detail::check_inputs("matmul", {{"a", a}, {"b", b}});
  detail::check_floating("matmul", {"a", a});
  detail::check_same_dtype("matmul", {"a", a}, {"b", b});
  NN_CHECK(a.dim() >= 1 && b.dim() >= 1, ShapeError,
           "matmul: operands must have at least one dimension, got a ", shape_str(a.shape()),
           " and b ", shape_str(b.shape()));

  // 1-D operands: a vector a is a row [1, k], a vector b a column [k, 1]; transposing a vector
  // means nothing, and the added dimension is dropped from the result.
  bool a_vec = a.dim() == 1, b_vec = b.dim() == 1;
  Tensor a2 = a_vec ? a.unsqueeze(0) : a;
  Tensor b2 = b_vec ? b.unsqueeze(1) : b;
  bool ta = trans_a && !a_vec, tb = trans_b && !b_vec;

  int64_t m = ta ? a2.size(-1) : a2.size(-2), ka = ta ? a2.size(-2) : a2.size(-1);
  int64_t kb = tb ? b2.size(-1) : b2.size(-2), n = tb ? b2.size(-2) : b2.size(-1);
  NN_CHECK(ka == kb, ShapeError, "matmul: inner sizes differ: ", operand_desc("a", a, ta), " has ",
           ka, ", ", operand_desc("b", b, tb), " has ", kb);

  Shape batch_a(a2.shape().begin(), a2.shape().end() - 2),
      batch_b(b2.shape().begin(), b2.shape().end() - 2);
  Shape batch = detail::broadcast_shapes("matmul (batch dimensions)", {batch_a, batch_b});
  Shape final_shape = batch;
  if (!a_vec) final_shape.push_back(m);
  if (!b_vec) final_shape.push_back(n);

  auto expanded = [&](const Tensor& t) {
    Shape s = batch;
    s.push_back(t.size(-2));
    s.push_back(t.size(-1));
    return t.expand(s);
  };
  Tensor a3 = collapse_batch(expanded(a2)), b3 = collapse_batch(expanded(b2));
  int64_t batch_count = a3.size(0);

  Tensor out = empty({batch_count, m, n}, {a.dtype(), a.device()});
  if (out.numel() == 0) return out.view(final_shape);
  if (ka == 0) {  // an empty sum
    backend::fill(out, 0.0);
    return out.view(final_shape);
  }
  Operand oa = normalise_operand(a3, ta), ob = normalise_operand(b3, tb);
  backend::matmul(out, oa.t, ob.t, oa.trans, ob.trans);
  return out.view(final_shape);
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  detail::check_inputs("bmm", {{"a", a}, {"b", b}});
  detail::check_floating("bmm", {"a", a});
  detail::check_floating("bmm", {"b", b});
  detail::check_same_dtype("bmm", {"a", a}, {"b", b});
  NN_CHECK(a.dim() == 3 && b.dim() == 3, ShapeError,
           "bmm: expects 3-D operands [B, m, k] and [B, k, n], got a ", shape_str(a.shape()),
           " and b ", shape_str(b.shape()));
  NN_CHECK(a.size(0) == b.size(0), ShapeError, "bmm: batch sizes differ: a ", shape_str(a.shape()),
           ", b ", shape_str(b.shape()));
  NN_CHECK(a.size(2) == b.size(1), ShapeError, "bmm: inner sizes differ: a ", shape_str(a.shape()),
           " has ", a.size(2), ", b ", shape_str(b.shape()), " has ", b.size(1));
  return matmul(a, b);
}

}  // namespace nn
