// Device discovery, streams, pinned memory, copies and the CUDA caching allocator.
// The first group runs everywhere (CPU-only builds, machines without a GPU or driver); the
// CudaDevice group needs a GPU and skips itself without one (CTest label `gpu`).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "core/allocator.h"
#include "core/device.h"
#include "core/error.h"
#include "core/storage.h"
#include "core/stream.h"

#if defined(NN_WITH_CUDA)
#include "core/cuda_context.h"
#endif

namespace nn {
namespace {

constexpr size_t kMiB = size_t(1) << 20;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Runs `fn`, expects a DeviceError, and returns its message.
template <class Fn>
std::string device_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const DeviceError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a DeviceError";
  return "";
}

// ---- everywhere ----------------------------------------------------------------------------

TEST(CudaRuntime, DiscoveryNeverThrowsAndAgrees) {
  bool avail = true;
  int count = -1;
  ASSERT_NO_THROW(avail = cuda::available());
  ASSERT_NO_THROW(count = cuda::device_count());
  EXPECT_EQ(avail, count > 0);
  EXPECT_GE(count, 0);
#if defined(NN_WITH_CUDA)
  EXPECT_TRUE(cuda::built_with_cuda());
#else
  EXPECT_FALSE(cuda::built_with_cuda());
  EXPECT_FALSE(avail);
#endif
  // Asking twice gives the same answer (and no sticky error surfaces the second time).
  EXPECT_EQ(cuda::available(), avail);
  EXPECT_EQ(cuda::device_count(), count);
}

// The first index with no device behind it: cuda:0 on a machine without a GPU.
TEST(CudaRuntime, AbsentDeviceThrowsDeviceErrorNamingIt) {
  const int absent = cuda::device_count();
  const std::string name = "cuda:" + std::to_string(absent);
  std::string msg = device_error_of([&] { cuda::allocate(16, absent); });
  EXPECT_TRUE(contains(msg, "cuda::allocate")) << msg;
  if (cuda::built_with_cuda()) {
    EXPECT_TRUE(contains(msg, name + " requested")) << msg;
  } else {
    EXPECT_TRUE(contains(msg, "built without CUDA (NN_CUDA=OFF)")) << msg;
  }
  if (!cuda::available() && cuda::built_with_cuda()) {
    EXPECT_TRUE(contains(msg, "no CUDA device is available")) << msg;
  }

  EXPECT_THROW(Stream::create(Device::cuda(absent)), DeviceError);
  EXPECT_THROW(cuda::properties(absent), DeviceError);
  EXPECT_THROW(cuda::current_stream(absent), DeviceError);
  EXPECT_THROW(cuda::memory_stats(absent), DeviceError);
  EXPECT_THROW(cuda::synchronize(absent), DeviceError);
  EXPECT_THROW(allocate_storage(64, Device::cuda(absent)), DeviceError);
  EXPECT_THROW(cuda::check_device(Device::cuda(absent), "test"), DeviceError);
  EXPECT_NO_THROW(cuda::check_device(Device::cpu(), "test"));
  char host[8] = {};
  msg = device_error_of([&] { copy_bytes(host, Device::cpu(), host, Device::cuda(absent), 8); });
  EXPECT_TRUE(contains(msg, "copy_bytes")) << msg;
}

TEST(CudaRuntime, WithoutAGpuPinnedMemoryAndSyncThrow) {
  if (cuda::available()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_THROW(pinned_allocate(64), DeviceError);
  EXPECT_THROW(cuda::synchronize(), DeviceError);
  EXPECT_NO_THROW(cuda::empty_cache());  // nothing is cached anywhere
  EXPECT_NO_THROW(pinned_free(nullptr));
  EXPECT_NO_THROW(cuda::deallocate(nullptr));
}

TEST(CudaRuntime, HostToHostCopyWorksEverywhere) {
  std::vector<int32_t> src(1000), dst(1000, -1);
  std::iota(src.begin(), src.end(), 7);
  copy_bytes(dst.data(), Device::cpu(), src.data(), Device::cpu(), src.size() * sizeof(int32_t));
  EXPECT_EQ(dst, src);
  copy_bytes(nullptr, Device::cpu(), nullptr, Device::cpu(), 0);  // an empty copy is fine
  EXPECT_THROW(copy_bytes(nullptr, Device::cpu(), src.data(), Device::cpu(), 4), ValueError);
}

TEST(CudaRuntime, CpuStreamsAreInert) {
  Stream s = Stream::create(Device::cpu());
  EXPECT_EQ(s.handle(), nullptr);
  EXPECT_TRUE(s.device().is_cpu());
  EXPECT_NO_THROW(s.synchronize());
  EXPECT_NO_THROW(cuda::set_current_stream(Stream()));
  { cuda::StreamGuard guard{Stream()}; }
}

// ---- with a GPU ----------------------------------------------------------------------------

class CudaDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(CudaDevice, PropertiesDescribeARealDevice) {
  const cuda::DeviceProperties p = cuda::properties(0);
  EXPECT_FALSE(p.name.empty());
  EXPECT_GT(p.multiprocessors, 0);
  EXPECT_GT(p.total_memory, int64_t(256) * int64_t(kMiB));
  EXPECT_GE(p.major, 3);
  EXPECT_GT(p.clock_mhz, 0);
  EXPECT_NO_THROW(cuda::synchronize());
  EXPECT_NO_THROW(cuda::synchronize(0));
}

TEST_F(CudaDevice, StreamsCreateSynchronizeAndBecomeCurrent) {
  const Stream default_stream = cuda::current_stream(0);
  EXPECT_EQ(default_stream.handle(), nullptr);
  EXPECT_EQ(default_stream.device(), Device::cuda(0));
  Stream s = Stream::create(Device::cuda(0));
  EXPECT_NE(s.handle(), nullptr);
  EXPECT_NO_THROW(s.synchronize());
  {
    cuda::StreamGuard guard(s);
    EXPECT_EQ(cuda::current_stream(0), s);
    // The current stream is per thread: another thread still sees the default one.
    Stream seen_elsewhere;
    std::thread([&] { seen_elsewhere = cuda::current_stream(0); }).join();
    EXPECT_EQ(seen_elsewhere, default_stream);
  }
  EXPECT_EQ(cuda::current_stream(0), default_stream);
}

TEST_F(CudaDevice, PinnedAsyncCopyRoundTrip) {
  constexpr size_t kCount = size_t(1) << 22;  // 16 MiB of floats
  const size_t bytes = kCount * sizeof(float);
  auto* host_in = static_cast<float*>(pinned_allocate(bytes));
  auto* host_out = static_cast<float*>(pinned_allocate(bytes));
  for (size_t i = 0; i < kCount; ++i) host_in[i] = static_cast<float>(i) * 0.5f - 3.0f;
  std::memset(host_out, 0, bytes);
  Stream side = Stream::create(Device::cuda(0));
  {
    cuda::StreamGuard guard(side);
    void* dev = cuda::allocate(bytes, 0);
    copy_bytes(dev, Device::cuda(0), host_in, Device::cpu(), bytes, /*non_blocking=*/true);
    copy_bytes(host_out, Device::cpu(), dev, Device::cuda(0), bytes, /*non_blocking=*/true);
    side.synchronize();
    cuda::deallocate(dev);
  }
  EXPECT_EQ(std::memcmp(host_in, host_out, bytes), 0);
  pinned_free(host_in);
  pinned_free(host_out);
}

TEST_F(CudaDevice, PageableAndDeviceToDeviceCopies) {
  std::vector<double> src(100000), dst(100000, 0.0);
  std::iota(src.begin(), src.end(), 1.25);
  const size_t bytes = src.size() * sizeof(double);
  auto a = allocate_storage(bytes, Device::cuda(0));
  auto b = allocate_storage(bytes, Device::cuda(0));
  // non_blocking with pageable memory must still be safe to read right after the call.
  copy_bytes(a->data(), Device::cuda(0), src.data(), Device::cpu(), bytes, true);
  copy_bytes(b->data(), Device::cuda(0), a->data(), Device::cuda(0), bytes);
  copy_bytes(dst.data(), Device::cpu(), b->data(), Device::cuda(0), bytes, true);
  EXPECT_EQ(dst, src);
}

TEST_F(CudaDevice, AllocatorStatsFollowRealAllocations) {
  // A fresh stream has no cached blocks, so each request below must reach cudaMalloc.
  Stream fresh = Stream::create(Device::cuda(0));
  cuda::StreamGuard guard(fresh);
  cuda::empty_cache(0);
  const MemoryStats before = cuda::memory_stats(0);
  void* small = cuda::allocate(1000, 0);
  void* large = cuda::allocate(30 * kMiB, 0);
  MemoryStats s = cuda::memory_stats(0);
  EXPECT_EQ(s.allocated_bytes - before.allocated_bytes, int64_t(1024 + 30 * kMiB));
  EXPECT_EQ(s.reserved_bytes - before.reserved_bytes, int64_t(2 * kMiB + 30 * kMiB));
  EXPECT_EQ(s.num_device_allocs - before.num_device_allocs, 2);
  EXPECT_GE(s.peak_allocated_bytes, s.allocated_bytes);
  // It is real device memory: a round trip through it preserves the data.
  std::vector<uint8_t> in(1000), out(1000, 0);
  std::iota(in.begin(), in.end(), uint8_t(3));
  copy_bytes(small, Device::cuda(0), in.data(), Device::cpu(), in.size());
  copy_bytes(out.data(), Device::cpu(), small, Device::cuda(0), out.size());
  EXPECT_EQ(in, out);
  cuda::deallocate(small);
  cuda::deallocate(large);
  s = cuda::memory_stats(0);
  EXPECT_EQ(s.allocated_bytes, before.allocated_bytes);
  cuda::empty_cache(0);
  s = cuda::memory_stats(0);
  EXPECT_EQ(s.reserved_bytes, before.reserved_bytes);
  EXPECT_EQ(s.num_device_frees - before.num_device_frees, 2);
  EXPECT_THROW(cuda::deallocate(small), ValueError);  // already returned
}

TEST_F(CudaDevice, ReservedBytesStayFlatAcrossRepeatedAllocFree) {
  const size_t sizes[] = {1000, 300 * 1024, 3 * kMiB, 50 * kMiB};
  auto step = [&] {
    std::vector<void*> held;
    for (size_t n : sizes) held.push_back(cuda::allocate(n, 0));
    for (void* p : held) cuda::deallocate(p);
  };
  step();
  const MemoryStats warm = cuda::memory_stats(0);
  for (int i = 0; i < 200; ++i) step();
  const MemoryStats after = cuda::memory_stats(0);
  EXPECT_EQ(after.reserved_bytes, warm.reserved_bytes);
  EXPECT_EQ(after.num_device_allocs, warm.num_device_allocs);
  EXPECT_EQ(after.allocated_bytes, warm.allocated_bytes);
}

TEST_F(CudaDevice, BlocksDoNotMoveBetweenStreams) {
  Stream side = Stream::create(Device::cuda(0));
  void* on_default = cuda::allocate(4096, 0);
  cuda::deallocate(on_default);
  void* on_side = nullptr;
  {
    cuda::StreamGuard guard(side);
    on_side = cuda::allocate(4096, 0);
  }
  EXPECT_NE(on_side, on_default);
  void* again = cuda::allocate(4096, 0);
  EXPECT_EQ(again, on_default);
  cuda::deallocate(again);
  cuda::deallocate(on_side);
  side.synchronize();
}

TEST_F(CudaDevice, ImpossibleRequestThrowsOutOfMemoryNamingTheDevice) {
  const int64_t total = cuda::properties(0).total_memory;
  const int64_t retries_before = cuda::memory_stats(0).num_alloc_retries;
  try {
    cuda::allocate(static_cast<size_t>(total) * 2, 0);
    FAIL() << "expected OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    const std::string msg = e.what();
    EXPECT_TRUE(contains(msg, "cuda:0")) << msg;
    EXPECT_TRUE(contains(msg, "tried to allocate")) << msg;
    EXPECT_TRUE(contains(msg, "reserved")) << msg;
  }
  EXPECT_EQ(cuda::memory_stats(0).num_alloc_retries, retries_before + 1);
  // The device is still usable afterwards (the error was not sticky).
  void* p = cuda::allocate(1000, 0);
  EXPECT_NE(p, nullptr);
  cuda::deallocate(p);
}

#if defined(NN_WITH_CUDA)
// ---- checked calls and library handles (CUDA builds) ---------------------------------------

TEST(CudaRuntime, CheckedCallsNameTheCallTheErrorAndTheLine) {
  std::string msg;
  try {
    NN_CUDA_CHECK(cudaErrorInvalidValue);
  } catch (const CudaError& e) {
    msg = e.what();
  }
  EXPECT_TRUE(contains(msg, "cudaErrorInvalidValue")) << msg;
  EXPECT_TRUE(contains(msg, "invalid argument")) << msg;
  EXPECT_TRUE(contains(msg, "test_cuda_runtime.cpp:")) << msg;
  msg.clear();
  try {
    NN_CUBLAS_CHECK(CUBLAS_STATUS_NOT_INITIALIZED);
  } catch (const CudaError& e) {
    msg = e.what();
  }
  EXPECT_TRUE(contains(msg, "CUBLAS_STATUS_NOT_INITIALIZED")) << msg;
  EXPECT_TRUE(contains(msg, "cuBLAS call")) << msg;
  // Without a GPU the handles refuse with a DeviceError, like everything else.
  if (!cuda::available()) {
    EXPECT_THROW(cuda::cublas_handle(0), DeviceError);
    EXPECT_THROW(cuda::cublaslt_workspace(0), DeviceError);
  }
}

TEST_F(CudaDevice, CublasHandlesArePerThreadAndFollowTheCurrentStream) {
  cublasHandle_t mine = cuda::cublas_handle(0);
  EXPECT_EQ(cuda::cublas_handle(0), mine);
  cublasHandle_t other = nullptr;
  std::thread([&] { other = cuda::cublas_handle(0); }).join();
  EXPECT_NE(other, mine);
  Stream side = Stream::create(Device::cuda(0));
  cudaStream_t bound = nullptr;
  {
    cuda::StreamGuard guard(side);
    NN_CUBLAS_CHECK(cublasGetStream(cuda::cublas_handle(0), &bound));
    EXPECT_EQ(bound, static_cast<cudaStream_t>(side.handle()));
    void* ws = cuda::cublaslt_workspace(0);
    EXPECT_NE(ws, nullptr);
    EXPECT_EQ(cuda::cublaslt_workspace(0), ws);  // kept per stream
  }
  NN_CUBLAS_CHECK(cublasGetStream(cuda::cublas_handle(0), &bound));
  EXPECT_EQ(bound, nullptr);
  EXPECT_NE(cuda::cublaslt_handle(0), nullptr);
  {
    cuda::DeviceGuard guard(0);
    int now = -1;
    NN_CUDA_CHECK(cudaGetDevice(&now));
    EXPECT_EQ(now, 0);
  }
}
#endif  // NN_WITH_CUDA

}  // namespace
}  // namespace nn
