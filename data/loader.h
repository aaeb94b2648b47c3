// DataLoader: batches of a Dataset for a training loop.
//
//   DataLoader loader(train, {.batch_size = 128, .shuffle = true, .seed = 1,
//                             .transform = random_crop(2), .device = Device::cuda(),
//                             .prefetch = true});
//   for (int64_t e = 0; e < epochs; ++e) {
//     loader.set_epoch(e);
//     for (const Batch& b : loader) step(b.inputs, b.targets);
//   }
//
// Order: with shuffle, each epoch uses a permutation drawn from (seed, epoch): the same seed
// gives the same batches, each epoch a different order. begin() starts an epoch: the one
// set_epoch() named, else the one after the last (0 first). Batch b of an epoch is a pure
// function of (seed, epoch, b), so prefetch on and off give identical batches. The transform
// runs on the host per batch, on the inputs only, with a seed derived from (seed, epoch, b).
//
// Devices: batches land on options.device. Without prefetch, a CUDA batch is copied on the
// caller's current stream before the batch is returned. With prefetch, a worker thread
// assembles the next batches (up to kPrefetchDepth ahead) into page-locked host buffers and
// copies them to the GPU on a side stream without blocking; the batch handed out comes with the
// caller's current stream made to wait for that copy (an event, no host sync). Use one stream
// for a whole epoch: device batches are allocated for the stream current at begin().
//
// Errors: construction throws ValueError for batch_size < 1 or a null dataset, DeviceError
// for an absent device. An exception in the dataset or the transform - on the worker thread or
// not - is rethrown by the begin() or ++ that reaches its batch; the epoch then ends. Destroying
// a loader, or calling begin() again, mid-epoch stops and joins the worker.
//
// A loader is used from one thread. Iterators of an earlier epoch are invalid (ValueError).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"
#include "data/augment.h"
#include "data/dataset.h"

namespace nn::data {

struct Batch {
  Tensor inputs;                 // [B, ...] on the loader's device
  Tensor targets;                // [B, ...] on the loader's device
  int64_t index = 0;             // the batch's number within its epoch
  std::vector<int64_t> indices;  // the dataset indices of its examples, in order
  int64_t size() const { return inputs.defined() ? inputs.size(0) : 0; }
};

struct LoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;
  uint64_t seed = 0;
  bool drop_last = false;  // drop a last batch smaller than batch_size
  Transform transform{};   // applied to each batch's inputs on the host; none when empty
  Device device = Device::cpu();
  bool prefetch = false;  // prepare the next batches on a background thread
};

// How many prepared batches the worker may hold ahead of the one in use.
constexpr int64_t kPrefetchDepth = 2;

class DataLoader {
  struct Impl;

 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options = {});
  ~DataLoader();
  DataLoader(DataLoader&&) noexcept;
  DataLoader& operator=(DataLoader&&) noexcept;
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t size() const;  // batches per epoch
  const LoaderOptions& options() const;
  const Dataset& dataset() const;
  // The epoch the next begin() runs.
  int64_t epoch() const;
  void set_epoch(int64_t epoch);
  // The order in which an epoch visits the dataset's examples.
  std::vector<int64_t> order(int64_t epoch) const;

  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using pointer = const Batch*;
    using reference = const Batch&;

    Iterator() = default;
    const Batch& operator*() const;
    const Batch* operator->() const { return &**this; }
    Iterator& operator++();
    bool operator==(const Iterator& other) const;

   private:
    friend class DataLoader;
    Iterator(Impl* impl, uint64_t generation, bool sentinel)
        : impl_(impl), generation_(generation), sentinel_(sentinel) {}
    bool done() const;
    void check(const char* what) const;
    Impl* impl_ = nullptr;
    uint64_t generation_ = 0;
    bool sentinel_ = true;
  };

  Iterator begin();  // starts an epoch and prepares its first batch
  Iterator end();

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace nn::data
