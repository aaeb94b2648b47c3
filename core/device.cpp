#include "core/device.h"

#include "core/error.h"

namespace nn {

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  const std::string prefix = "cuda:";
  if (text.rfind(prefix, 0) == 0 && text.size() > prefix.size()) {
    std::string digits = text.substr(prefix.size());
    bool all_digits = digits.size() <= 4;
    for (char c : digits) all_digits = all_digits && c >= '0' && c <= '9';
    if (all_digits) return cuda(std::stoi(digits));
  }
  NN_THROW(ValueError, "Device::parse: unknown device '", text, "', expected cpu, cuda or cuda:N");
}

Device best_device() { return cuda::available() ? Device::cuda(0) : Device::cpu(); }

}  // namespace nn
