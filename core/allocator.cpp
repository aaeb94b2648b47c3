// Host allocations. CUDA and pinned memory live in core/cuda/ (or core/no_cuda.cpp).
#include "core/allocator.h"

#include <cstdlib>

#include "core/error.h"

namespace nn {

void* cpu_allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  // aligned_alloc requires a size that is a multiple of the alignment.
  size_t rounded = (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
  NN_CHECK(rounded >= nbytes, OutOfMemoryError, "cpu_allocate: request of ", nbytes, " bytes overflows");
  void* p = std::aligned_alloc(kCpuAlignment, rounded);
  NN_CHECK(p != nullptr, OutOfMemoryError, "cpu_allocate: out of host memory allocating ", nbytes,
           " bytes");
  return p;
}

void cpu_free(void* p) { std::free(p); }

}  // namespace nn
