// The DLPack ABI (the unversioned "dltensor" capsule protocol, DLPack 0.x), declared here from
// the specification so the module needs no system dlpack.h. Only what nn_cuda reads and writes.
#pragma once

#include <cstdint>

extern "C" {

enum NNDLDeviceType : int32_t {
  kNNDLCPU = 1,
  kNNDLCUDA = 2,
  kNNDLCUDAHost = 3,  // page-locked host memory: CPU-accessible
  kNNDLCUDAManaged = 13,
};

enum NNDLDataTypeCode : uint8_t {
  kNNDLInt = 0,
  kNNDLUInt = 1,
  kNNDLFloat = 2,
  kNNDLBfloat = 4,
  kNNDLBool = 6,
};

struct NNDLDevice {
  int32_t device_type;  // NNDLDeviceType
  int32_t device_id;
};

struct NNDLDataType {
  uint8_t code;  // NNDLDataTypeCode
  uint8_t bits;
  uint16_t lanes;
};

struct NNDLTensor {
  void* data;
  NNDLDevice device;
  int32_t ndim;
  NNDLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; null means compact row-major
  uint64_t byte_offset;
};

struct NNDLManagedTensor {
  NNDLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(NNDLManagedTensor* self);
};

}  // extern "C"
