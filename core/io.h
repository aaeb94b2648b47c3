// Files: atomic replacement (core/atomic_file.h) and safetensors checkpoints
// (core/safetensors.h), all in namespace nn::io. Module and optimizer checkpoints build on these.
#pragma once

#include "core/atomic_file.h"
#include "core/safetensors.h"
