#include "core/rng.h"

namespace nn {

Generator& default_generator() {
  static Generator generator;
  return generator;
}

}  // namespace nn
