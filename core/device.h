// Where a tensor lives: the CPU or one CUDA device. No GPU (or no driver) is a normal state:
// nn::cuda::available() is false and asking for a CUDA tensor throws DeviceError.
#pragma once

#include <cstdint>
#include <string>

namespace nn {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static constexpr Device cpu() { return {DeviceType::CPU, 0}; }
  static constexpr Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  constexpr bool is_cpu() const { return type == DeviceType::CPU; }
  constexpr bool is_cuda() const { return type == DeviceType::CUDA; }
  constexpr bool operator==(const Device&) const = default;

  std::string str() const;  // "cpu", "cuda:0"
  // Parses "cpu", "cuda", "cuda:1". Throws ValueError for anything else.
  static Device parse(const std::string& text);
};

// cuda:0 when a GPU is present, else the CPU.
Device best_device();

namespace cuda {

struct DeviceProperties {
  std::string name;
  int multiprocessors = 0;
  int64_t total_memory = 0;  // bytes
  int major = 0;             // compute capability
  int minor = 0;
  int clock_mhz = 0;         // SM clock
  int memory_clock_mhz = 0;
  int memory_bus_width = 0;  // bits
};

bool built_with_cuda();  // false when the library was configured with NN_CUDA=OFF
bool available();        // a usable GPU and driver are present
int device_count();      // 0 without a GPU, a driver, or CUDA support in the build
// Throws DeviceError when `index` names no device.
DeviceProperties properties(int index = 0);
// Blocks the host until all work on `index` is done (-1: the current device).
void synchronize(int index = -1);
// How many times the library has made the host wait on a GPU so far in this process:
// synchronize(), Stream::synchronize(), and every copy to or from a device that is not
// asynchronous (a blocking to(), copy_, to_vector or item()). A steady-state training step should
// leave it unchanged. Always 0 in a build without CUDA.
int64_t host_sync_count();
// Throws DeviceError naming `what` unless `device` is a present CUDA device (no-op for the CPU).
void check_device(const Device& device, const char* what);

}  // namespace cuda
}  // namespace nn
