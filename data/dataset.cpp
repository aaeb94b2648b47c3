// Datasets over tensors and index lists. Batches are assembled by gather() straight into the
// loader's (possibly page-locked) buffers, so a TensorDataset batch costs one row copy per
// example and no intermediate tensors.
#include "data/dataset.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

#include "core/error.h"
#include "kernels/ops.h"

namespace nn::data {
namespace {

Shape row_shape(const Tensor& t) { return Shape(t.shape().begin() + 1, t.shape().end()); }

void check_index(int64_t index, int64_t size, const char* what) {
  NN_CHECK(index >= 0 && index < size, IndexError, what, ": index ", index,
           " is out of range for a dataset of ", size, " examples");
}

void check_rows(const char* what, const Tensor& rows, const Tensor& example, int64_t index,
                const char* name) {
  NN_CHECK(example.dtype() == rows.dtype(), DtypeError, what, ": example ", index, "'s ", name,
           " is ", dtype_name(example.dtype()), ", expected ", dtype_name(rows.dtype()),
           " like the batch");
  NN_CHECK(example.shape() == row_shape(rows), ShapeError, what, ": example ", index, "'s ", name,
           " has shape ", shape_str(example.shape()), ", expected ", shape_str(row_shape(rows)),
           " like the batch");
}

void check_batch(const char* what, const Tensor& t, size_t count, const char* name) {
  NN_CHECK(t.defined() && t.device().is_cpu() && t.is_contiguous() && t.dim() >= 1 &&
               t.size(0) == int64_t(count),
           ValueError, what, ": the ", name, " batch must be a contiguous CPU tensor with ", count,
           " rows, got ",
           t.defined() ? shape_str(t.shape()) + " on " + t.device().str()
                       : std::string("an undefined tensor"));
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

void Dataset::gather(const std::vector<int64_t>& indices, Tensor& inputs, Tensor& targets) const {
  check_batch("Dataset::gather", inputs, indices.size(), "input");
  check_batch("Dataset::gather", targets, indices.size(), "target");
  for (size_t k = 0; k < indices.size(); ++k) {
    const Example ex = get(indices[k]);
    check_rows("Dataset::gather", inputs, ex.input, indices[k], "input");
    check_rows("Dataset::gather", targets, ex.target, indices[k], "target");
    inputs.select(0, int64_t(k)).copy_(ex.input);
    targets.select(0, int64_t(k)).copy_(ex.target);
  }
}

TensorDataset::TensorDataset(Tensor inputs, Tensor targets) {
  NN_CHECK(inputs.defined() && targets.defined(), ValueError,
           "TensorDataset: inputs and targets must be defined tensors");
  NN_CHECK(inputs.device().is_cpu() && targets.device().is_cpu(), DeviceError,
           "TensorDataset: inputs (", inputs.device().str(), ") and targets (",
           targets.device().str(), ") must be CPU tensors; a DataLoader moves batches to a device");
  NN_CHECK(inputs.dim() >= 1 && targets.dim() >= 1 && inputs.size(0) == targets.size(0), ShapeError,
           "TensorDataset: inputs ", shape_str(inputs.shape()), " and targets ",
           shape_str(targets.shape()), " must share their first dimension (one row per example)");
  inputs_ = inputs.contiguous();
  targets_ = targets.contiguous();
}

Example TensorDataset::get(int64_t index) const {
  check_index(index, size(), "TensorDataset::get");
  return {inputs_.select(0, index), targets_.select(0, index)};
}

void TensorDataset::gather(const std::vector<int64_t>& indices, Tensor& inputs,
                           Tensor& targets) const {
  const char* what = "TensorDataset::gather";
  check_batch(what, inputs, indices.size(), "input");
  check_batch(what, targets, indices.size(), "target");
  NN_CHECK(inputs.dtype() == inputs_.dtype() && row_shape(inputs) == row_shape(inputs_) &&
               targets.dtype() == targets_.dtype() && row_shape(targets) == row_shape(targets_),
           ShapeError, what, ": batches ", shape_str(inputs.shape()), " ",
           dtype_name(inputs.dtype()), " and ", shape_str(targets.shape()), " ",
           dtype_name(targets.dtype()), " do not hold rows of ", shape_str(inputs_.shape()), " ",
           dtype_name(inputs_.dtype()), " and ", shape_str(targets_.shape()), " ",
           dtype_name(targets_.dtype()));
  const size_t in_row = inputs_.nbytes() / size_t(std::max<int64_t>(size(), 1));
  const size_t tg_row = targets_.nbytes() / size_t(std::max<int64_t>(size(), 1));
  const auto* in_src = static_cast<const char*>(inputs_.data_ptr());
  const auto* tg_src = static_cast<const char*>(targets_.data_ptr());
  auto* in_dst = static_cast<char*>(inputs.data_ptr());
  auto* tg_dst = static_cast<char*>(targets.data_ptr());
  for (size_t k = 0; k < indices.size(); ++k) {
    const int64_t i = indices[k];
    check_index(i, size(), what);
    if (in_row > 0) std::memcpy(in_dst + k * in_row, in_src + size_t(i) * in_row, in_row);
    if (tg_row > 0) std::memcpy(tg_dst + k * tg_row, tg_src + size_t(i) * tg_row, tg_row);
  }
}

Subset::Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices)
    : base_(std::move(base)), indices_(std::move(indices)) {
  NN_CHECK(base_ != nullptr, ValueError, "Subset: the base dataset is null");
  const int64_t n = base_->size();
  for (int64_t i : indices_) check_index(i, n, "Subset");
}

Example Subset::get(int64_t index) const {
  check_index(index, size(), "Subset::get");
  return base_->get(indices_[size_t(index)]);
}

void Subset::gather(const std::vector<int64_t>& indices, Tensor& inputs, Tensor& targets) const {
  std::vector<int64_t> mapped(indices.size());
  for (size_t k = 0; k < indices.size(); ++k) {
    check_index(indices[k], size(), "Subset::gather");
    mapped[k] = indices_[size_t(indices[k])];
  }
  base_->gather(mapped, inputs, targets);
}

std::vector<std::shared_ptr<Subset>> random_split(const std::shared_ptr<const Dataset>& dataset,
                                                  const std::vector<int64_t>& lengths,
                                                  uint64_t seed) {
  NN_CHECK(dataset != nullptr, ValueError, "random_split: the dataset is null");
  int64_t total = 0;
  for (int64_t n : lengths) {
    NN_CHECK(n >= 0, ValueError, "random_split: negative length ", n);
    total += n;
  }
  NN_CHECK(total == dataset->size(), ValueError, "random_split: lengths add up to ", total,
           ", expected the dataset's size ", dataset->size());
  const std::vector<int64_t> perm = random_permutation(total, seed);
  std::vector<std::shared_ptr<Subset>> out;
  auto at = perm.begin();
  for (int64_t n : lengths) {
    out.push_back(std::make_shared<Subset>(dataset, std::vector<int64_t>(at, at + n)));
    at += n;
  }
  return out;
}

std::vector<int64_t> random_permutation(int64_t n, uint64_t seed) {
  NN_CHECK(n >= 0, ValueError, "random_permutation: negative size ", n);
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t(0));
  // mt19937_64's output is fixed by the standard; the distributions are not, so the bounded
  // draw (rejection sampling, unbiased) is done here.
  std::mt19937_64 gen(mix_seed(seed, 0x7065726d));  // "perm"
  for (int64_t i = n - 1; i > 0; --i) {
    const uint64_t range = uint64_t(i) + 1;
    const uint64_t threshold = (0 - range) % range;
    uint64_t x = gen();
    while (x < threshold) x = gen();
    std::swap(perm[size_t(i)], perm[size_t(x % range)]);
  }
  return perm;
}

uint64_t mix_seed(uint64_t seed, uint64_t stream) { return splitmix64(seed ^ splitmix64(stream)); }

}  // namespace nn::data
