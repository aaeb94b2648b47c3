// The cuDNN 9 path of conv2d and its backward passes (contract in kernels/cuda/conv.cuh), through
// cuDNN's convolution API (cudnnConvolution*). A plan (descriptors, algorithm, workspace size) is
// made the first time a (device, shapes, options, dtype, TF32, pass) is seen and kept for the
// process's life. The algorithm comes from cuDNN's heuristics (the *_v7 queries): they neither
// run kernels nor wait for the GPU nor allocate, unlike cudnnFind*, so planning stays legal
// inside a captured step; Auto (conv_dispatch.cpp) measures cuDNN against ours once anyway.
// Bias and its gradient use our kernels (conv.cu): cudnnAddTensor does not take every dtype.
#include "kernels/cuda/conv.cuh"

#include "core/cuda_context.h"
#include "kernels/ops.h"

#if defined(NN_WITH_CUDNN)
#include <map>
#include <memory>
#include <mutex>

#include "core/cudnn_context.h"
#endif

namespace nn::cuda {

#if defined(NN_WITH_CUDNN)
namespace {

// Algorithms needing more workspace than this are passed over.
constexpr size_t kMaxWorkspaceBytes = size_t(1) << 30;

struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  int algo = 0;
  size_t workspace = 0;
  bool double_scalars = false;  // alpha/beta are double for float64 data, float otherwise

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {  // destruction errors cannot be reported from here; the handles are gone anyway
    if (x) (void)cudnnDestroyTensorDescriptor(x);
    if (y) (void)cudnnDestroyTensorDescriptor(y);
    if (w) (void)cudnnDestroyFilterDescriptor(w);
    if (conv) (void)cudnnDestroyConvolutionDescriptor(conv);
  }
};

std::mutex g_mutex;
std::map<std::vector<int64_t>, std::shared_ptr<const Plan>>& plans() {
  static auto* m = new std::map<std::vector<int64_t>, std::shared_ptr<const Plan>>();
  return *m;  // never destroyed: cuDNN may be gone at exit
}

cudnnDataType_t data_type(Dtype d) {
  switch (d) {
    case Dtype::Float32:
      return CUDNN_DATA_FLOAT;
    case Dtype::Float64:
      return CUDNN_DATA_DOUBLE;
    case Dtype::BFloat16:
      return CUDNN_DATA_BFLOAT16;
    case Dtype::Float16:
      return CUDNN_DATA_HALF;
    default:
      NN_THROW(DtypeError, "conv2d (cuDNN): unsupported dtype ", dtype_name(d));
  }
}

int as_int(int64_t v, const char* what) {
  NN_CHECK(v >= 0 && v <= INT32_MAX, ValueError, "conv2d (cuDNN): ", what, " = ", v,
           " does not fit cuDNN's int sizes");
  return int(v);
}

// Picks the first algorithm the heuristics rank as runnable within the workspace limit.
template <class Perf>
const Perf& pick(const Perf* perf, int count, const char* pass) {
  for (int i = 0; i < count; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kMaxWorkspaceBytes)
      return perf[i];
  NN_THROW(CudaError, "conv2d (cuDNN): no ", pass, " algorithm for this configuration");
}

std::shared_ptr<const Plan> make_plan(const ConvTuneKey& key, cudnnHandle_t handle) {
  auto plan = std::make_shared<Plan>();
  const cudnnDataType_t dt = data_type(key.dtype);
  const Shape& xs = key.x;
  const Shape& ws = key.w;
  const int64_t ho =
      conv_out_size(xs[2], ws[2], key.opt.stride[0], key.opt.padding[0], key.opt.dilation[0]);
  const int64_t wo =
      conv_out_size(xs[3], ws[3], key.opt.stride[1], key.opt.padding[1], key.opt.dilation[1]);
  NN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->x));
  NN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->y));
  NN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan->w));
  NN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&plan->conv));
  NN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->x, CUDNN_TENSOR_NCHW, dt, as_int(xs[0], "N"),
                                            as_int(xs[1], "C"), as_int(xs[2], "H"),
                                            as_int(xs[3], "W")));
  NN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->y, CUDNN_TENSOR_NCHW, dt, as_int(xs[0], "N"),
                                            as_int(ws[0], "O"), as_int(ho, "Ho"),
                                            as_int(wo, "Wo")));
  NN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w, dt, CUDNN_TENSOR_NCHW, as_int(ws[0], "O"),
                                            as_int(ws[1], "C/groups"), as_int(ws[2], "kH"),
                                            as_int(ws[3], "kW")));
  const bool f64 = key.dtype == Dtype::Float64;
  NN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
      plan->conv, as_int(key.opt.padding[0], "padding"), as_int(key.opt.padding[1], "padding"),
      as_int(key.opt.stride[0], "stride"), as_int(key.opt.stride[1], "stride"),
      as_int(key.opt.dilation[0], "dilation"), as_int(key.opt.dilation[1], "dilation"),
      CUDNN_CROSS_CORRELATION, f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT));
  NN_CUDNN_CHECK(cudnnSetConvolutionGroupCount(plan->conv, as_int(key.opt.groups, "groups")));
  // float32 without TF32 must stay on FMA units; everything else may use the tensor cores.
  const cudnnMathType_t math = key.dtype == Dtype::Float32 && !key.tf32 ? CUDNN_FMA_MATH
                               : is_half(key.dtype)                     ? CUDNN_TENSOR_OP_MATH
                                                                        : CUDNN_DEFAULT_MATH;
  NN_CUDNN_CHECK(cudnnSetConvolutionMathType(plan->conv, math));
  plan->double_scalars = f64;

  int count = 0;
  switch (key.pass) {
    case ConvPass::Forward: {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      NN_CUDNN_CHECK(
          cudnnGetConvolutionForwardAlgorithm_v7(handle, plan->x, plan->w, plan->conv, plan->y,
                                                 CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
      const auto& p = pick(perf, count, "forward");
      plan->algo = int(p.algo);
      if (math != CUDNN_FMA_MATH)
        NN_CUDNN_CHECK(cudnnSetConvolutionMathType(plan->conv, p.mathType));
      NN_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle, plan->x, plan->w, plan->conv,
                                                             plan->y, p.algo, &plan->workspace));
      break;
    }
    case ConvPass::BackwardData: {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      NN_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
          handle, plan->w, plan->y, plan->conv, plan->x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
          &count, perf));
      const auto& p = pick(perf, count, "backward-data");
      plan->algo = int(p.algo);
      if (math != CUDNN_FMA_MATH)
        NN_CUDNN_CHECK(cudnnSetConvolutionMathType(plan->conv, p.mathType));
      NN_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(
          handle, plan->w, plan->y, plan->conv, plan->x, p.algo, &plan->workspace));
      break;
    }
    case ConvPass::BackwardWeight: {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
      NN_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
          handle, plan->x, plan->y, plan->conv, plan->w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
          &count, perf));
      const auto& p = pick(perf, count, "backward-filter");
      plan->algo = int(p.algo);
      if (math != CUDNN_FMA_MATH)
        NN_CUDNN_CHECK(cudnnSetConvolutionMathType(plan->conv, p.mathType));
      NN_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
          handle, plan->x, plan->y, plan->conv, plan->w, p.algo, &plan->workspace));
      break;
    }
  }
  return plan;
}

std::shared_ptr<const Plan> plan_for(const ConvTuneKey& key, cudnnHandle_t handle) {
  const std::vector<int64_t> words = conv_key_words(key);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = plans().find(words);
    if (it != plans().end()) return it->second;
  }
  // Planned outside the lock: two threads meeting a new shape may both plan it; the first wins.
  std::shared_ptr<const Plan> plan = make_plan(key, handle);
  std::lock_guard<std::mutex> lock(g_mutex);
  return plans().emplace(words, std::move(plan)).first->second;
}

ConvTuneKey plan_key(ConvPass pass, const Tensor& x_like, const Tensor& w_like,
                     const Conv2dOptions& opt, const Tensor& on) {
  ConvTuneKey key;
  key.device = on.device().index;
  key.pass = pass;
  key.x = x_like.shape();
  key.w = w_like.shape();
  key.opt = opt;
  key.dtype = on.dtype();
  key.tf32 = on.dtype() == Dtype::Float32 && allow_tf32();
  return key;
}

// A workspace of `bytes` from the caching allocator (released stream-ordered with the tensor).
Tensor workspace(size_t bytes, Device device) {
  if (bytes == 0) return Tensor();
  return empty({int64_t((bytes + 7) / 8)}, TensorOptions{Dtype::Float64, device});
}

struct Scalars {
  float f1 = 1.0f, f0 = 0.0f;
  double d1 = 1.0, d0 = 0.0;
  const void* one(const Plan& p) const { return p.double_scalars ? (const void*)&d1 : &f1; }
  const void* zero(const Plan& p) const { return p.double_scalars ? (const void*)&d0 : &f0; }
};

}  // namespace

bool cudnn_conv_available() { return true; }

void conv2d_cudnn(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b,
                  const Conv2dOptions& opt) {
  if (y.numel() == 0) return;
  DeviceGuard guard(y.device().index);
  cudnnHandle_t handle = cudnn_handle(y.device().index);
  auto plan = plan_for(plan_key(ConvPass::Forward, x, w, opt, y), handle);
  Tensor ws = workspace(plan->workspace, y.device());
  const Scalars s;
  NN_CUDNN_CHECK(cudnnConvolutionForward(
      handle, s.one(*plan), plan->x, x.data_ptr(), plan->w, w.data_ptr(), plan->conv,
      cudnnConvolutionFwdAlgo_t(plan->algo), ws.defined() ? ws.data_ptr() : nullptr,
      plan->workspace, s.zero(*plan), plan->y, y.data_ptr()));
  if (b.defined()) conv_add_bias(y, b);
}

void conv2d_backward_data_cudnn(Tensor& dx, const Tensor& grad_y, const Tensor& w,
                                const Conv2dOptions& opt) {
  if (dx.numel() == 0) return;
  DeviceGuard guard(dx.device().index);
  cudnnHandle_t handle = cudnn_handle(dx.device().index);
  auto plan = plan_for(plan_key(ConvPass::BackwardData, dx, w, opt, dx), handle);
  Tensor ws = workspace(plan->workspace, dx.device());
  const Scalars s;
  NN_CUDNN_CHECK(cudnnConvolutionBackwardData(
      handle, s.one(*plan), plan->w, w.data_ptr(), plan->y, grad_y.data_ptr(), plan->conv,
      cudnnConvolutionBwdDataAlgo_t(plan->algo), ws.defined() ? ws.data_ptr() : nullptr,
      plan->workspace, s.zero(*plan), plan->x, dx.data_ptr()));
}

void conv2d_backward_weight_cudnn(Tensor& dw, Tensor& db, const Tensor& grad_y, const Tensor& x,
                                  const Conv2dOptions& opt) {
  if (dw.numel() == 0) return;
  DeviceGuard guard(dw.device().index);
  cudnnHandle_t handle = cudnn_handle(dw.device().index);
  auto plan = plan_for(plan_key(ConvPass::BackwardWeight, x, dw, opt, dw), handle);
  Tensor ws = workspace(plan->workspace, dw.device());
  const Scalars s;
  NN_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
      handle, s.one(*plan), plan->x, x.data_ptr(), plan->y, grad_y.data_ptr(), plan->conv,
      cudnnConvolutionBwdFilterAlgo_t(plan->algo), ws.defined() ? ws.data_ptr() : nullptr,
      plan->workspace, s.zero(*plan), plan->w, dw.data_ptr()));
  if (db.defined()) conv_bias_grad(db, grad_y);
}

int64_t cudnn_conv_plan_count() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return int64_t(plans().size());
}

void clear_cudnn_conv_plans() {
  std::lock_guard<std::mutex> lock(g_mutex);
  plans().clear();
}

#else  // no cuDNN in this build

namespace {
[[noreturn]] void no_cudnn(const char* fn) {
  NN_THROW(DeviceError, fn,
           ": this build of nn_cuda has no cuDNN (configure with cuDNN 9 found, "
           "or use the conv backend \"ours\")");
}
}  // namespace

bool cudnn_conv_available() { return false; }
void conv2d_cudnn(Tensor&, const Tensor&, const Tensor&, const Tensor&, const Conv2dOptions&) {
  no_cudnn("conv2d");
}
void conv2d_backward_data_cudnn(Tensor&, const Tensor&, const Tensor&, const Conv2dOptions&) {
  no_cudnn("conv2d_backward_data");
}
void conv2d_backward_weight_cudnn(Tensor&, Tensor&, const Tensor&, const Tensor&,
                                  const Conv2dOptions&) {
  no_cudnn("conv2d_backward_weight");
}
int64_t cudnn_conv_plan_count() { return 0; }
void clear_cudnn_conv_plans() {}

#endif  // NN_WITH_CUDNN

}  // namespace nn::cuda
