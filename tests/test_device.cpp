// Devices: names and parsing, the CPU fallback, and the no-GPU state as a normal one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/device.h"
#include "core/error.h"

namespace nn {
namespace {

TEST(Device, StrAndParseRoundTrip) {
  EXPECT_EQ(Device::cpu().str(), "cpu");
  EXPECT_EQ(Device::cuda(0).str(), "cuda:0");
  EXPECT_EQ(Device::cuda(3).str(), "cuda:3");
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_EQ(Device::parse("cuda"), Device::cuda(0));
  EXPECT_EQ(Device::parse("cuda:1"), Device::cuda(1));
  for (Device d : {Device::cpu(), Device::cuda(0), Device::cuda(7)})
    EXPECT_EQ(Device::parse(d.str()), d);
  EXPECT_TRUE(Device::cpu().is_cpu());
  EXPECT_TRUE(Device::cuda(2).is_cuda());
  EXPECT_NE(Device::cuda(0), Device::cuda(1));
}

TEST(Device, BadNamesAreValueErrors) {
  for (const char* bad : {"tpu", "CUDA:0x", "cuda:", "cuda:-1", "cpu:0:1", "gpu"}) {
    EXPECT_THROW(Device::parse(bad), ValueError) << bad;
  }
}

TEST(Device, BestDeviceFollowsAvailability) {
  if (cuda::available()) {
    EXPECT_EQ(best_device(), Device::cuda(0));
    EXPECT_GT(cuda::device_count(), 0);
  } else {
    EXPECT_EQ(best_device(), Device::cpu());
    EXPECT_EQ(cuda::device_count(), 0);
  }
}

TEST(Device, NoGpuIsANormalState) {
  if (cuda::available()) GTEST_SKIP() << "a GPU is present: this checks the no-GPU path";
  try {
    cuda::properties(0);
    ADD_FAILURE() << "properties(0) returned without a GPU";
  } catch (const DeviceError& e) {
    EXPECT_FALSE(std::string(e.what()).empty());
  }
  EXPECT_NO_THROW(cuda::check_device(Device::cpu(), "probe"));
  try {
    cuda::check_device(Device::cuda(0), "probe_op");
    ADD_FAILURE() << "check_device(cuda:0) passed without a GPU";
  } catch (const DeviceError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("probe_op"));
  }
}

TEST(Device, BuiltWithCudaMatchesTheBuild) {
#ifdef NN_WITH_CUDA
  EXPECT_TRUE(cuda::built_with_cuda());
#else
  EXPECT_FALSE(cuda::built_with_cuda());
  EXPECT_FALSE(cuda::available());
#endif
  if (!cuda::built_with_cuda()) {
    EXPECT_FALSE(cuda::available());
  }
}

}  // namespace
}  // namespace nn
