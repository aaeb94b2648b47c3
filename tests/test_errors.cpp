// Bad input across the API: each gives the documented nn::Error subclass with a message that
// names the op and the offending values.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/test_util.h"

namespace nn {
namespace {

using ::nn::test::message_of;

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(Errors, OutOfRangeViewsAreIndexErrors) {
  Tensor t = zeros({2, 3});
  EXPECT_THROW(t.slice(2, 0, 1), IndexError);
  EXPECT_THROW(t.slice(-3, 0, 1), IndexError);
  EXPECT_THROW(t.select(1, 3), IndexError);
  EXPECT_THROW(t.select(1, -4), IndexError);
  EXPECT_THROW(t.select(2, 0), IndexError);
  EXPECT_THROW(t.permute({0, 2}), IndexError);
  EXPECT_THROW(t.transpose(0, 2), IndexError);
  EXPECT_THROW(t.transpose(-3, 0), IndexError);
  EXPECT_THROW(t.narrow(1, 2, 2), IndexError);
  EXPECT_THROW(t.squeeze(2), IndexError);
  EXPECT_THROW(t.unsqueeze(3), IndexError);
  EXPECT_THROW(t.size(2), IndexError);
  EXPECT_THAT(message_of<IndexError>([] { wrap_dim(5, 2, "my_op"); }), HasSubstr("my_op"));
  EXPECT_EQ(wrap_dim(-1, 2, "my_op"), 1);
}

TEST(Errors, PermuteNeedsEachDimOnce) {
  EXPECT_THROW(zeros({2, 3}).permute({0, 0}), Error);
  EXPECT_THROW(zeros({2, 3}).permute({0}), Error);
}

TEST(Errors, ViewOnNonContiguousIsShapeError) {
  Tensor t = zeros({2, 3}).t();
  EXPECT_THROW(t.view({6}), ShapeError);
  EXPECT_NO_THROW(t.reshape({6}));  // reshape copies instead
}

TEST(Errors, WrongNumelIsShapeError) {
  Tensor t = zeros({2, 3});
  const std::string msg = message_of<ShapeError>([&] { t.reshape({4, 2}); });
  EXPECT_THAT(msg, HasSubstr("[4, 2]"));
  EXPECT_THROW(t.view({5}), ShapeError);
  EXPECT_THROW(t.view({-1, -1}), ShapeError);
  EXPECT_THROW(t.view({-1, 4}), ShapeError);
}

TEST(Errors, ExpandOfNonOneDimIsShapeError) {
  EXPECT_THROW(zeros({2, 3}).expand({4, 3}), ShapeError);
  EXPECT_THROW(zeros({2, 3}).expand({3}), ShapeError);  // fewer dims than the tensor
}

TEST(Errors, MatmulInnerMismatchNamesBothShapes) {
  const std::string msg = message_of<ShapeError>([] { matmul(zeros({2, 3}), zeros({4, 5})); });
  EXPECT_THAT(msg, AllOf(HasSubstr("matmul"), HasSubstr("[2, 3]"), HasSubstr("[4, 5]")));
}

TEST(Errors, BinaryShapeMismatchNamesOpAndShapes) {
  const std::string msg = message_of<ShapeError>([] { add(zeros({2, 3}), zeros({4})); });
  EXPECT_THAT(msg, AllOf(HasSubstr("add"), HasSubstr("[2, 3]"), HasSubstr("[4]")));
}

TEST(Errors, CudaTensorWithoutGpuIsDeviceError) {
  if (cuda::available()) GTEST_SKIP() << "a GPU is present: this checks the no-GPU path";
  const std::string msg = message_of<DeviceError>([] {
    zeros({2}, {Dtype::Float32, Device::cuda(0)});
  });
  EXPECT_THAT(msg, HasSubstr("cuda"));
  EXPECT_THROW(zeros({2}).to(Device::cuda(0)), DeviceError);
  EXPECT_THROW(empty({2}, {Dtype::Float32, Device::cuda(0)}), DeviceError);
  EXPECT_THROW(cuda::check_device(Device::cuda(0), "probe"), DeviceError);
}

TEST(Errors, UnknownDeviceAndDtypeNames) {
  EXPECT_THAT(message_of<ValueError>([] { Device::parse("tpu"); }), HasSubstr("tpu"));
  EXPECT_THROW(Device::parse("cuda:x"), ValueError);
  EXPECT_THROW(Device::parse(""), ValueError);
  EXPECT_THAT(message_of<DtypeError>([] { parse_dtype("int3"); }), HasSubstr("int3"));
  EXPECT_EQ(parse_dtype("float32"), Dtype::Float32);
  EXPECT_EQ(parse_dtype("f32"), Dtype::Float32);
  EXPECT_EQ(parse_dtype("float"), Dtype::Float32);
  EXPECT_EQ(parse_dtype("float64"), Dtype::Float64);
  EXPECT_EQ(parse_dtype("bf16"), Dtype::BFloat16);
  EXPECT_EQ(parse_dtype("bfloat16"), Dtype::BFloat16);
  EXPECT_EQ(parse_dtype("float16"), Dtype::Float16);
  EXPECT_EQ(parse_dtype("int64"), Dtype::Int64);
  EXPECT_EQ(parse_dtype("bool"), Dtype::Bool);
}

TEST(Errors, BadFactoryArguments) {
  EXPECT_THROW(zeros({-1, 2}), Error);
  EXPECT_THROW(from_vector<float>({1, 2, 3}, {2, 2}), Error);
  EXPECT_THROW(arange(0, 1, 0), Error);
}

TEST(Errors, DtypeMismatchNamesOp) {
  const std::string msg =
      message_of<DtypeError>([] { mul(zeros({2}), zeros({2}, {Dtype::Float64})); });
  EXPECT_THAT(msg, AllOf(HasSubstr("mul"), HasSubstr("float32"), HasSubstr("float64")));
  EXPECT_THAT(message_of<DtypeError>([] { exp(zeros({2}, {Dtype::Int64})); }), HasSubstr("exp"));
}

TEST(Errors, ReductionAxisOutOfRangeNamesOp) {
  EXPECT_THAT(message_of<IndexError>([] { sum(zeros({2, 3}), {2}); }), HasSubstr("sum"));
  EXPECT_THAT(message_of<IndexError>([] { softmax(zeros({2, 3}), 5); }), HasSubstr("softmax"));
}

}  // namespace
}  // namespace nn
