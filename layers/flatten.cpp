#include "layers/flatten.h"

#include "graph/functions.h"

namespace nn {

Variable Flatten::forward(const Variable& x) { return flatten(x, start_dim_, end_dim_); }

}  // namespace nn
