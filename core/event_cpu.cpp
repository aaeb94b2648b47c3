// Events in a build configured with NN_CUDA=OFF: there is no device to create one on, so
// create() throws DeviceError, and every other call meets an undefined event (ValueError).
#if !defined(NN_WITH_CUDA)
#include "core/error.h"
#include "core/event.h"

namespace nn::cuda {
namespace {

[[noreturn]] void throw_undefined(const char* what) {
  NN_THROW(ValueError, what,
           ": the event is undefined (libnn_cuda was built without CUDA, so no event can be "
           "created)");
}

}  // namespace

Event Event::create(Device device, bool) {
  NN_THROW(DeviceError, "Event::create: ", device.str(),
           " requested but libnn_cuda was built without CUDA (NN_CUDA=OFF); reconfigure with "
           "-DNN_CUDA=ON on a machine with the CUDA toolkit to use a GPU");
}

void Event::record(const Stream&) { throw_undefined("Event::record"); }
void Event::record() { throw_undefined("Event::record"); }
void Event::wait(const Stream&) const { throw_undefined("Event::wait"); }
void Event::wait() const { throw_undefined("Event::wait"); }
void Event::synchronize() const { throw_undefined("Event::synchronize"); }
bool Event::query() const { throw_undefined("Event::query"); }
float Event::elapsed_ms(const Event&, const Event&) { throw_undefined("Event::elapsed_ms"); }

}  // namespace nn::cuda
#endif  // !NN_WITH_CUDA
