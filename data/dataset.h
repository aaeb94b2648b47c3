// Data sets: indexable collections of (input, target) examples, as a DataLoader consumes them.
//
// Thread safety: a DataLoader with prefetch calls size(), get() and gather() from its worker
// thread, one call at a time, while the caller's thread goes on; a Dataset must not share
// mutable state with the caller without its own locking.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace nn::data {

struct Example {
  Tensor input;
  Tensor target;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Example `index` in [0, size()) as CPU tensors; IndexError outside.
  virtual Example get(int64_t index) const = 0;
  // Writes examples `indices` into the rows of `inputs` and `targets`: contiguous CPU tensors
  // [indices.size(), ...] shaped and typed like the examples. The default calls get() for each
  // index (ShapeError or DtypeError when an example differs from the rows); datasets over
  // tensors override it with row copies.
  virtual void gather(const std::vector<int64_t>& indices, Tensor& inputs, Tensor& targets) const;
};

// Examples are rows of two CPU tensors that share their first dimension: example i is
// (inputs[i], targets[i]), views into the tensors (made contiguous once, on construction).
// Throws DeviceError for CUDA tensors, ShapeError for 0-d tensors or differing first sizes.
class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor inputs, Tensor targets);
  int64_t size() const override { return inputs_.size(0); }
  Example get(int64_t index) const override;
  void gather(const std::vector<int64_t>& indices, Tensor& inputs, Tensor& targets) const override;
  const Tensor& inputs() const { return inputs_; }
  const Tensor& targets() const { return targets_; }

 private:
  Tensor inputs_;
  Tensor targets_;
};

// The examples of `base` at `indices` (each in [0, base->size()), IndexError otherwise).
class Subset : public Dataset {
 public:
  Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Example get(int64_t index) const override;
  void gather(const std::vector<int64_t>& indices, Tensor& inputs, Tensor& targets) const override;
  const std::vector<int64_t>& indices() const { return indices_; }

 private:
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> indices_;
};

// Splits `dataset` into disjoint subsets of the given lengths (which must add up to its size,
// ValueError otherwise) after a permutation drawn from `seed`: the same seed gives the same
// split, e.g. random_split(train, {55000, 5000}, 42) for a training and a validation set.
std::vector<std::shared_ptr<Subset>> random_split(const std::shared_ptr<const Dataset>& dataset,
                                                  const std::vector<int64_t>& lengths,
                                                  uint64_t seed);

// A permutation of [0, n) that depends only on (n, seed), the same on every platform.
std::vector<int64_t> random_permutation(int64_t n, uint64_t seed);
// An independent seed for stream `stream` of `seed` (splitmix64 mixing).
uint64_t mix_seed(uint64_t seed, uint64_t stream);

}  // namespace nn::data
