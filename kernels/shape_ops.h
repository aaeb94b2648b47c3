// Joining tensors: cat along an existing axis, stack along a new one. Built from empty + copy_
// into narrow views of the output, so they run on either device with no row of their own.
//
// Contract: a non-empty list (ValueError) of defined tensors on one device (DeviceError), of one
// dtype (DtypeError, any dtype) and one rank, whose sizes agree except along `dim` for cat and
// everywhere for stack (ShapeError). `dim` may be negative; out of range gives IndexError.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace nn {

Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);

}  // namespace nn
