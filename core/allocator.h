// Memory allocators.
//  - CPU: 64-byte aligned (one cache line; 16-byte vector loads never straddle it).
//  - Pinned host memory (cudaHostAlloc) so host<->device copies can run asynchronously.
//  - CUDA: a caching allocator over cudaMalloc (never managed memory). Freed blocks go back to
//    a pool of the stream they were used on and are reused by later requests on that stream
//    (stream-ordered reuse), splitting larger blocks; on cudaMalloc failure it frees its cache
//    and retries once, then throws OutOfMemoryError naming the request and the totals.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/device.h"

namespace nn {

constexpr size_t kCpuAlignment = 64;

void* cpu_allocate(size_t nbytes);  // throws OutOfMemoryError
void cpu_free(void* p);
void* pinned_allocate(size_t nbytes);  // throws DeviceError without CUDA, OutOfMemoryError
void pinned_free(void* p);

struct MemoryStats {
  int64_t allocated_bytes = 0;       // in blocks handed out now
  int64_t reserved_bytes = 0;        // obtained from the driver, in use or cached
  int64_t peak_allocated_bytes = 0;  // high-water mark of allocated_bytes
  int64_t peak_reserved_bytes = 0;
  int64_t num_device_allocs = 0;     // cudaMalloc calls so far
  int64_t num_device_frees = 0;      // cudaFree calls so far
  int64_t num_alloc_retries = 0;     // out-of-memory retries after emptying the cache
};

namespace cuda {
// Allocates from the caching allocator on `device`, associated with the current stream.
void* allocate(size_t nbytes, int device);
void deallocate(void* p);
// Releases every cached, unused segment back to the driver.
void empty_cache(int device = -1);
MemoryStats memory_stats(int device = 0);
void reset_peak_stats(int device = 0);
}  // namespace cuda

}  // namespace nn
