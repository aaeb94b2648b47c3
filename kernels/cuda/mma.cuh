// Tensor-core building blocks for kernels that stage their own operands in shared memory (the
// implicit-GEMM convolution today): one mma.sync tile of 16 x 8 with float32 accumulators, for
// bfloat16 / float16 (m16n8k16) and float32 read as TF32 (m16n8k8), and fragment loads from
// K-contiguous tiles. Device code only, compute capability 8.0 or newer; internal to kernels/cuda/.
//
// Fragment layout (PTX ISA, g = lane / 4, t = lane % 4), tiles stored K-contiguous (element
// (row, k) at s[row * stride + k]):
//  - half A (16 x 16): registers {(g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..)}, each
//    register two neighbouring k, so one 32-bit shared load (stride and k even);
//  - half B (16 x 8, column n = g): {(k 2t..2t+1), (k 2t+8..2t+9)};
//  - TF32 A (16 x 8): {(g, t), (g+8, t), (g, t+4), (g+8, t+4)}; B (8 x 8): {(t, g), (t+4, g)};
//  - C (16 x 8): {(g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)}.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/dtype.h"
#include "core/macros.h"

namespace nn::cuda::tc {

// k extent of one mma for input type T.
template <class T>
constexpr int kMmaK = sizeof(T) == 2 ? 16 : 8;

__device__ NN_INLINE uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

__device__ NN_INLINE uint32_t ld_pair(const void* p) { return *static_cast<const uint32_t*>(p); }

// The A fragment of rows m .. m + 15, k .. k + kMmaK of a K-contiguous tile.
template <class T>
__device__ NN_INLINE void load_a(uint32_t (&f)[4], const T* s, int stride, int m, int k, int lane) {
  const int g = lane >> 2, t = lane & 3;
  const T* r0 = s + (m + g) * stride + k;
  const T* r1 = r0 + 8 * stride;
  if constexpr (sizeof(T) == 2) {
    f[0] = ld_pair(r0 + 2 * t);
    f[1] = ld_pair(r1 + 2 * t);
    f[2] = ld_pair(r0 + 2 * t + 8);
    f[3] = ld_pair(r1 + 2 * t + 8);
  } else {
    f[0] = to_tf32(r0[t]);
    f[1] = to_tf32(r1[t]);
    f[2] = to_tf32(r0[t + 4]);
    f[3] = to_tf32(r1[t + 4]);
  }
}

// The B fragment of columns n .. n + 7, k .. k + kMmaK of a K-contiguous tile (row = column of B).
template <class T>
__device__ NN_INLINE void load_b(uint32_t (&f)[2], const T* s, int stride, int n, int k, int lane) {
  const int g = lane >> 2, t = lane & 3;
  const T* r = s + (n + g) * stride + k;
  if constexpr (sizeof(T) == 2) {
    f[0] = ld_pair(r + 2 * t);
    f[1] = ld_pair(r + 2 * t + 8);
  } else {
    f[0] = to_tf32(r[t]);
    f[1] = to_tf32(r[t + 4]);
  }
}

// c += a b for one 16 x 8 tile.
template <class T>
__device__ NN_INLINE void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if constexpr (std::is_same_v<T, bfloat16>)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else if constexpr (std::is_same_v<T, float16>)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

}  // namespace nn::cuda::tc
