// safetensors with CUDA tensors: saving copies device tensors (any strides) to the host, and
// loading onto a GPU gives the same bytes as loading onto the CPU.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/io.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

namespace nn {
namespace {

std::string host_bytes(const Tensor& t) {
  Tensor h = t.contiguous().to(Device::cpu());
  if (h.numel() == 0) return {};
  return std::string(static_cast<const char*>(h.data_ptr()), h.nbytes());
}

TEST(IoGpu, SavesDeviceTensorsAndLoadsOntoTheGpu) {
  NN_REQUIRE_GPU();
  const Device gpu = Device::cuda();
  Generator gen(11);
  io::NamedTensors in = {
      {"f32.t", randn({3, 5}, {Dtype::Float32, gpu}, &gen).t()},
      {"bf16", randn({4, 2}, {Dtype::BFloat16, gpu}, &gen)},
      {"f16.strided", randn({6}, {Dtype::Float16, gpu}, &gen).slice(0, 0, 6, 2)},
      {"f64.cpu", randn({2}, {Dtype::Float64}, &gen)},  // devices may be mixed
      {"empty", zeros({0, 4}, {Dtype::Float32, gpu})},
  };
  const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                     ("nn_test_io_gpu_" + std::to_string(::getpid()) + ".st");
  io::save_safetensors(path.string(), in);

  io::SafetensorsFile on_gpu = io::load_safetensors(path.string(), gpu);
  io::SafetensorsFile on_cpu = io::load_safetensors(path.string());
  std::filesystem::remove(path);
  ASSERT_EQ(on_gpu.tensors.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    SCOPED_TRACE(in[i].first);
    const Tensor& g = on_gpu.tensors[i].second;
    EXPECT_EQ(on_gpu.tensors[i].first, in[i].first);
    EXPECT_EQ(g.device(), gpu);
    EXPECT_EQ(g.dtype(), in[i].second.dtype());
    EXPECT_EQ(g.shape(), in[i].second.shape());
    EXPECT_EQ(host_bytes(g), host_bytes(in[i].second));
    EXPECT_EQ(host_bytes(on_cpu.tensors[i].second), host_bytes(in[i].second));
  }
}

}  // namespace
}  // namespace nn
