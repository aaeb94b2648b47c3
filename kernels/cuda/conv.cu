// Our implicit-GEMM convolution (contract in kernels/cuda/conv.cuh). Each pass is a GEMM whose
// operand tiles are gathered from the NCHW tensors while they are staged, so no im2col buffer
// ever exists in device memory (g = group = blockIdx.z, Cg = C / groups, Og = O / groups):
//   forward          D[M = N Ho Wo, Og]      = A[i = (n, oh, ow), k = (c, r, s)] x B[k, j = o]
//                    A = x at (oh sh - ph + r dh, ow sw - pw + s dw) or 0, B = w (contiguous in k)
//   backward data    D[M = N H W, Cg]        = A[i = (n, h, w), k = (o, r, s)] x B[k, j = c]
//                    A = grad_y at ((h + ph - r dh) / sh, ...) where that divides exactly
//   backward weight  D[M = Og, Cg kH kW]     = A[i = o, k = (n, oh, ow)] x B[k, j = (c, r, s)]
// Backward data skips the taps that never contribute under a stride: rows are split into sh x sw
// phases (h mod sh, w mod sw), and each phase's K lists only its taps r with
// (phase + ph - r dh) divisible by sh (blockIdx.z = group x phase), so a stride-2 layer does a
// quarter of the multiply-adds of a masked gather. Backward weight's K (N Ho Wo) is long and its
// M x N small, so K is split over blockIdx.z too (float partials in a workspace from the caching
// allocator, summed in fixed order by a second kernel: deterministic); db is the row sums of the
// staged grad_y tiles, taken by the blocks of the first N tile.
//
// Decomposition: a block of 256 threads owns a 128 x 64 tile of D and walks K in slices of 32
// (2-byte types), 16 (float) or 8 (double) elements. Each thread gathers its share of the next
// slice into registers while the current one is multiplied out of shared memory (two buffers, one
// barrier per slice); threads walk the operand's contiguous dimension, so for stride 1 the x
// gathers coalesce along ow. Tiles are K-contiguous with rows padded so fragment reads are free of
// bank conflicts. Tensor cores: 8 warps as 4 x 2, each a 32 x 32 warp tile of 2 x 4 mma tiles.
// SIMT: a thread owns rows ty + 16 i (i < 8) and columns tx + 16 j (j < 4).
#include <algorithm>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/conv.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/ops.h"

namespace nn::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTileM = 128, kTileN = 64;
constexpr int kWarpsN = 2;                         // tensor cores: 4 x 2 warps of 32 x 32
constexpr int kFragsM = 2, kFragsN = 4;            // mma tiles of 16 x 8 per warp
constexpr int kSimtSide = 16;                      // SIMT: 16 x 16 threads
constexpr int kSimtCols = kTileN / kSimtSide;      // 4 columns per thread
constexpr int kAccs = kTileM * kTileN / kThreads;  // 32 outputs per thread either way
constexpr int kMaxPhaseStride = 4;                 // backward data: phases per axis
constexpr int kMaxPhaseTaps = 16;                  // taps listed per phase
constexpr int64_t kMaxGridZ = 65535;
constexpr int kMinSplitTiles = 8;  // backward weight: K slices per split at least
static_assert(kAccs == kFragsM * kFragsN * 4, "a warp tile must cover the block tile");

// Shared-memory tiles and the thread -> element maps of one dtype / path.
template <class T, bool kTC>
struct Tiles {
  static constexpr int kK = sizeof(T) == 2 ? 32 : sizeof(T) == 4 ? 16 : 8;
  // 2-byte and TF32 rows of 20 words put the 8 rows of a fragment in distinct banks; SIMT rows
  // of an odd length in elements do the same for its column reads.
  static constexpr int kStride = kK + (kTC ? (sizeof(T) == 2 ? 8 : 4) : 1);
  static constexpr int kA = kTileM * kStride, kB = kTileN * kStride;
  static constexpr int kARegs = kTileM * kK / kThreads, kBRegs = kTileN * kK / kThreads;
  static constexpr int kRowStep = kThreads / kK;  // rows between a thread's elements (K-fast)
  static_assert(kThreads % kTileM == 0 && kThreads % kK == 0, "tiles must split evenly");

  // K-fast map: consecutive threads take consecutive k of one row.
  __device__ static NN_INLINE int kfast_k() { return int(threadIdx.x) % kK; }
  __device__ static NN_INLINE int kfast_row(int q) { return int(threadIdx.x) / kK + q * kRowStep; }
  // Row-fast map (A only): consecutive threads take consecutive rows at one k.
  __device__ static NN_INLINE int rowfast_row() { return int(threadIdx.x) % kTileM; }
  __device__ static NN_INLINE int rowfast_k(int q) {
    return int(threadIdx.x) / kTileM + q * (kThreads / kTileM);
  }
};

// Geometry of one convolution as the kernels read it.
struct Geo {
  int64_t n, c, h, w, o, ho, wo, cg, og;
  int kh, kw, sh, sw, ph, pw, dh, dw;
};

Geo geometry(const Tensor& x, const Tensor& w, const Shape& y, const Conv2dOptions& opt) {
  Geo g;
  g.n = x.size(0);
  g.c = x.size(1);
  g.h = x.size(2);
  g.w = x.size(3);
  g.o = w.size(0);
  g.ho = y[2];
  g.wo = y[3];
  g.cg = g.c / opt.groups;
  g.og = g.o / opt.groups;
  g.kh = int(w.size(2));
  g.kw = int(w.size(3));
  g.sh = int(opt.stride[0]);
  g.sw = int(opt.stride[1]);
  g.ph = int(opt.padding[0]);
  g.pw = int(opt.padding[1]);
  g.dh = int(opt.dilation[0]);
  g.dw = int(opt.dilation[1]);
  return g;
}

__device__ NN_INLINE bool inside(int64_t v, int64_t n) { return v >= 0 && v < n; }

// ---- the kernel skeleton -------------------------------------------------------------------

template <class TL, bool kARowFast, class T>
__device__ NN_INLINE void stage(T* sa, T* sb, const T (&ra)[TL::kARegs],
                                const T (&rb)[TL::kBRegs]) {
#pragma unroll
  for (int q = 0; q < TL::kARegs; ++q) {
    const int row = kARowFast ? TL::rowfast_row() : TL::kfast_row(q);
    const int k = kARowFast ? TL::rowfast_k(q) : TL::kfast_k();
    sa[row * TL::kStride + k] = ra[q];
  }
#pragma unroll
  for (int q = 0; q < TL::kBRegs; ++q) sb[TL::kfast_row(q) * TL::kStride + TL::kfast_k()] = rb[q];
}

template <class T, bool kTC, class TL, class AccT>
__device__ NN_INLINE void multiply(const T* sa, const T* sb, AccT (&acc)[kAccs]) {
  if constexpr (kTC) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
    const int wm = (warp / kWarpsN) * 32, wn = (warp % kWarpsN) * 32;
#pragma unroll
    for (int kk = 0; kk < TL::kK; kk += tc::kMmaK<T>) {
      uint32_t fa[kFragsM][4], fb[kFragsN][2];
#pragma unroll
      for (int i = 0; i < kFragsM; ++i)
        tc::load_a<T>(fa[i], sa, TL::kStride, wm + 16 * i, kk, lane);
#pragma unroll
      for (int j = 0; j < kFragsN; ++j) tc::load_b<T>(fb[j], sb, TL::kStride, wn + 8 * j, kk, lane);
#pragma unroll
      for (int i = 0; i < kFragsM; ++i)
#pragma unroll
        for (int j = 0; j < kFragsN; ++j)
          tc::mma<T>(*reinterpret_cast<float(*)[4]>(&acc[(i * kFragsN + j) * 4]), fa[i], fb[j]);
    }
#else
    __trap();  // the host never launches the tensor-core kernel below compute capability 8.0
#endif
  } else {
    const int tx = threadIdx.x % kSimtSide, ty = threadIdx.x / kSimtSide;
#pragma unroll
    for (int k = 0; k < TL::kK; ++k) {
      AccT av[kAccs / kSimtCols], bv[kSimtCols];
#pragma unroll
      for (int i = 0; i < kAccs / kSimtCols; ++i)
        av[i] = AccT(sa[(ty + kSimtSide * i) * TL::kStride + k]);
#pragma unroll
      for (int j = 0; j < kSimtCols; ++j) bv[j] = AccT(sb[(tx + kSimtSide * j) * TL::kStride + k]);
#pragma unroll
      for (int i = 0; i < kAccs / kSimtCols; ++i)
#pragma unroll
        for (int j = 0; j < kSimtCols; ++j)
          acc[i * kSimtCols + j] = av[i] * bv[j] + acc[i * kSimtCols + j];
    }
  }
}

// Block-tile position of accumulator idx of the calling thread.
template <bool kTC>
__device__ NN_INLINE void acc_position(int idx, int& row, int& col) {
  if constexpr (kTC) {
    const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
    const int i = idx / (kFragsN * 4), j = (idx / 4) % kFragsN, h = idx % 4;
    row = (warp / kWarpsN) * 32 + i * 16 + (lane >> 2) + (h >> 1) * 8;
    col = (warp % kWarpsN) * 32 + j * 8 + 2 * (lane & 3) + (h & 1);
  } else {
    row = int(threadIdx.x) / kSimtSide + kSimtSide * (idx / kSimtCols);
    col = int(threadIdx.x) % kSimtSide + kSimtSide * (idx % kSimtCols);
  }
}

// One pass provides: Shared (block scratch), Thread (per-thread state), kARowFast, kRowSums,
// begin() (false: this block has no work), load() of slice kt into registers, store() of one
// output and store_row_sum().
template <class T, bool kTC, class Pass>
__global__ void __launch_bounds__(kThreads) igemm_kernel(const Pass p) {
  using TL = typename Pass::TL;
  using AccT = typename Pass::AccT;
  __shared__ __align__(16) T s_a[2][TL::kA];
  __shared__ __align__(16) T s_b[2][TL::kB];
  __shared__ typename Pass::Shared scratch;
  typename Pass::Thread th;
  if (!p.begin(th, scratch)) return;  // uniform over the block
  __syncthreads();                    // scratch is ready
  T ra[TL::kARegs], rb[TL::kBRegs];
  AccT acc[kAccs];
#pragma unroll
  for (int i = 0; i < kAccs; ++i) acc[i] = AccT(0);
  AccT row_sum = AccT(0);
  const bool sums = Pass::kRowSums && th.row_sums && threadIdx.x < kTileM;
  if (th.kt_begin < th.kt_end) {
    p.load(th, scratch, th.kt_begin, ra, rb);
    stage<TL, Pass::kARowFast>(s_a[0], s_b[0], ra, rb);
  }
  __syncthreads();
  for (int64_t kt = th.kt_begin; kt < th.kt_end; ++kt) {
    const int buf = int((kt - th.kt_begin) & 1);
    const bool more = kt + 1 < th.kt_end;
    if (more) p.load(th, scratch, kt + 1, ra, rb);  // global latency hides behind the maths
    if (sums) {
#pragma unroll
      for (int k = 0; k < TL::kK; ++k) row_sum += AccT(s_a[buf][threadIdx.x * TL::kStride + k]);
    }
    multiply<T, kTC, TL>(s_a[buf], s_b[buf], acc);
    if (more) stage<TL, Pass::kARowFast>(s_a[buf ^ 1], s_b[buf ^ 1], ra, rb);
    __syncthreads();  // the staged slice is visible; the one just read may be overwritten
  }
#pragma unroll
  for (int idx = 0; idx < kAccs; ++idx) {
    int row, col;
    acc_position<kTC>(idx, row, col);
    p.store(th, row, col, acc[idx]);
  }
  if (sums) p.store_row_sum(th, int(threadIdx.x), row_sum);
}

template <class T, bool kTC>
using AccOf = std::conditional_t<kTC, float, acc_t<T>>;

// ---- forward ---------------------------------------------------------------------------------

template <class T, bool kTC>
struct FwdPass {
  using TL = Tiles<T, kTC>;
  using AccT = AccOf<T, kTC>;
  static constexpr bool kARowFast = true, kRowSums = false;
  struct Shared {
    int unused;
  };
  struct Thread {
    int64_t m0, n0, grp, kt_begin, kt_end;
    const T* xb;  // x of this thread's row's image and the group's first channel
    int64_t ih0, iw0;
    bool valid, row_sums;
  };
  const T* x;
  const T* w;
  const T* b;
  T* y;
  Geo g;
  int64_t m;  // N Ho Wo
  int kg;     // Cg kH kW

  __device__ bool begin(Thread& th, Shared&) const {
    th.m0 = int64_t(blockIdx.x) * kTileM;
    th.n0 = int64_t(blockIdx.y) * kTileN;
    th.grp = blockIdx.z;
    const int64_t i = th.m0 + TL::rowfast_row();
    th.valid = i < m;
    const int64_t hw = g.ho * g.wo, n = th.valid ? i / hw : 0, pix = th.valid ? i % hw : 0;
    th.xb = x + (n * g.c + th.grp * g.cg) * g.h * g.w;
    th.ih0 = (pix / g.wo) * g.sh - g.ph;
    th.iw0 = (pix % g.wo) * g.sw - g.pw;
    th.kt_begin = 0;
    th.kt_end = ceil_div(kg, TL::kK);
    th.row_sums = false;
    return true;
  }
  __device__ void load(const Thread& th, const Shared&, int64_t kt, T (&ra)[TL::kARegs],
                       T (&rb)[TL::kBRegs]) const {
    const int k0 = int(kt) * TL::kK, khw = g.kh * g.kw;
#pragma unroll
    for (int q = 0; q < TL::kARegs; ++q) {
      const int k = k0 + TL::rowfast_k(q);
      T v = T(0.0f);
      if (th.valid && k < kg) {
        const int c = k / khw, rs = k - c * khw, r = rs / g.kw, s = rs - r * g.kw;
        const int64_t ih = th.ih0 + r * g.dh, iw = th.iw0 + s * g.dw;
        if (inside(ih, g.h) && inside(iw, g.w)) v = th.xb[(c * g.h + ih) * g.w + iw];
      }
      ra[q] = v;
    }
    const int kb = k0 + TL::kfast_k();
#pragma unroll
    for (int q = 0; q < TL::kBRegs; ++q) {
      const int64_t j = th.n0 + TL::kfast_row(q);
      rb[q] = (j < g.og && kb < kg) ? w[(th.grp * g.og + j) * kg + kb] : T(0.0f);
    }
  }
  __device__ void store(const Thread& th, int row, int col, AccT v) const {
    const int64_t i = th.m0 + row, j = th.n0 + col;
    if (i >= m || j >= g.og) return;
    const int64_t hw = g.ho * g.wo, n = i / hw, pix = i % hw, o = th.grp * g.og + j;
    if (b) v += AccT(b[o]);
    y[(n * g.o + o) * hw + pix] = cast<T>(v);
  }
  __device__ void store_row_sum(const Thread&, int, AccT) const {}
};

// ---- backward data ---------------------------------------------------------------------------

// The taps of one axis by output phase: phase a (rows h = a + phases * hh) uses taps
// tap[a][0 .. count[a]) (listed only when `listed`; otherwise every tap, checked per element).
struct AxisPhases {
  int phases;
  bool listed;
  int count[kMaxPhaseStride];
  int8_t tap[kMaxPhaseStride][kMaxPhaseTaps];
};

AxisPhases axis_phases(int stride, int pad, int dil, int kernel) {
  AxisPhases ax{};
  ax.listed = stride <= kMaxPhaseStride && kernel <= kMaxPhaseTaps;
  ax.phases = ax.listed ? stride : 1;
  if (!ax.listed) {
    ax.count[0] = kernel;
    return ax;
  }
  for (int a = 0; a < stride; ++a) {
    ax.count[a] = 0;
    for (int r = 0; r < kernel; ++r) {
      const int t = a + pad - r * dil;  // h + pad - r dil must be a multiple of the stride
      if (((t % stride) + stride) % stride == 0) ax.tap[a][ax.count[a]++] = int8_t(r);
    }
  }
  return ax;
}

template <class T, bool kTC>
struct BwdDataPass {
  using TL = Tiles<T, kTC>;
  using AccT = AccOf<T, kTC>;
  static constexpr bool kARowFast = true, kRowSums = false;
  struct Shared {
    int unused;
  };
  struct Thread {
    int64_t m0, n0, grp, kt_begin, kt_end, mp;
    int pa, pb, nr, ns, kp;
    const T* gyb;    // grad_y of this thread's row's image and the group's first channel
    int64_t hh, ww;  // this thread's dx position (h + ph, w + pw)
    bool valid, row_sums;
  };
  const T* gy;
  const T* w;
  T* dx;
  Geo g;
  AxisPhases ah, aw;

  __device__ int64_t phase_rows(int a, const AxisPhases& ax, int64_t extent) const {
    return ax.phases == 1 ? extent : (extent - a + ax.phases - 1) / ax.phases;
  }
  __device__ bool begin(Thread& th, Shared&) const {
    const int phases = ah.phases * aw.phases;
    th.grp = blockIdx.z / phases;
    const int phase = int(blockIdx.z % phases);
    th.pa = phase / aw.phases;
    th.pb = phase % aw.phases;
    const int64_t hp = phase_rows(th.pa, ah, g.h), wp = phase_rows(th.pb, aw, g.w);
    th.mp = g.n * hp * wp;
    th.m0 = int64_t(blockIdx.x) * kTileM;
    if (th.m0 >= th.mp) return false;  // phases have fewer rows than phase (0, 0)
    th.n0 = int64_t(blockIdx.y) * kTileN;
    th.nr = ah.count[th.pa];
    th.ns = aw.count[th.pb];
    th.kp = int(g.og) * th.nr * th.ns;
    th.kt_begin = 0;
    th.kt_end = ceil_div(th.kp, TL::kK);
    const int64_t i = th.m0 + TL::rowfast_row();
    th.valid = i < th.mp;
    const int64_t n = th.valid ? i / (hp * wp) : 0, pix = th.valid ? i % (hp * wp) : 0;
    th.gyb = gy + (n * g.o + th.grp * g.og) * g.ho * g.wo;
    th.hh = th.pa + (pix / wp) * ah.phases + g.ph;
    th.ww = th.pb + (pix % wp) * aw.phases + g.pw;
    th.row_sums = false;
    return true;
  }
  // Tap index -> (o, r, s) of this thread's phase.
  __device__ NN_INLINE void tap(const Thread& th, int k, int& o, int& r, int& s) const {
    const int per_o = th.nr * th.ns;
    o = k / per_o;
    const int rem = k - o * per_o, ri = rem / th.ns, si = rem - ri * th.ns;
    r = ah.listed ? ah.tap[th.pa][ri] : ri;
    s = aw.listed ? aw.tap[th.pb][si] : si;
  }
  __device__ void load(const Thread& th, const Shared&, int64_t kt, T (&ra)[TL::kARegs],
                       T (&rb)[TL::kBRegs]) const {
    const int k0 = int(kt) * TL::kK;
#pragma unroll
    for (int q = 0; q < TL::kARegs; ++q) {
      const int k = k0 + TL::rowfast_k(q);
      T v = T(0.0f);
      if (th.valid && k < th.kp) {
        int o, r, s;
        tap(th, k, o, r, s);
        const int64_t th_ = th.hh - int64_t(r) * g.dh, tw = th.ww - int64_t(s) * g.dw;
        if (th_ >= 0 && tw >= 0 && th_ % g.sh == 0 && tw % g.sw == 0) {
          const int64_t oh = th_ / g.sh, ow = tw / g.sw;
          if (oh < g.ho && ow < g.wo) v = th.gyb[(o * g.ho + oh) * g.wo + ow];
        }
      }
      ra[q] = v;
    }
    const int kb = k0 + TL::kfast_k();
    int o = 0, r = 0, s = 0;
    if (kb < th.kp) tap(th, kb, o, r, s);
    const int64_t khw = int64_t(g.kh) * g.kw;
#pragma unroll
    for (int q = 0; q < TL::kBRegs; ++q) {
      const int64_t j = th.n0 + TL::kfast_row(q);
      rb[q] = (j < g.cg && kb < th.kp) ? w[((th.grp * g.og + o) * g.cg + j) * khw + r * g.kw + s]
                                       : T(0.0f);
    }
  }
  __device__ void store(const Thread& th, int row, int col, AccT v) const {
    const int64_t i = th.m0 + row, j = th.n0 + col;
    if (i >= th.mp || j >= g.cg) return;
    const int64_t hp = phase_rows(th.pa, ah, g.h), wp = phase_rows(th.pb, aw, g.w);
    const int64_t n = i / (hp * wp), pix = i % (hp * wp);
    const int64_t h = th.pa + (pix / wp) * ah.phases, x = th.pb + (pix % wp) * aw.phases;
    dx[((n * g.c + th.grp * g.cg + j) * g.h + h) * g.w + x] = cast<T>(v);
  }
  __device__ void store_row_sum(const Thread&, int, AccT) const {}
};

// ---- backward weight -------------------------------------------------------------------------

template <class T, bool kTC>
struct BwdWeightPass {
  using TL = Tiles<T, kTC>;
  using AccT = AccOf<T, kTC>;
  static constexpr bool kARowFast = false, kRowSums = true;
  struct Shared {  // the block's 64 columns j = (c, r, s)
    int c[kTileN], roff[kTileN], soff[kTileN];
  };
  struct Thread {
    int64_t m0, n0, grp, split, kt_begin, kt_end;
    bool row_sums;
  };
  const T* gy;
  const T* x;
  T* dw;          // written when splits == 1
  T* db;          // [O] or null, written when splits == 1
  AccT* part;     // [splits, O, kg] partial sums when splits > 1
  AccT* part_db;  // [splits, O] partial bias sums when splits > 1 and db is wanted
  Geo g;
  int kg;  // Cg kH kW
  int splits;
  int64_t k_total, tiles_per_split;

  __device__ bool begin(Thread& th, Shared& sh) const {
    th.m0 = int64_t(blockIdx.x) * kTileM;
    th.n0 = int64_t(blockIdx.y) * kTileN;
    th.grp = blockIdx.z / splits;
    th.split = blockIdx.z % splits;
    th.kt_begin = th.split * tiles_per_split;
    const int64_t all = ceil_div(k_total, TL::kK), end = th.kt_begin + tiles_per_split;
    th.kt_end = end < all ? end : all;
    th.row_sums = blockIdx.y == 0 && (db != nullptr || part_db != nullptr);
    if (threadIdx.x < kTileN) {
      const int j = int(th.n0) + int(threadIdx.x), khw = g.kh * g.kw;
      const int c = j / khw, rs = j - c * khw, r = rs / g.kw, s = rs - r * g.kw;
      sh.c[threadIdx.x] = j < kg ? c : -1;
      sh.roff[threadIdx.x] = r * g.dh - g.ph;
      sh.soff[threadIdx.x] = s * g.dw - g.pw;
    }
    return true;
  }
  __device__ void load(const Thread& th, const Shared& sh, int64_t kt, T (&ra)[TL::kARegs],
                       T (&rb)[TL::kBRegs]) const {
    const int64_t k = kt * TL::kK + TL::kfast_k(), hw = g.ho * g.wo;
    const bool kv = k < k_total;
    const int64_t n = kv ? k / hw : 0, pix = kv ? k % hw : 0;
    const int64_t oh = pix / g.wo, ow = pix % g.wo;
    const T* gyb = gy + (n * g.o + th.grp * g.og) * hw + pix;
#pragma unroll
    for (int q = 0; q < TL::kARegs; ++q) {
      const int64_t o = th.m0 + TL::kfast_row(q);
      ra[q] = (kv && o < g.og) ? gyb[o * hw] : T(0.0f);
    }
    const T* xb = x + (n * g.c + th.grp * g.cg) * g.h * g.w;
#pragma unroll
    for (int q = 0; q < TL::kBRegs; ++q) {
      const int col = TL::kfast_row(q), c = sh.c[col];
      const int64_t ih = oh * g.sh + sh.roff[col], iw = ow * g.sw + sh.soff[col];
      rb[q] = (kv && c >= 0 && inside(ih, g.h) && inside(iw, g.w))
                  ? xb[(int64_t(c) * g.h + ih) * g.w + iw]
                  : T(0.0f);
    }
  }
  __device__ void store(const Thread& th, int row, int col, AccT v) const {
    const int64_t o = th.m0 + row, j = th.n0 + col;
    if (o >= g.og || j >= kg) return;
    const int64_t at = (th.grp * g.og + o) * kg + j;
    if (splits == 1)
      dw[at] = cast<T>(v);
    else
      part[th.split * g.o * kg + at] = v;
  }
  __device__ void store_row_sum(const Thread& th, int row, AccT v) const {
    const int64_t o = th.m0 + row;
    if (o >= g.og) return;
    if (splits == 1)
      db[th.grp * g.og + o] = cast<T>(v);
    else
      part_db[th.split * g.o + th.grp * g.og + o] = v;
  }
};

// out[e] = sum over s < splits of part[s * count + e], in order.
template <class T, class AccT>
__global__ void sum_splits_kernel(T* out, const AccT* part, int64_t count, int splits) {
  for (int64_t e = global_thread(); e < count; e += grid_threads()) {
    AccT s = AccT(0);
    for (int k = 0; k < splits; ++k) s += part[k * count + e];
    out[e] = cast<T>(s);
  }
}

// ---- bias helpers ----------------------------------------------------------------------------

template <class T>
__global__ void add_bias_kernel(T* y, const T* b, int64_t total, int64_t channels, int64_t inner) {
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t o = (e / inner) % channels;
    y[e] = cast<T>(acc_t<T>(y[e]) + acc_t<T>(b[o]));
  }
}

// One block per channel: sums grad_y[n, o, :] over n in fixed order.
template <class T>
__global__ void __launch_bounds__(kBlockSize)
    bias_grad_kernel(T* db, const T* gy, int64_t n, int64_t channels, int64_t inner) {
  using A = acc_t<T>;
  const int64_t o = blockIdx.x;
  A s = A(0);
  for (int64_t e = threadIdx.x; e < n * inner; e += kBlockSize)
    s += A(gy[((e / inner) * channels + o) * inner + e % inner]);
  s = group_allreduce<kBlockSize>(s, [](A a, A b) { return a + b; });
  if (threadIdx.x == 0) db[o] = cast<T>(s);
}

// ---- host side -------------------------------------------------------------------------------

bool tensor_cores_usable(Dtype d, int device) {
  if (d == Dtype::Float64 || (d == Dtype::Float32 && !allow_tf32())) return false;
  int major = 0;
  NN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  if (major >= 8) return true;
  NN_CHECK(d == Dtype::Float32, DtypeError, "conv2d (ours): ", dtype_name(d),
           " needs a GPU of compute capability 8.0 or newer, this one is ", major, ".x");
  return false;
}

void check_grid(const char* fn, int64_t x, int64_t y, int64_t z) {
  NN_CHECK(x <= INT32_MAX && y <= kMaxGridZ && z <= kMaxGridZ, ValueError, fn,
           ": problem too large for one launch (grid ", x, " x ", y, " x ", z, ")");
}

template <class T, bool kTC, class Pass>
void launch(const Pass& p, dim3 grid, cudaStream_t stream) {
  igemm_kernel<T, kTC, Pass><<<grid, kThreads, 0, stream>>>(p);
  NN_CUDA_CHECK_LAUNCH();
}

// Calls f.template operator()<T, kTC>() for the tensor's dtype and path.
template <class F>
void dispatch(Dtype d, bool tc, F&& f) {
  switch (d) {
    case Dtype::BFloat16:
      f.template operator()<bfloat16, true>();
      break;
    case Dtype::Float16:
      f.template operator()<float16, true>();
      break;
    case Dtype::Float32:
      if (tc)
        f.template operator()<float, true>();
      else
        f.template operator()<float, false>();
      break;
    case Dtype::Float64:
      f.template operator()<double, false>();
      break;
    default:
      NN_THROW(DtypeError, "conv2d (ours): unsupported dtype ", dtype_name(d));
  }
}

int splits_for(int64_t blocks, int64_t k_tiles, int64_t groups, int device) {
  int sms = 0;
  NN_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t want = ceil_div(2 * int64_t(sms), std::max<int64_t>(blocks, 1));
  const int64_t most = std::max<int64_t>(1, k_tiles / kMinSplitTiles);
  return int(std::clamp<int64_t>(want, 1, std::min(most, kMaxGridZ / groups)));
}

}  // namespace

void conv2d_ours(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b,
                 const Conv2dOptions& opt) {
  if (y.numel() == 0) return;
  DeviceScope scope(y);
  const Geo g = geometry(x, w, y.shape(), opt);
  const int64_t m = g.n * g.ho * g.wo, kg = g.cg * g.kh * g.kw;
  NN_CHECK(kg < INT32_MAX / 2, ValueError, "conv2d (ours): C/groups x kH x kW = ", kg,
           " is too large");
  const dim3 grid(unsigned(ceil_div(m, kTileM)), unsigned(ceil_div(g.og, kTileN)),
                  unsigned(opt.groups));
  check_grid("conv2d (ours)", grid.x, grid.y, grid.z);
  dispatch(x.dtype(), tensor_cores_usable(x.dtype(), y.device().index), [&]<class T, bool kTC>() {
    FwdPass<T, kTC> p{static_cast<const T*>(x.data_ptr()),
                      static_cast<const T*>(w.data_ptr()),
                      b.defined() ? static_cast<const T*>(b.data_ptr()) : nullptr,
                      static_cast<T*>(y.data_ptr()),
                      g,
                      m,
                      int(kg)};
    launch<T, kTC>(p, grid, scope.stream());
  });
}

void conv2d_backward_data_ours(Tensor& dx, const Tensor& grad_y, const Tensor& w,
                               const Conv2dOptions& opt) {
  if (dx.numel() == 0) return;
  DeviceScope scope(dx);
  const Geo g = geometry(dx, w, grad_y.shape(), opt);
  const AxisPhases ah = axis_phases(g.sh, g.ph, g.dh, g.kh);
  const AxisPhases aw = axis_phases(g.sw, g.pw, g.dw, g.kw);
  NN_CHECK(g.og * g.kh * g.kw < INT32_MAX / 2, ValueError,
           "conv2d_backward_data (ours): O/groups x kH x kW is too large");
  // Phase (0, 0) has the most rows.
  const int64_t m0 = g.n * ceil_div(g.h, ah.phases) * ceil_div(g.w, aw.phases);
  const int64_t z = opt.groups * ah.phases * aw.phases;
  const dim3 grid(unsigned(ceil_div(m0, kTileM)), unsigned(ceil_div(g.cg, kTileN)), unsigned(z));
  check_grid("conv2d_backward_data (ours)", grid.x, grid.y, z);
  dispatch(dx.dtype(), tensor_cores_usable(dx.dtype(), dx.device().index),
           [&]<class T, bool kTC>() {
             BwdDataPass<T, kTC> p{static_cast<const T*>(grad_y.data_ptr()),
                                   static_cast<const T*>(w.data_ptr()),
                                   static_cast<T*>(dx.data_ptr()),
                                   g,
                                   ah,
                                   aw};
             launch<T, kTC>(p, grid, scope.stream());
           });
}

void conv2d_backward_weight_ours(Tensor& dw, Tensor& db, const Tensor& grad_y, const Tensor& x,
                                 const Conv2dOptions& opt) {
  if (dw.numel() == 0) return;
  DeviceScope scope(dw);
  const int device = dw.device().index;
  const Geo g = geometry(x, dw, grad_y.shape(), opt);
  const int64_t kg = g.cg * g.kh * g.kw, k_total = g.n * g.ho * g.wo;
  NN_CHECK(kg < INT32_MAX / 2, ValueError,
           "conv2d_backward_weight (ours): C/groups x kH x kW = ", kg, " is too large");
  const bool want_db = db.defined();
  dispatch(dw.dtype(), tensor_cores_usable(dw.dtype(), device), [&]<class T, bool kTC>() {
    using AccT = AccOf<T, kTC>;
    const int64_t bx = ceil_div(g.og, kTileM), by = ceil_div(kg, kTileN);
    const int64_t k_tiles = ceil_div(k_total, Tiles<T, kTC>::kK);
    const int splits = splits_for(bx * by * opt.groups, k_tiles, opt.groups, device);
    const int64_t per_split = ceil_div(k_tiles, splits);
    const dim3 grid(unsigned(bx), unsigned(by), unsigned(opt.groups * splits));
    check_grid("conv2d_backward_weight (ours)", bx, by, grid.z);
    // Partial sums live in a workspace from the caching allocator, released (stream-ordered)
    // when these tensors go out of scope after the launches are enqueued.
    const TensorOptions ws_opt{dtype_of<AccT>, dw.device()};
    Tensor part, part_db;
    if (splits > 1) {
      part = empty({splits, g.o * kg}, ws_opt);
      if (want_db) part_db = empty({splits, g.o}, ws_opt);
    }
    BwdWeightPass<T, kTC> p{
        static_cast<const T*>(grad_y.data_ptr()),
        static_cast<const T*>(x.data_ptr()),
        static_cast<T*>(dw.data_ptr()),
        want_db ? static_cast<T*>(db.data_ptr()) : nullptr,
        splits > 1 ? static_cast<AccT*>(part.data_ptr()) : nullptr,
        (splits > 1 && want_db) ? static_cast<AccT*>(part_db.data_ptr()) : nullptr,
        g,
        int(kg),
        splits,
        k_total,
        per_split};
    if (splits > 1) p.db = nullptr;  // the bias sums go to part_db first
    launch<T, kTC>(p, grid, scope.stream());
    if (splits > 1) {
      const int64_t count = g.o * kg;
      sum_splits_kernel<<<grid_for(count, kBlockSize), kBlockSize, 0, scope.stream()>>>(
          static_cast<T*>(dw.data_ptr()), static_cast<const AccT*>(part.data_ptr()), count, splits);
      NN_CUDA_CHECK_LAUNCH();
      if (want_db) {
        sum_splits_kernel<<<grid_for(g.o, kBlockSize), kBlockSize, 0, scope.stream()>>>(
            static_cast<T*>(db.data_ptr()), static_cast<const AccT*>(part_db.data_ptr()), g.o,
            splits);
        NN_CUDA_CHECK_LAUNCH();
      }
    }
  });
  // O x kg == 0 cannot happen (validated shapes), but an empty batch leaves K = 0: the kernel
  // then writes zeros, which is the right gradient.
}

void conv_add_bias(Tensor& y, const Tensor& b) {
  if (y.numel() == 0) return;
  DeviceScope scope(y);
  const int64_t channels = y.size(1), inner = y.numel() / (y.size(0) * channels);
  visit_floating(y.dtype(), "conv2d bias", [&]<class T>() {
    add_bias_kernel<<<grid_for(y.numel(), kBlockSize), kBlockSize, 0, scope.stream()>>>(
        static_cast<T*>(y.data_ptr()), static_cast<const T*>(b.data_ptr()), y.numel(), channels,
        inner);
    NN_CUDA_CHECK_LAUNCH();
  });
}

void conv_bias_grad(Tensor& db, const Tensor& grad_y) {
  if (db.numel() == 0) return;
  DeviceScope scope(db);
  const int64_t n = grad_y.size(0), channels = grad_y.size(1);
  const int64_t inner = n == 0 ? 0 : grad_y.numel() / (n * channels);
  visit_floating(db.dtype(), "conv2d bias gradient", [&]<class T>() {
    bias_grad_kernel<<<unsigned(channels), kBlockSize, 0, scope.stream()>>>(
        static_cast<T*>(db.data_ptr()), static_cast<const T*>(grad_y.data_ptr()), n, channels,
        inner);
    NN_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace nn::cuda
