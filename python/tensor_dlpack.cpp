// DLPack export (Tensor.__dlpack__, __dlpack_device__) and import (nn_cuda.from_dlpack), zero-copy
// on the CPU and on CUDA, with the unversioned "dltensor" capsule protocol: a consumer renames
// the capsule "used_dltensor" when it takes ownership and then calls the deleter exactly once;
// an unconsumed capsule calls it when it is destroyed.
#include "python/dlpack.h"
#include "python/tensor_parts.h"

namespace nn::python {

namespace {

constexpr const char* kCapsuleName = "dltensor";
constexpr const char* kUsedCapsuleName = "used_dltensor";

// What an exported capsule owns: a view of the tensor (keeping its storage alive) and the shape
// and strides arrays the DLTensor points into.
struct ExportContext {
  Tensor tensor;
  std::vector<int64_t> shape, strides;
  NNDLManagedTensor managed{};
};

void export_deleter(NNDLManagedTensor* self) {
  delete static_cast<ExportContext*>(self->manager_ctx);
}

// Destroys an unconsumed capsule's tensor; a consumed one ("used_dltensor") is the consumer's.
extern "C" void capsule_destructor(PyObject* capsule) {
  if (!PyCapsule_IsValid(capsule, kCapsuleName)) return;
  auto* managed = static_cast<NNDLManagedTensor*>(PyCapsule_GetPointer(capsule, kCapsuleName));
  if (managed && managed->deleter) managed->deleter(managed);
}

NNDLDataType dl_dtype(Dtype d) {
  switch (d) {
    case Dtype::Float32:
      return {kNNDLFloat, 32, 1};
    case Dtype::Float64:
      return {kNNDLFloat, 64, 1};
    case Dtype::Float16:
      return {kNNDLFloat, 16, 1};
    case Dtype::BFloat16:
      return {kNNDLBfloat, 16, 1};
    case Dtype::Int64:
      return {kNNDLInt, 64, 1};
    case Dtype::Bool:
      return {kNNDLBool, 8, 1};
  }
  NN_THROW(DtypeError, "__dlpack__: unknown dtype code ", int(d));
}

Dtype dtype_from_dl(NNDLDataType t) {
  NN_CHECK(t.lanes == 1, DtypeError, "from_dlpack: vector dtypes (", t.lanes,
           " lanes) are not supported");
  if (t.code == kNNDLFloat && t.bits == 32) return Dtype::Float32;
  if (t.code == kNNDLFloat && t.bits == 64) return Dtype::Float64;
  if (t.code == kNNDLFloat && t.bits == 16) return Dtype::Float16;
  if (t.code == kNNDLBfloat && t.bits == 16) return Dtype::BFloat16;
  if (t.code == kNNDLInt && t.bits == 64) return Dtype::Int64;
  if (t.code == kNNDLBool && t.bits == 8) return Dtype::Bool;
  NN_THROW(DtypeError, "from_dlpack: DLPack dtype (code ", int(t.code), ", ", int(t.bits),
           " bits) is not supported, expected float32, float64, float16, bfloat16, int64 or bool");
}

// Makes work the consumer enqueues on `consumer` (a cudaStream_t; 1 is the legacy default
// stream, 2 the per-thread default) start after the work already enqueued on our current stream.
void order_streams(Device device, void* consumer) {
  Stream ours = cuda::current_stream(device.index);
  bool both_legacy =
      ours.handle() == nullptr && (consumer == nullptr || consumer == reinterpret_cast<void*>(1));
  if (both_legacy || ours.handle() == consumer) return;
  cuda::Event event = cuda::Event::create(device);
  event.record(ours);
  event.wait(Stream(device, consumer));
}

py::capsule to_dlpack(const Variable& v, py::handle stream) {
  const Tensor& t = v.data();
  if (t.device().is_cuda()) {
    // The consumer's stream: None means the legacy default stream, -1 asks for no ordering.
    intptr_t s = stream.is_none() ? 1 : stream.cast<intptr_t>();
    if (s != -1) {
      py::gil_scoped_release release;
      order_streams(t.device(), reinterpret_cast<void*>(s == 0 ? 1 : s));
    }
  }
  auto ctx = std::make_unique<ExportContext>();
  ctx->tensor = t;
  ctx->shape = t.shape();
  ctx->strides = t.strides();
  NNDLTensor& dl = ctx->managed.dl_tensor;
  dl.data = t.numel() > 0 ? t.data_ptr() : nullptr;
  dl.device = {t.device().is_cuda() ? kNNDLCUDA : kNNDLCPU,
               t.device().is_cuda() ? int32_t(t.device().index) : 0};
  dl.ndim = int32_t(t.dim());
  dl.dtype = dl_dtype(t.dtype());
  dl.shape = ctx->shape.data();
  dl.strides = ctx->strides.data();
  dl.byte_offset = 0;
  ctx->managed.manager_ctx = ctx.get();
  ctx->managed.deleter = export_deleter;
  NNDLManagedTensor* managed = &ctx->managed;
  PyObject* cap = PyCapsule_New(managed, kCapsuleName, capsule_destructor);
  if (!cap) throw py::error_already_set();
  ctx.release();  // owned by the capsule (or by its consumer) from here on
  return py::reinterpret_steal<py::capsule>(cap);
}

Tensor tensor_from_capsule(py::handle capsule) {
  if (PyCapsule_IsValid(capsule.ptr(), kUsedCapsuleName))
    NN_THROW(ValueError, "from_dlpack: the DLPack capsule was already consumed");
  NN_CHECK(PyCapsule_IsValid(capsule.ptr(), kCapsuleName), ValueError,
           "from_dlpack: expected a DLPack capsule named 'dltensor'");
  auto* managed =
      static_cast<NNDLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), kCapsuleName));
  const NNDLTensor& dl = managed->dl_tensor;
  Device device;
  switch (dl.device.device_type) {
    case kNNDLCPU:
    case kNNDLCUDAHost:
      device = Device::cpu();
      break;
    case kNNDLCUDA:
    case kNNDLCUDAManaged:
      device = Device::cuda(dl.device.device_id);
      cuda::check_device(device, "from_dlpack");
      break;
    default:
      NN_THROW(DeviceError, "from_dlpack: DLPack device type ", dl.device.device_type,
               " is not supported, expected the CPU (1) or CUDA (2)");
  }
  Dtype dtype = dtype_from_dl(dl.dtype);
  NN_CHECK(dl.ndim >= 0, ShapeError, "from_dlpack: negative rank ", dl.ndim);
  Shape shape(dl.shape, dl.shape + dl.ndim);
  Shape strides = dl.strides ? Shape(dl.strides, dl.strides + dl.ndim) : contiguous_strides(shape);
  int64_t itemsize = int64_t(dtype_size(dtype)), extent = 0;
  bool empty = false;
  for (int32_t d = 0; d < dl.ndim; ++d) {
    NN_CHECK(shape[size_t(d)] >= 0, ShapeError, "from_dlpack: negative size in shape ",
             shape_str(shape));
    NN_CHECK(strides[size_t(d)] >= 0, ValueError, "from_dlpack: negative strides ",
             shape_str(strides), " are not supported");
    if (shape[size_t(d)] == 0) empty = true;
    extent += (shape[size_t(d)] - 1) * strides[size_t(d)];
  }
  size_t nbytes = empty ? 0 : size_t((extent + 1) * itemsize);
  void* data = dl.data ? static_cast<char*>(dl.data) + dl.byte_offset : nullptr;
  auto storage = std::make_shared<Storage>(data, nbytes, device, [managed](void*) {
    if (managed->deleter) managed->deleter(managed);
  });
  // Ownership moved to `storage`: the capsule must no longer call the deleter.
  if (PyCapsule_SetName(capsule.ptr(), kUsedCapsuleName) != 0) throw py::error_already_set();
  if (!data) {
    // Storage skips its deleter for null data; keep the producer's deleter to exactly once.
    auto owner = std::make_shared<Storage>(nullptr, 0, device, nullptr);
    if (managed->deleter) managed->deleter(managed);
    return Tensor(owner, shape, strides, 0, dtype);
  }
  return Tensor(std::move(storage), shape, strides, 0, dtype);
}

Variable from_dlpack(py::handle obj) {
  if (PyCapsule_CheckExact(obj.ptr())) return Variable(tensor_from_capsule(obj));
  NN_CHECK(py::hasattr(obj, "__dlpack__"), ValueError,
           "from_dlpack: ", std::string(py::str(py::type::handle_of(obj).attr("__name__"))),
           " has no __dlpack__ method and is not a DLPack capsule");
  py::object capsule;
  bool on_cuda = false;
  int index = 0;
  if (py::hasattr(obj, "__dlpack_device__")) {
    py::tuple dev = obj.attr("__dlpack_device__")();
    int type = dev[0].cast<int>();
    index = dev[1].cast<int>();
    on_cuda = type == kNNDLCUDA || type == kNNDLCUDAManaged;
  }
  if (on_cuda) {
    Device device = Device::cuda(index);
    cuda::check_device(device, "from_dlpack");
    // Our current stream; the producer orders its pending work before it (1: legacy default).
    void* handle = cuda::current_stream(index).handle();
    intptr_t s = handle ? reinterpret_cast<intptr_t>(handle) : 1;
    capsule = obj.attr("__dlpack__")(py::arg("stream") = s);
  } else {
    capsule = obj.attr("__dlpack__")();
  }
  return Variable(tensor_from_capsule(capsule));
}

}  // namespace

void bind_tensor_dlpack(py::module_& m, TensorClass& cls) {
  cls.def(
      "__dlpack__",
      [](const Variable& v, py::handle stream, py::kwargs kwargs) {
        // Newer consumers add keywords: max_version (we answer with the unversioned capsule,
        // which the protocol allows), dl_device (must be ours) and copy (True: export a copy).
        bool copy = false;
        for (auto item : kwargs) {
          std::string key = item.first.cast<std::string>();
          if (key == "dl_device" && !item.second.is_none()) {
            auto want = item.second.cast<std::pair<int, int>>();
            Device d = v.device();
            std::pair<int, int> have{d.is_cuda() ? int(kNNDLCUDA) : int(kNNDLCPU),
                                     d.is_cuda() ? d.index : 0};
            if (want != have)
              throw py::buffer_error("__dlpack__: the tensor is on " + d.str() +
                                     "; export to another device is not supported");
          } else if (key == "copy") {
            copy = !item.second.is_none() && item.second.cast<bool>();
          } else if (key != "max_version") {
            throw py::type_error("__dlpack__: unexpected keyword argument '" + key + "'");
          }
        }
        return to_dlpack(copy ? Variable(v.data().clone()) : v, stream);
      },
      py::arg("stream") = py::none(),
      "A DLPack capsule viewing this tensor's memory (no copy). On CUDA, work enqueued on "
      "`stream` (a cudaStream_t as int; None: the legacy default stream; -1: no ordering) "
      "runs after the work already enqueued on this tensor's current stream.");
  cls.def("__dlpack_device__", [](const Variable& v) {
    Device d = v.device();
    return py::make_tuple(d.is_cuda() ? int(kNNDLCUDA) : int(kNNDLCPU), d.is_cuda() ? d.index : 0);
  });
  m.def("from_dlpack", &from_dlpack, py::arg("obj"),
        "A tensor sharing the memory of any object with __dlpack__ (or a 'dltensor' capsule); "
        "the producer stays alive until the tensor's storage goes.");
  m.def(
      "to_dlpack", [](const Variable& v) { return to_dlpack(v, py::none()); }, py::arg("tensor"),
      "A 'dltensor' capsule of the tensor (the legacy torch.utils.dlpack.to_dlpack form).");
}

}  // namespace nn::python
