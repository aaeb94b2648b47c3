// Tensor-level cat and stack (kernels/shape_ops.h): values along every axis, strided and empty
// parts, non-floating dtypes, and the errors of the contract.
#include <gtest/gtest.h>

#include "kernels/shape_ops.h"
#include "tests/op_harness.h"

namespace nn::test {
namespace {

Tensor f64(const std::vector<double>& v, const Shape& s) {
  return from_vector(v, s, {Dtype::Float64});
}
std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

TEST(ShapeOps, CatAlongEachAxis) {
  const Tensor a = f64({1, 2, 3, 4}, {2, 2}), b = f64({5, 6}, {1, 2}), c = f64({7, 8}, {2, 1});
  Tensor rows = cat({a, b});
  EXPECT_EQ(rows.shape(), (Shape{3, 2}));
  EXPECT_EQ(values(rows), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  Tensor cols = cat({a, c}, -1);
  EXPECT_EQ(cols.shape(), (Shape{2, 3}));
  EXPECT_EQ(values(cols), (std::vector<double>{1, 2, 7, 3, 4, 8}));
  // A transposed (strided) part and an empty part.
  Tensor mixed = cat({a.t(), f64({}, {2, 0}), c}, 1);
  EXPECT_EQ(values(mixed), (std::vector<double>{1, 3, 7, 2, 4, 8}));
  EXPECT_TRUE(mixed.is_contiguous());
}

TEST(ShapeOps, CatOfAMiddleAxisAndOtherDtypes) {
  const Tensor a = from_vector<int64_t>({1, 2, 3, 4}, {2, 1, 2});
  const Tensor b = from_vector<int64_t>({5, 6, 7, 8}, {2, 1, 2});
  Tensor out = cat({a, b}, 1);
  EXPECT_EQ(out.dtype(), Dtype::Int64);
  EXPECT_EQ(out.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(out.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 5, 6, 3, 4, 7, 8}));
  Tensor masks = cat({from_vector<bool>({true}, {1}), from_vector<bool>({false, true}, {2})});
  EXPECT_EQ(masks.to_vector<bool>(), (std::vector<bool>{true, false, true}));
}

TEST(ShapeOps, StackOnANewAxis) {
  const Tensor a = f64({1, 2, 3}, {3}), b = f64({4, 5, 6}, {3});
  Tensor s0 = stack({a, b});
  EXPECT_EQ(s0.shape(), (Shape{2, 3}));
  EXPECT_EQ(values(s0), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  Tensor s1 = stack({a, b}, -1);
  EXPECT_EQ(s1.shape(), (Shape{3, 2}));
  EXPECT_EQ(values(s1), (std::vector<double>{1, 4, 2, 5, 3, 6}));
  Tensor scalars = stack({f64({7}, {}), f64({8}, {})});
  EXPECT_EQ(scalars.shape(), (Shape{2}));
  EXPECT_EQ(values(scalars), (std::vector<double>{7, 8}));
}

TEST(ShapeOps, Errors) {
  const Tensor a = f64({1, 2, 3, 4}, {2, 2});
  expect_error(
      ErrKind::Value, "cat", [] { cat({}); }, "empty list");
  expect_error(
      ErrKind::Value, "stack", [] { stack({}); }, "empty list");
  expect_error(
      ErrKind::Value, "cat",
      [&] {
        cat({a, Tensor()});
      },
      "undefined");
  expect_error(
      ErrKind::Dtype, "cat",
      [&] {
        cat({a, a.to(Dtype::Float32)});
      },
      "dtypes");
  expect_error(
      ErrKind::Shape, "cat",
      [&] {
        cat({a, f64({1, 2, 3}, {1, 3})});
      },
      "sizes");
  expect_error(
      ErrKind::Shape, "cat",
      [&] {
        cat({a, f64({1, 2}, {2})});
      },
      "ranks");
  expect_error(
      ErrKind::Shape, "cat",
      [] {
        cat({f64({1}, {}), f64({2}, {})});
      },
      "0-d");
  expect_error(
      ErrKind::Index, "cat",
      [&] {
        cat({a, a}, 2);
      },
      "dim 2");
  expect_error(
      ErrKind::Shape, "stack",
      [&] {
        stack({a, a.reshape({4})});
      },
      "shapes");
  expect_error(
      ErrKind::Index, "stack",
      [&] {
        stack({a, a}, 3);
      },
      "dim 3");
}

}  // namespace
}  // namespace nn::test
