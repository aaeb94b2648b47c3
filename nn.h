// libnn_cuda's umbrella header: everything a user program needs, in one include.
//   #include <nn/nn.h>      (installed: <prefix>/include/nn/nn.h)
// Tensors and their views (core/tensor.h), devices and streams, allocators and memory
// statistics, the counter-based RNG, the nn::Error hierarchy, and the op table (kernels/ops.h).
#pragma once

#include "core/allocator.h"
#include "core/device.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/ops.h"
