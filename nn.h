// libnn_cuda's umbrella header: everything a user program needs, in one include.
//   #include <nn/nn.h>      (installed: <prefix>/include/nn/nn.h)
// Tensors and their views (core/tensor.h), devices and streams, allocators and memory
// statistics, the counter-based RNG, the nn::Error hierarchy, and the op table (kernels/ops.h).
// Modules, layers, losses and initialisers (layers/): nn::Module, Linear, Sequential, ...
// Optimizers, learning-rate schedules, clipping, penalties, early stopping and training
// checkpoints (optim/): nn::SGD, Adam, AdamW, RMSprop, StepLR, clip_grad_norm_, ...
#pragma once

#include "core/allocator.h"
#include "core/device.h"
#include "core/error.h"
#include "core/event.h"
#include "core/io.h"
#include "core/rng.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "data/augment.h"
#include "data/csv.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data/loader.h"
#include "data/mnist.h"
#include "graph/functions.h"
#include "graph/variable.h"
#include "kernels/conv_ops.h"
#include "kernels/nn_ops.h"
#include "kernels/ops.h"
#include "kernels/shape_ops.h"
#include "layers/activation.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/module.h"
#include "layers/sequential.h"
#include "optim/adam.h"
#include "optim/checkpoint.h"
#include "optim/clip.h"
#include "optim/early_stopping.h"
#include "optim/metric.h"
#include "optim/optimizer.h"
#include "optim/regularization.h"
#include "optim/rmsprop.h"
#include "optim/scheduler.h"
#include "optim/sgd.h"
