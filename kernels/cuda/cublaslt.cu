// cuBLASLt GEMMs with fused epilogues (contract in kernels/cuda/cublaslt.cuh).
//
// Row-major D [M, N] = op(A) op(B) is cuBLASLt's column-major D^T [N, M] = op(B)^T op(A)^T: the
// row-major B becomes cuBLASLt's A (rows N) and the row-major A its B (columns M), each with the
// same stored leading dimension and transpose flag, since a row-major [r, c] matrix is a
// column-major [c, r] one. A bias over the row-major columns is then cuBLASLt's bias over D's
// rows (its BIAS epilogue), and row sums of op(A) are sums over cuBLASLt's k of its B (BGRADB).
//
// A plan (matmul descriptor, three layouts, one heuristic algorithm) is built the first time a
// problem is seen by a thread and kept in that thread's map, so the descriptor's pointer
// attributes can be set per call without a lock. A problem cuBLASLt cannot run is remembered too.
#include "kernels/cuda/cublaslt.cuh"

#include <memory>
#include <type_traits>
#include <unordered_map>

#include "kernels/cuda/common.cuh"
#include "kernels/ops.h"

namespace nn::cuda {
namespace {

// The largest alignment (up to 16 bytes) a pointer has: cuBLASLt picks kernels by it.
uint32_t alignment_of(const void* p) {
  for (uint32_t a = 16; a > 1; a /= 2)
    if (is_aligned(p, a)) return a;
  return 1;
}

struct PlanKey {
  int device;
  int64_t m, n, k, lda, ldb, ldd, ld_aux;
  Dtype dtype, out_dtype;
  bool trans_a, trans_b, tf32;
  LtEpilogue epilogue;
  uint32_t align_a, align_b, align_d, align_bias, align_aux;

  bool operator==(const PlanKey& o) const {
    return device == o.device && m == o.m && n == o.n && k == o.k && lda == o.lda && ldb == o.ldb &&
           ldd == o.ldd && ld_aux == o.ld_aux && dtype == o.dtype && out_dtype == o.out_dtype &&
           trans_a == o.trans_a && trans_b == o.trans_b && tf32 == o.tf32 &&
           epilogue == o.epilogue && align_a == o.align_a && align_b == o.align_b &&
           align_d == o.align_d && align_bias == o.align_bias && align_aux == o.align_aux;
  }
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    size_t h = 1469598103934665603ull;
    auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    for (int64_t v : {k.m, k.n, k.k, k.lda, k.ldb, k.ldd, k.ld_aux}) mix(uint64_t(v));
    mix(uint64_t(k.device));
    mix(uint64_t(k.dtype) | uint64_t(k.out_dtype) << 8 | uint64_t(k.trans_a) << 16 |
        uint64_t(k.trans_b) << 17 | uint64_t(k.tf32) << 18 | uint64_t(k.epilogue) << 24);
    mix(uint64_t(k.align_a) | uint64_t(k.align_b) << 8 | uint64_t(k.align_d) << 16 |
        uint64_t(k.align_bias) << 24 | uint64_t(k.align_aux) << 32);
    return h;
  }
};

// Owns the cuBLASLt descriptors of one problem.
struct Plan {
  bool supported = false;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;  // cuBLASLt's A, B, C = D
  cublasLtMatmulAlgo_t algo{};
  bool f64 = false;  // scale type double (alpha, beta)

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    // Destruction at thread exit must not throw; a failure here only leaks a descriptor.
    if (desc) (void)cublasLtMatmulDescDestroy(desc);
    for (cublasLtMatrixLayout_t l : {a, b, d})
      if (l) (void)cublasLtMatrixLayoutDestroy(l);
  }
};

cudaDataType_t cuda_type(Dtype d) {
  switch (d) {
    case Dtype::Float64:
      return CUDA_R_64F;
    case Dtype::BFloat16:
      return CUDA_R_16BF;
    case Dtype::Float16:
      return CUDA_R_16F;
    default:
      return CUDA_R_32F;
  }
}

cublasLtEpilogue_t lt_code(LtEpilogue e) {
  switch (e) {
    case LtEpilogue::Default:
      return CUBLASLT_EPILOGUE_DEFAULT;
    case LtEpilogue::Bias:
      return CUBLASLT_EPILOGUE_BIAS;
    case LtEpilogue::Relu:
      return CUBLASLT_EPILOGUE_RELU;
    case LtEpilogue::ReluBias:
      return CUBLASLT_EPILOGUE_RELU_BIAS;
    case LtEpilogue::GeluTanh:
      return CUBLASLT_EPILOGUE_GELU;
    case LtEpilogue::GeluTanhBias:
      return CUBLASLT_EPILOGUE_GELU_BIAS;
    case LtEpilogue::GeluTanhAux:
      return CUBLASLT_EPILOGUE_GELU_AUX;
    case LtEpilogue::GeluTanhAuxBias:
      return CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    case LtEpilogue::RowSumsOfA:
      return CUBLASLT_EPILOGUE_BGRADB;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

bool has_bias_pointer(LtEpilogue e) {
  return e == LtEpilogue::Bias || e == LtEpilogue::ReluBias || e == LtEpilogue::GeluTanhBias ||
         e == LtEpilogue::GeluTanhAuxBias || e == LtEpilogue::RowSumsOfA;
}

bool has_aux(LtEpilogue e) {
  return e == LtEpilogue::GeluTanhAux || e == LtEpilogue::GeluTanhAuxBias;
}

template <class V>
void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const V& v) {
  NN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &v, sizeof(v)));
}

// The pointer attributes of one call (their alignment is part of the key).
void set_pointers(const Plan& plan, const LtEpilogueArgs& e) {
  if (e.kind == LtEpilogue::RowSumsOfA) {
    set_desc(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, e.row_sums);
  } else if (has_bias_pointer(e.kind)) {
    set_desc(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, e.bias);
  }
  if (has_aux(e.kind)) set_desc(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, e.aux);
}

void build_plan(Plan& plan, const PlanKey& key, const GemmProblem& p, const LtEpilogueArgs& e,
                cublasLtHandle_t handle) {
  const cudaDataType_t in = cuda_type(p.dtype), out = cuda_type(e.out_dtype);
  plan.f64 = p.dtype == Dtype::Float64;
  const cublasComputeType_t compute = plan.f64 ? CUBLAS_COMPUTE_64F
                                      : (p.dtype == Dtype::Float32 && key.tf32)
                                          ? CUBLAS_COMPUTE_32F_FAST_TF32
                                          : CUBLAS_COMPUTE_32F;
  NN_CUBLAS_CHECK(
      cublasLtMatmulDescCreate(&plan.desc, compute, plan.f64 ? CUDA_R_64F : CUDA_R_32F));
  // cuBLASLt's A is the row-major B, its B the row-major A (see the top of the file).
  const cublasOperation_t op_a = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  set_desc(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, op_a);
  set_desc(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, op_b);
  set_desc(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, lt_code(e.kind));
  if (has_aux(e.kind)) set_desc(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, e.ld_aux);
  set_pointers(plan, e);  // the heuristic reads their alignment
  // Stored shapes, column-major: op N stores [rows, cols] of the operand as used, op T transposed.
  const uint64_t a_rows = p.trans_b ? uint64_t(p.k) : uint64_t(p.n);
  const uint64_t a_cols = p.trans_b ? uint64_t(p.n) : uint64_t(p.k);
  const uint64_t b_rows = p.trans_a ? uint64_t(p.m) : uint64_t(p.k);
  const uint64_t b_cols = p.trans_a ? uint64_t(p.k) : uint64_t(p.m);
  NN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, in, a_rows, a_cols, p.ldb));
  NN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, in, b_rows, b_cols, p.lda));
  NN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.d, out, uint64_t(p.n), uint64_t(p.m), p.ldd));

  cublasLtMatmulPreference_t pref = nullptr;
  NN_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>,
                  cublasStatus_t (*)(cublasLtMatmulPreference_t)>
      pref_owner(pref, &cublasLtMatmulPreferenceDestroy);
  auto set_pref = [&](cublasLtMatmulPreferenceAttributes_t attr, auto v) {
    NN_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &v, sizeof(v)));
  };
  set_pref(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(kCublasLtWorkspaceBytes));
  set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_b);  // cuBLASLt's A = our B
  set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_a);
  set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_d);
  set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_d);

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(
      handle, plan.desc, plan.a, plan.b, plan.d, plan.d, pref, 1, &result, &found);
  // No algorithm is an answer (the caller runs a plainer form), not an error.
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || (st == CUBLAS_STATUS_SUCCESS && found == 0)) return;
  NN_CUBLAS_CHECK(st);
  plan.algo = result.algo;
  plan.supported = true;
}

PlanKey make_key(int device, const GemmProblem& p, const LtEpilogueArgs& e) {
  PlanKey k{};
  k.device = device;
  k.m = p.m;
  k.n = p.n;
  k.k = p.k;
  k.lda = p.lda;
  k.ldb = p.ldb;
  k.ldd = p.ldd;
  k.ld_aux = has_aux(e.kind) ? e.ld_aux : 0;
  k.dtype = p.dtype;
  k.out_dtype = e.out_dtype;
  k.trans_a = p.trans_a;
  k.trans_b = p.trans_b;
  k.tf32 = p.dtype == Dtype::Float32 && allow_tf32();
  k.epilogue = e.kind;
  k.align_a = alignment_of(p.a);
  k.align_b = alignment_of(p.b);
  k.align_d = alignment_of(p.d);
  k.align_bias = has_bias_pointer(e.kind)
                     ? alignment_of(e.kind == LtEpilogue::RowSumsOfA ? e.row_sums : e.bias)
                     : 0;
  k.align_aux = has_aux(e.kind) ? alignment_of(e.aux) : 0;
  return k;
}

using PlanMap = std::unordered_map<PlanKey, std::unique_ptr<Plan>, PlanKeyHash>;

PlanMap& thread_plans() {
  thread_local PlanMap plans;
  return plans;
}

}  // namespace

LtEpilogue lt_forward_epilogue(Activation act, bool has_bias, bool with_aux) {
  switch (act) {
    case Activation::None:
      return has_bias ? LtEpilogue::Bias : LtEpilogue::Default;
    case Activation::Relu:  // backward reads y itself; a caller wanting z too gets Default
      if (with_aux) return LtEpilogue::Default;
      return has_bias ? LtEpilogue::ReluBias : LtEpilogue::Relu;
    case Activation::GeluTanh:
      if (with_aux) return has_bias ? LtEpilogue::GeluTanhAuxBias : LtEpilogue::GeluTanhAux;
      return has_bias ? LtEpilogue::GeluTanhBias : LtEpilogue::GeluTanh;
    default:
      return LtEpilogue::Default;  // exact GELU, SiLU, tanh, sigmoid: not among cuBLASLt's
  }
}

bool cublaslt_gemm(const GemmProblem& p, const LtEpilogueArgs& e, cudaStream_t stream) {
  const char* fn = "cublaslt_gemm";
  NN_CHECK(p.batch == 1 && p.a_prologue.act == Activation::None && !p.a_prologue.a_row_sum,
           ValueError, fn, ": takes one unbatched problem without a prologue, got batch ", p.batch,
           " and prologue ", activation_name(p.a_prologue.act));
  NN_CHECK(p.m > 0 && p.n > 0 && p.k > 0, ValueError, fn, ": sizes must be positive, got M ", p.m,
           ", N ", p.n, ", K ", p.k);
  NN_CHECK(!has_aux(e.kind) || e.aux != nullptr, ValueError, fn, ": the aux epilogue needs aux");
  // cuBLASLt documents the GELU aux leading dimension as a multiple of 8; outside that, say no.
  if (has_aux(e.kind) && e.ld_aux % 8 != 0) return false;
  int device = 0;
  NN_CUDA_CHECK(cudaGetDevice(&device));
  cublasLtHandle_t handle = cublaslt_handle(device);
  const PlanKey key = make_key(device, p, e);
  PlanMap& plans = thread_plans();
  auto it = plans.find(key);
  if (it == plans.end()) {
    auto plan = std::make_unique<Plan>();
    build_plan(*plan, key, p, e, handle);
    it = plans.emplace(key, std::move(plan)).first;
  }
  const Plan& plan = *it->second;
  if (!plan.supported) return false;
  set_pointers(plan, e);
  const float alpha_f = 1.0f, beta_f = 0.0f;
  const double alpha_d = 1.0, beta_d = 0.0;
  const void* alpha = plan.f64 ? static_cast<const void*>(&alpha_d) : &alpha_f;
  const void* beta = plan.f64 ? static_cast<const void*>(&beta_d) : &beta_f;
  NN_CUBLAS_CHECK(cublasLtMatmul(handle, plan.desc, alpha, p.b, plan.a, p.a, plan.b, beta, p.d,
                                 plan.d, p.d, plan.d, &plan.algo, cublaslt_workspace(device),
                                 kCublasLtWorkspaceBytes, stream));
  return true;
}

int64_t cublaslt_plan_count() { return int64_t(thread_plans().size()); }

}  // namespace nn::cuda
