// Our GEMM with a fused epilogue (contract in kernels/cuda/gemm.cuh).
//
// Tensor-core kernel, one template over the input type T (bfloat16, float16, or float read as
// TF32) and the two operand layouts:
//  - a block (8 warps) owns a kTileM x kTileN tile of D for one batch index (blockIdx.z) and walks
//    K in kTileK slices; kStages slices are in flight in shared memory, filled with 16-byte
//    cp.async (zero-filled past the edges, element by element where an operand is not 16-byte
//    aligned or a chunk straddles an edge), so any M, N, K works;
//  - a warp owns a kWarpTileM x kWarpTileN sub-tile: kFragsM x kFragsN mma.sync tiles of 16 x 8,
//    float32 accumulators in registers. Half types read their fragments with ldmatrix (.trans
//    when the operand's contiguous dimension is M or N rather than K); TF32 fragments are single
//    32-bit shared loads, rounded with cvt.rna.tf32;
//  - a thread owns the 4 accumulators of each mma tile it holds (rows g and g + 8, columns 2t and
//    2t + 1, g = lane / 4, t = lane % 4) and applies the epilogue to them in registers before the
//    only store: bias, pre-activation, activation (kernels/nn_math.h), residual, cast.
// Operand prologue (linear's backward): S, laid out like A, is staged with A into a third set of
// stage buffers; once a thread's own cp.async copies of a slice have landed it rewrites exactly
// the A chunks it copied, A' = activation_grad(A, S), so the existing barrier before the fragment
// loads also publishes A' and the prologue adds no barrier. Each A' element is computed once per
// block (not once per warp that reads it). Row sums of op(A') (the bias gradient) are taken from
// the rewritten tile by the blocks of the first N tile (blockIdx.y == 0), which see every K slice
// of their rows: thread t < kTileM keeps row t's sum in a register and writes it once at the end.
// Shared-memory rows are padded by 16 bytes (K-contiguous tiles) or 8 elements (M/N-contiguous
// tiles) so the 8 row addresses of an ldmatrix, or the 32 lanes of a TF32 fragment load, fall in
// different banks.
//
// SIMT kernel (float32 without TF32, float64): a block of 256 threads owns a 64 x 64 tile, walks
// K in slices of 16 staged in shared memory; a thread owns a 4 x 4 set of outputs strided by 16
// (rows ty + 16 i, columns tx + 16 j), so neighbouring threads read neighbouring B columns and
// write neighbouring D columns. Same epilogue; the prologue is applied as A is read from global
// memory, and row sums are taken from the staged tile as in the tensor-core kernel.
#include "kernels/cuda/gemm.cuh"

#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/nn_math.h"
#include "kernels/ops.h"

namespace nn::cuda {
namespace {

// ---- epilogue -------------------------------------------------------------------------------

template <class A>
__device__ NN_INLINE A activate(Activation act, A z) {
  // act is uniform across the grid, so the switch never diverges.
  switch (act) {
    case Activation::Relu:
      return math::activation_fn<Activation::Relu, A>(z);
    case Activation::Gelu:
      return math::activation_fn<Activation::Gelu, A>(z);
    case Activation::GeluTanh:
      return math::activation_fn<Activation::GeluTanh, A>(z);
    case Activation::Silu:
      return math::activation_fn<Activation::Silu, A>(z);
    case Activation::Tanh:
      return math::activation_fn<Activation::Tanh, A>(z);
    case Activation::Sigmoid:
      return math::activation_fn<Activation::Sigmoid, A>(z);
    case Activation::None:
      break;
  }
  return z;
}

// g * act'(s) for a runtime activation (uniform across the grid: the switch never diverges).
template <class A>
__device__ NN_INLINE A activation_grad_any(Activation act, A g, A s) {
  switch (act) {
    case Activation::Relu:
      return math::activation_grad<Activation::Relu, A>(g, s);
    case Activation::Gelu:
      return math::activation_grad<Activation::Gelu, A>(g, s);
    case Activation::GeluTanh:
      return math::activation_grad<Activation::GeluTanh, A>(g, s);
    case Activation::Silu:
      return math::activation_grad<Activation::Silu, A>(g, s);
    case Activation::Tanh:
      return math::activation_grad<Activation::Tanh, A>(g, s);
    case Activation::Sigmoid:
      return math::activation_grad<Activation::Sigmoid, A>(g, s);
    case Activation::None:
      break;
  }
  return g;
}

// The operand prologue as the kernels read it (GemmPrologue).
struct PrologueArgs {
  const void* saved;  // laid out like A; null when act is None
  void* row_sum;      // [M] in the epilogue's output type, or null
  Activation act;
  __device__ NN_INLINE bool transforms() const { return act != Activation::None; }
};

struct EpilogueArgs {
  void* d;
  const void* bias;
  const void* residual;
  void* pre;
  int64_t ldd, batch_stride_d;
  Activation act;
  bool out_f32;  // D, bias, residual and pre are float32 rather than the input type
};

template <class TO, class A>
__device__ NN_INLINE void store_output(const EpilogueArgs& e, int64_t idx, int64_t col, A acc) {
  A z = acc;
  if (e.bias) z += cast<A>(static_cast<const TO*>(e.bias)[col]);
  if (e.pre) static_cast<TO*>(e.pre)[idx] = cast<TO>(z);
  A y = activate(e.act, z);
  if (e.residual) y += cast<A>(static_cast<const TO*>(e.residual)[idx]);
  static_cast<TO*>(e.d)[idx] = cast<TO>(y);
}

// One output element (batch z, row, col) whose accumulated dot product is acc.
template <class T, class A>
__device__ NN_INLINE void epilogue(const EpilogueArgs& e, int64_t z, int64_t row, int64_t col,
                                   A acc) {
  const int64_t idx = z * e.batch_stride_d + row * e.ldd + col;
  if (e.out_f32)
    store_output<float>(e, idx, col, acc);
  else
    store_output<T>(e, idx, col, acc);
}

// One of A and B as the kernels read it.
struct OperandArgs {
  const void* ptr;
  int64_t ld, batch_stride;
  bool vec;  // base, ld and batch stride are 16-byte multiples: 16-byte staging allowed
};

struct GemmArgs {
  OperandArgs a, b;
  int64_t m, n, k;
  PrologueArgs pro;
  EpilogueArgs epi;
};

// Writes one row sum of op(A') (the prologue's a_row_sum) in the epilogue's output type.
template <class T, class A>
__device__ NN_INLINE void store_row_sum(const GemmArgs& args, int64_t row, A sum) {
  if (args.epi.out_f32)
    static_cast<float*>(args.pro.row_sum)[row] = cast<float>(sum);
  else
    static_cast<T*>(args.pro.row_sum)[row] = cast<T>(sum);
}

// ---- PTX wrappers (sm_80+) ------------------------------------------------------------------

__device__ NN_INLINE uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ NN_INLINE void cp_async16(void* smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(smem)), "l"(gmem)
               : "memory");
}
__device__ NN_INLINE void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int kPending>
__device__ NN_INLINE void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

template <bool kTrans>
__device__ NN_INLINE void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  if constexpr (kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(smem)));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(smem)));
}

// to_tf32 and the 16 x 8 mma tile are shared with the implicit-GEMM convolution (mma.cuh).
using tc::mma;
using tc::to_tf32;

// ---- tensor-core kernel ---------------------------------------------------------------------

constexpr int kTileM = 128, kTileN = 128, kTileK = 32;
constexpr int kWarpsM = 2, kWarpsN = 4;
constexpr int kTcThreads = kWarpsM * kWarpsN * kWarpSize;
constexpr int kWarpTileM = kTileM / kWarpsM, kWarpTileN = kTileN / kWarpsN;  // 64 x 32
constexpr int kMmaM = 16, kMmaN = 8;
constexpr int kFragsM = kWarpTileM / kMmaM, kFragsN = kWarpTileN / kMmaN;  // 4 x 4
constexpr int kStages = 3;
constexpr int kPadMN = 8;  // elements added to a row of an M/N-contiguous tile
constexpr int kMaxGridYZ = 65535;
static_assert(kFragsN % 2 == 0, "B fragments are loaded two n-tiles per ldmatrix.x4");

// Shared-memory shape of one stage of an operand whose outer dimension (M or N) is kOuter.
template <class T, int kOuter, bool kKContig>
struct TileShape {
  static constexpr int kVec = kVectorBytes / int(sizeof(T));  // elements per 16-byte chunk
  static constexpr int kRows = kKContig ? kOuter : kTileK;
  static constexpr int kCols = kKContig ? kTileK : kOuter;
  static constexpr int kStride = kCols + (kKContig ? kVec : kPadMN);
  static constexpr int kElems = kRows * kStride;
  static_assert((kStride * sizeof(T)) % kVectorBytes == 0, "rows must stay 16-byte aligned");
  static_assert((kRows * kCols / kVec) % kTcThreads == 0, "chunks must split evenly");
};

// With the prologue a third set of stage buffers holds S (shaped like A).
template <class T, bool kAK, bool kBK>
constexpr size_t tc_smem_bytes(bool prologue) {
  return size_t(kStages) *
         (TileShape<T, kTileM, kAK>::kElems * (prologue ? 2 : 1) +
          TileShape<T, kTileN, kBK>::kElems) *
         sizeof(T);
}

// Stages rows [row0, row0 + kRows) x columns [col0, col0 + kCols) of a row-major global matrix
// (leading dimension ld, rows_lim x cols_lim valid) into shared memory; outside is zero.
template <class T, class Shape>
__device__ NN_INLINE void load_tile(T* smem, const T* g, int64_t ld, int64_t row0, int64_t col0,
                                    int64_t rows_lim, int64_t cols_lim, bool vec) {
  constexpr int kVec = Shape::kVec;
  constexpr int kChunksPerRow = Shape::kCols / kVec;
  constexpr int kChunks = Shape::kRows * kChunksPerRow;
  static_assert(kChunks % kTcThreads == 0, "load_tile: chunks must split evenly");
#pragma unroll
  for (int i = 0; i < kChunks / kTcThreads; ++i) {
    const int c = int(threadIdx.x) + i * kTcThreads;
    const int r = c / kChunksPerRow, cc = (c % kChunksPerRow) * kVec;
    const int64_t gr = row0 + r, gc = col0 + cc;
    T* s = smem + r * Shape::kStride + cc;
    if (vec && gr < rows_lim && gc + kVec <= cols_lim) {
      cp_async16(s, g + gr * ld + gc);
    } else {
#pragma unroll
      for (int e = 0; e < kVec; ++e)
        s[e] = (gr < rows_lim && gc + e < cols_lim) ? g[gr * ld + gc + e] : T(0.0f);
    }
  }
}

// The prologue on the chunks of a staged A tile that the calling thread copied in load_tile (same
// chunk assignment), so only its own cp.async copies need to have landed: A' = act'(A; S).
template <class T, class Shape>
__device__ NN_INLINE void transform_own_chunks(T* sa, const T* ss, Activation act) {
  constexpr int kVec = Shape::kVec;
  constexpr int kChunksPerRow = Shape::kCols / kVec;
  constexpr int kChunks = Shape::kRows * kChunksPerRow;
#pragma unroll
  for (int i = 0; i < kChunks / kTcThreads; ++i) {
    const int c = int(threadIdx.x) + i * kTcThreads;
    const int at = (c / kChunksPerRow) * Shape::kStride + (c % kChunksPerRow) * kVec;
#pragma unroll
    for (int e = 0; e < kVec; ++e)
      sa[at + e] = T(
          activation_grad_any(act, static_cast<float>(sa[at + e]), static_cast<float>(ss[at + e])));
  }
}

// A fragment of the 16 x kMmaK slice of A at rows m, columns kk (tile in shared memory).
template <class T, bool kAK>
__device__ NN_INLINE void load_a_frag(uint32_t (&f)[4], const T* s, int m, int kk, int lane) {
  using Shape = TileShape<T, kTileM, kAK>;
  if constexpr (sizeof(T) == 2) {
    // The four 8 x 8 matrices are (rows 0-7, k 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15);
    // lanes 8 i .. 8 i + 7 give the row addresses of matrix i.
    if constexpr (kAK)
      ldmatrix_x4<false>(f, s + (m + (lane & 15)) * Shape::kStride + kk + (lane >> 4) * 8);
    else
      ldmatrix_x4<true>(f, s + (kk + (lane & 7) + ((lane >> 4) << 3)) * Shape::kStride + m +
                               ((lane >> 3) & 1) * 8);
  } else {
    const int g = lane >> 2, t = lane & 3;
    auto at = [&](int i, int k) {
      return kAK ? s[(m + i) * Shape::kStride + kk + k] : s[(kk + k) * Shape::kStride + m + i];
    };
    f[0] = to_tf32(at(g, t));
    f[1] = to_tf32(at(g + 8, t));
    f[2] = to_tf32(at(g, t + 4));
    f[3] = to_tf32(at(g + 8, t + 4));
  }
}

// B fragments of two neighbouring 8-column tiles (columns n .. n + 15), rows kk .. kk + kMmaK.
template <class T, bool kBK>
__device__ NN_INLINE void load_b_frags(uint32_t (&f0)[2], uint32_t (&f1)[2], const T* s, int n,
                                       int kk, int lane) {
  using Shape = TileShape<T, kTileN, kBK>;
  if constexpr (sizeof(T) == 2) {
    // Matrices in the order (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15).
    uint32_t r[4];
    if constexpr (kBK)
      ldmatrix_x4<false>(r, s + (n + (lane & 7) + ((lane >> 4) << 3)) * Shape::kStride + kk +
                                ((lane >> 3) & 1) * 8);
    else
      ldmatrix_x4<true>(r, s + (kk + (lane & 15)) * Shape::kStride + n + (lane >> 4) * 8);
    f0[0] = r[0];
    f0[1] = r[1];
    f1[0] = r[2];
    f1[1] = r[3];
  } else {
    const int g = lane >> 2, t = lane & 3;
    auto at = [&](int k, int j) {
      return kBK ? s[(n + j) * Shape::kStride + kk + k] : s[(kk + k) * Shape::kStride + n + j];
    };
    f0[0] = to_tf32(at(t, g));
    f0[1] = to_tf32(at(t + 4, g));
    f1[0] = to_tf32(at(t, g + 8));
    f1[1] = to_tf32(at(t + 4, g + 8));
  }
}

template <class T, bool kAK, bool kBK>
__global__ void __launch_bounds__(kTcThreads) gemm_tc_kernel(GemmArgs args) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // the host never launches it there (gemm_tensor_core_supports)
#else
  using ShapeA = TileShape<T, kTileM, kAK>;
  using ShapeB = TileShape<T, kTileN, kBK>;
  constexpr int kMmaK = sizeof(T) == 2 ? 16 : 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* const s_a = reinterpret_cast<T*>(smem_raw);
  T* const s_b = s_a + kStages * ShapeA::kElems;
  T* const s_s = s_b + kStages * ShapeB::kElems;  // S stages, only with the prologue
  const bool transform = args.pro.transforms();
  const bool row_sums = args.pro.row_sum != nullptr && blockIdx.y == 0;

  const int64_t z = blockIdx.z;
  const T* ga = static_cast<const T*>(args.a.ptr) + z * args.a.batch_stride;
  const T* gb = static_cast<const T*>(args.b.ptr) + z * args.b.batch_stride;
  const T* gs =
      transform ? static_cast<const T*>(args.pro.saved) + z * args.a.batch_stride : nullptr;
  const int64_t m0 = int64_t(blockIdx.x) * kTileM, n0 = int64_t(blockIdx.y) * kTileN;
  const int64_t M = args.m, N = args.n, K = args.k;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int wm = (warp / kWarpsN) * kWarpTileM, wn = (warp % kWarpsN) * kWarpTileN;

  auto load_stage = [&](int stage, int64_t kt) {
    const int64_t k0 = kt * kTileK;
    T* sa = s_a + stage * ShapeA::kElems;
    T* sb = s_b + stage * ShapeB::kElems;
    if constexpr (kAK)
      load_tile<T, ShapeA>(sa, ga, args.a.ld, m0, k0, M, K, args.a.vec);
    else
      load_tile<T, ShapeA>(sa, ga, args.a.ld, k0, m0, K, M, args.a.vec);
    if (transform) {  // S shares A's layout, so the same chunks land in the same places
      T* ss = s_s + stage * ShapeA::kElems;
      if constexpr (kAK)
        load_tile<T, ShapeA>(ss, gs, args.a.ld, m0, k0, M, K, args.a.vec);
      else
        load_tile<T, ShapeA>(ss, gs, args.a.ld, k0, m0, K, M, args.a.vec);
    }
    if constexpr (kBK)
      load_tile<T, ShapeB>(sb, gb, args.b.ld, n0, k0, N, K, args.b.vec);
    else
      load_tile<T, ShapeB>(sb, gb, args.b.ld, k0, n0, K, N, args.b.vec);
  };

  float acc[kFragsM][kFragsN][4] = {};
  float row_sum = 0.0f;  // thread t < kTileM: row m0 + t of op(A'), over the slices seen so far
  const int64_t k_tiles = ceil_div(K, kTileK);
  // One commit group per slice, empty ones included, so wait_group counts slices exactly.
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) load_stage(s, s);
    cp_async_commit();
  }
  for (int64_t kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<kStages - 2>();  // slice kt has landed (this thread's copies) ...
    const int stage = int(kt % kStages);
    if (transform)  // ... so this thread may rewrite the chunks it copied
      transform_own_chunks<T, ShapeA>(s_a + stage * ShapeA::kElems, s_s + stage * ShapeA::kElems,
                                      args.pro.act);
    __syncthreads();  // everyone's copies (and A') are visible; slice kt - 1 is no longer read
    const int64_t next = kt + kStages - 1;
    if (next < k_tiles) load_stage(int(next % kStages), next);
    cp_async_commit();

    const T* sa = s_a + stage * ShapeA::kElems;
    const T* sb = s_b + stage * ShapeB::kElems;
    if (row_sums && threadIdx.x < kTileM) {
      const int r = int(threadIdx.x);
#pragma unroll 8
      for (int kk = 0; kk < kTileK; ++kk)
        row_sum +=
            static_cast<float>(kAK ? sa[r * ShapeA::kStride + kk] : sa[kk * ShapeA::kStride + r]);
    }
#pragma unroll
    for (int kk = 0; kk < kTileK; kk += kMmaK) {
      uint32_t fa[kFragsM][4], fb[kFragsN][2];
#pragma unroll
      for (int i = 0; i < kFragsM; ++i) load_a_frag<T, kAK>(fa[i], sa, wm + i * kMmaM, kk, lane);
#pragma unroll
      for (int j = 0; j < kFragsN; j += 2)
        load_b_frags<T, kBK>(fb[j], fb[j + 1], sb, wn + j * kMmaN, kk, lane);
#pragma unroll
      for (int i = 0; i < kFragsM; ++i)
#pragma unroll
        for (int j = 0; j < kFragsN; ++j) mma<T>(acc[i][j], fa[i], fb[j]);
    }
  }
  cp_async_wait<0>();  // no copy may still target shared memory when the block exits
  if (row_sums && threadIdx.x < kTileM && m0 + threadIdx.x < M)
    store_row_sum<T>(args, m0 + threadIdx.x, row_sum);

  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int i = 0; i < kFragsM; ++i) {
#pragma unroll
    for (int j = 0; j < kFragsN; ++j) {
#pragma unroll
      for (int h = 0; h < 4; ++h) {
        const int64_t row = m0 + wm + i * kMmaM + g + (h >> 1) * 8;
        const int64_t col = n0 + wn + j * kMmaN + 2 * t + (h & 1);
        if (row < M && col < N) epilogue<T>(args.epi, z, row, col, acc[i][j][h]);
      }
    }
  }
#endif
}

// ---- SIMT kernel ----------------------------------------------------------------------------

constexpr int kSimtTile = 64, kSimtK = 16, kSimtThreads = 256;
constexpr int kSimtSide = 16;                          // threads per side of the block
constexpr int kSimtPerThread = kSimtTile / kSimtSide;  // 4 x 4 outputs per thread

struct SimtLayout {
  bool trans_a, trans_b;
};

template <class T>
__global__ void __launch_bounds__(kSimtThreads) gemm_simt_kernel(GemmArgs args, SimtLayout lay) {
  using A = acc_t<T>;
  // k-major tiles: the inner loop reads a row of each; +1 breaks bank conflicts of the stores.
  __shared__ T s_a[kSimtK][kSimtTile + 1];
  __shared__ T s_b[kSimtK][kSimtTile + 1];
  const int64_t z = blockIdx.z;
  const T* ga = static_cast<const T*>(args.a.ptr) + z * args.a.batch_stride;
  const T* gb = static_cast<const T*>(args.b.ptr) + z * args.b.batch_stride;
  const bool transform = args.pro.transforms();
  const bool row_sums = args.pro.row_sum != nullptr && blockIdx.y == 0;
  const T* gs =
      transform ? static_cast<const T*>(args.pro.saved) + z * args.a.batch_stride : nullptr;
  const int64_t m0 = int64_t(blockIdx.x) * kSimtTile, n0 = int64_t(blockIdx.y) * kSimtTile;
  const int64_t M = args.m, N = args.n, K = args.k;
  const int tx = threadIdx.x % kSimtSide, ty = threadIdx.x / kSimtSide;

  A acc[kSimtPerThread][kSimtPerThread] = {};
  A row_sum = A(0);  // thread t < kSimtTile: row m0 + t of op(A')
  for (int64_t k0 = 0; k0 < K; k0 += kSimtK) {
    // Consecutive threads walk the operand's contiguous dimension, so global loads coalesce.
    for (int e = threadIdx.x; e < kSimtTile * kSimtK; e += kSimtThreads) {
      const int outer = lay.trans_a ? e % kSimtTile : e / kSimtK;
      const int kk = lay.trans_a ? e / kSimtTile : e % kSimtK;
      const int64_t gm = m0 + outer, gk = k0 + kk;
      T v = T(0);
      if (gm < M && gk < K) {
        const int64_t at = lay.trans_a ? gk * args.a.ld + gm : gm * args.a.ld + gk;
        v = ga[at];
        if (transform) v = T(activation_grad_any(args.pro.act, A(v), A(gs[at])));
      }
      s_a[kk][outer] = v;
    }
    for (int e = threadIdx.x; e < kSimtTile * kSimtK; e += kSimtThreads) {
      const int outer = lay.trans_b ? e / kSimtK : e % kSimtTile;
      const int kk = lay.trans_b ? e % kSimtK : e / kSimtTile;
      const int64_t gn = n0 + outer, gk = k0 + kk;
      T v = T(0);
      if (gn < N && gk < K) v = lay.trans_b ? gb[gn * args.b.ld + gk] : gb[gk * args.b.ld + gn];
      s_b[kk][outer] = v;
    }
    __syncthreads();
    if (row_sums && threadIdx.x < kSimtTile) {
#pragma unroll
      for (int kk = 0; kk < kSimtK; ++kk) row_sum += A(s_a[kk][threadIdx.x]);
    }
#pragma unroll
    for (int kk = 0; kk < kSimtK; ++kk) {
      A av[kSimtPerThread], bv[kSimtPerThread];
#pragma unroll
      for (int i = 0; i < kSimtPerThread; ++i) av[i] = A(s_a[kk][ty + i * kSimtSide]);
#pragma unroll
      for (int j = 0; j < kSimtPerThread; ++j) bv[j] = A(s_b[kk][tx + j * kSimtSide]);
#pragma unroll
      for (int i = 0; i < kSimtPerThread; ++i)
#pragma unroll
        for (int j = 0; j < kSimtPerThread; ++j) acc[i][j] = math::fma_(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < kSimtPerThread; ++i) {
#pragma unroll
    for (int j = 0; j < kSimtPerThread; ++j) {
      const int64_t row = m0 + ty + i * kSimtSide, col = n0 + tx + j * kSimtSide;
      if (row < M && col < N) epilogue<T>(args.epi, z, row, col, acc[i][j]);
    }
  }
  if (row_sums && threadIdx.x < kSimtTile && m0 + threadIdx.x < M)
    store_row_sum<T>(args, m0 + threadIdx.x, row_sum);
}

// ---- host side ------------------------------------------------------------------------------

bool out_dtype_ok(const GemmProblem& p, const GemmEpilogue& e) {
  return e.out_dtype == p.dtype || e.out_dtype == Dtype::Float32;
}

bool grid_ok(const GemmProblem& p, int64_t tile_n) {
  return p.batch <= kMaxGridYZ && ceil_div(p.n, tile_n) <= kMaxGridYZ;
}

OperandArgs operand(const void* ptr, int64_t ld, int64_t batch_stride, Dtype d) {
  const int64_t size = int64_t(dtype_size(d));
  const bool vec = is_aligned(ptr, kVectorBytes) && (ld * size) % kVectorBytes == 0 &&
                   (batch_stride * size) % kVectorBytes == 0;
  return OperandArgs{ptr, ld, batch_stride, vec};
}

// Checks the parts of the contract every variant shares; false when there is nothing to do.
bool check_problem(const char* fn, const GemmProblem& p, const GemmEpilogue& e) {
  NN_CHECK(p.m >= 0 && p.n >= 0 && p.k >= 0 && p.batch >= 0, ValueError, fn,
           ": sizes must be non-negative, got M ", p.m, ", N ", p.n, ", K ", p.k, ", batch ",
           p.batch);
  NN_CHECK(out_dtype_ok(p, e), DtypeError, fn, ": output dtype ", dtype_name(e.out_dtype),
           " must be the input dtype ", dtype_name(p.dtype), " or float32");
  if (p.m == 0 || p.n == 0 || p.batch == 0) return false;
  NN_CHECK(p.d != nullptr, ValueError, fn, ": output pointer is null");
  NN_CHECK(p.k == 0 || (p.a != nullptr && p.b != nullptr), ValueError, fn,
           ": operand pointer is null");
  const GemmPrologue& pro = p.a_prologue;
  NN_CHECK(pro.act == Activation::None || p.k == 0 || pro.saved != nullptr, ValueError, fn,
           ": the prologue's activation ", activation_name(pro.act),
           " needs the saved tensor, got a null pointer");
  NN_CHECK(pro.a_row_sum == nullptr || p.batch == 1, ValueError, fn,
           ": row sums of A need batch 1, got batch ", p.batch);
  return true;
}

GemmArgs make_args(const GemmProblem& p, const GemmEpilogue& e) {
  GemmArgs args;
  args.a = operand(p.a, p.lda, p.batch_stride_a, p.dtype);
  args.b = operand(p.b, p.ldb, p.batch_stride_b, p.dtype);
  const GemmPrologue& pro = p.a_prologue;
  const bool transform = pro.act != Activation::None && p.k > 0;
  // S is staged like A: 16-byte copies only when both qualify.
  if (transform) args.a.vec = args.a.vec && is_aligned(pro.saved, kVectorBytes);
  args.pro = PrologueArgs{transform ? pro.saved : nullptr, pro.a_row_sum,
                          transform ? pro.act : Activation::None};
  args.m = p.m;
  args.n = p.n;
  args.k = p.k;
  args.epi = EpilogueArgs{p.d,        e.bias,
                          e.residual, e.pre,
                          p.ldd,      p.batch_stride_d,
                          e.act,      e.out_dtype == Dtype::Float32 && p.dtype != Dtype::Float32};
  return args;
}

template <class T, bool kAK, bool kBK>
void launch_tc(const GemmArgs& args, int64_t batch, cudaStream_t stream) {
  const size_t bytes = tc_smem_bytes<T, kAK, kBK>(args.pro.act != Activation::None);
  auto* kernel = &gemm_tc_kernel<T, kAK, kBK>;
  // Above 48 KiB a block must opt in; the attribute is per device, so set it on every call.
  NN_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  const dim3 grid(static_cast<unsigned>(ceil_div(args.m, kTileM)),
                  static_cast<unsigned>(ceil_div(args.n, kTileN)), static_cast<unsigned>(batch));
  kernel<<<grid, kTcThreads, bytes, stream>>>(args);
  NN_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_tc_layout(const GemmProblem& p, const GemmArgs& args, cudaStream_t stream) {
  // K-contiguous A is row-major A; K-contiguous B is B stored [N, K] (trans_b).
  const bool ak = !p.trans_a, bk = p.trans_b;
  if (ak && bk)
    launch_tc<T, true, true>(args, p.batch, stream);
  else if (ak)
    launch_tc<T, true, false>(args, p.batch, stream);
  else if (bk)
    launch_tc<T, false, true>(args, p.batch, stream);
  else
    launch_tc<T, false, false>(args, p.batch, stream);
}

}  // namespace

bool gemm_tensor_core_supports(const GemmProblem& p, const GemmEpilogue& e) {
  const bool dtype_ok = p.dtype == Dtype::BFloat16 || p.dtype == Dtype::Float16 ||
                        (p.dtype == Dtype::Float32 && allow_tf32());
  if (!dtype_ok || !out_dtype_ok(p, e) || !grid_ok(p, kTileN)) return false;
  // cp.async, ldmatrix and bf16/TF32 mma.sync need compute capability 8.0.
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    (void)cudaGetLastError();  // a failed query is an answer here, not a sticky error
    return false;
  }
  return major >= 8;
}

void gemm_tensor_core(const GemmProblem& p, const GemmEpilogue& e, cudaStream_t stream) {
  const char* fn = "gemm_tensor_core";
  NN_CHECK(gemm_tensor_core_supports(p, e), ValueError, fn, ": unsupported problem (dtype ",
           dtype_name(p.dtype), ", output ", dtype_name(e.out_dtype), ", N ", p.n, ", batch ",
           p.batch,
           "); expected bfloat16, float16 or float32 with allow_tf32(), output the "
           "input dtype or float32, on a device of compute capability 8.0 or newer");
  if (!check_problem(fn, p, e)) return;
  const GemmArgs args = make_args(p, e);
  switch (p.dtype) {
    case Dtype::BFloat16:
      launch_tc_layout<bfloat16>(p, args, stream);
      break;
    case Dtype::Float16:
      launch_tc_layout<float16>(p, args, stream);
      break;
    default:
      launch_tc_layout<float>(p, args, stream);
      break;
  }
}

bool gemm_simt_supports(const GemmProblem& p, const GemmEpilogue& e) {
  return (p.dtype == Dtype::Float32 || p.dtype == Dtype::Float64) && out_dtype_ok(p, e) &&
         grid_ok(p, kSimtTile);
}

void gemm_simt(const GemmProblem& p, const GemmEpilogue& e, cudaStream_t stream) {
  const char* fn = "gemm_simt";
  NN_CHECK(gemm_simt_supports(p, e), ValueError, fn, ": unsupported problem (dtype ",
           dtype_name(p.dtype), ", output ", dtype_name(e.out_dtype), ", N ", p.n, ", batch ",
           p.batch, "); expected float32 or float64, output the input dtype or float32");
  if (!check_problem(fn, p, e)) return;
  const GemmArgs args = make_args(p, e);
  const dim3 grid(static_cast<unsigned>(ceil_div(p.m, kSimtTile)),
                  static_cast<unsigned>(ceil_div(p.n, kSimtTile)), static_cast<unsigned>(p.batch));
  const SimtLayout lay{p.trans_a, p.trans_b};
  if (p.dtype == Dtype::Float64)
    gemm_simt_kernel<double><<<grid, kSimtThreads, 0, stream>>>(args, lay);
  else
    gemm_simt_kernel<float><<<grid, kSimtThreads, 0, stream>>>(args, lay);
  NN_CUDA_CHECK_LAUNCH();
}

}  // namespace nn::cuda
