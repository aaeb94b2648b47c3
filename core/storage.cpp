#include "core/storage.h"

#include "core/allocator.h"
#include "core/error.h"

namespace nn {

std::shared_ptr<Storage> allocate_storage(size_t nbytes, Device device, bool pinned) {
  if (device.is_cuda()) {
    NN_CHECK(!pinned, ValueError, "allocate_storage: pinned memory is host memory, asked for ",
             device.str());
    void* p = nbytes ? cuda::allocate(nbytes, device.index) : nullptr;
    return std::make_shared<Storage>(p, nbytes, device, [](void* q) { cuda::deallocate(q); });
  }
  if (pinned) {
    void* p = nbytes ? pinned_allocate(nbytes) : nullptr;
    return std::make_shared<Storage>(p, nbytes, device, [](void* q) { pinned_free(q); }, true);
  }
  void* p = cpu_allocate(nbytes);
  return std::make_shared<Storage>(p, nbytes, device, [](void* q) { cpu_free(q); });
}

std::shared_ptr<Storage> wrap_storage(void* data, size_t nbytes, Device device) {
  return std::make_shared<Storage>(data, nbytes, device, nullptr);
}

}  // namespace nn
