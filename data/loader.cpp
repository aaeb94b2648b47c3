// DataLoader. Without prefetch every batch is made on the caller's thread when ++ asks for it.
// With prefetch one worker thread makes batches in order into a bounded queue; the caller pops
// them. Both paths run the same make_host_batch(), so their batches are identical.
//
// CUDA with prefetch, per batch, on the worker thread:
//   1. gather + transform into pinned buffer k (a ring of kPinnedBuffers); before reusing k the
//      worker waits for the event of the last copy out of it, so a pending copy never reads a
//      half-rewritten buffer;
//   2. allocate the device batch with the consumer's stream current, so its blocks belong to
//      that stream's pool, and make the side stream wait for what the consumer stream has
//      enqueued so far (a recycled block may still be read there);
//   3. copy non-blocking on the side stream and record `copied`; the caller's stream waits on
//      `copied` when it takes the batch. A batch never taken (loader destroyed, new epoch)
//      still makes the consumer stream wait on its copy before its memory is released.
#include "data/loader.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "core/event.h"
#include "core/stream.h"
#include "kernels/ops.h"

namespace nn::data {
namespace {

constexpr int64_t kPinnedBuffers = kPrefetchDepth + 1;
constexpr uint64_t kTransformStream = 0x7472616e73666f72;  // "transfor"

struct Slot {
  Batch batch;
  cuda::Event copied;  // defined for a CUDA batch copied on the side stream
  std::exception_ptr error;
};

struct PinnedBuffer {
  Tensor inputs;  // [batch_size, ...], page-locked
  Tensor targets;
  cuda::Event copied;  // the last copy out of this buffer
};

Shape with_rows(int64_t rows, const Shape& row) {
  Shape s{rows};
  s.insert(s.end(), row.begin(), row.end());
  return s;
}

}  // namespace

struct DataLoader::Impl {
  std::shared_ptr<const Dataset> dataset;
  LoaderOptions opt;
  int64_t examples = 0;
  int64_t batches = 0;
  Shape input_row, target_row;
  Dtype input_dtype = Dtype::Float32, target_dtype = Dtype::Int64;
  int64_t next_epoch = 0;

  // The epoch in progress (caller's thread; the worker reads `order` and `epoch` only while
  // it runs, and they change only after it is joined).
  uint64_t generation = 0;
  int64_t epoch = 0;
  std::vector<int64_t> order;
  int64_t current_index = 0;  // == batches when the epoch is over
  Batch current;

  // Prefetch.
  std::thread worker;
  std::mutex mutex;
  std::condition_variable has_batch;  // the worker pushed
  std::condition_variable has_room;   // the caller popped, or stop
  std::deque<Slot> ready;
  bool stop = false;
  Stream side_stream;      // CUDA + prefetch: where the copies run
  Stream consumer_stream;  // the caller's current stream at begin()
  std::vector<PinnedBuffer> pinned;

  bool cuda_prefetch() const { return opt.prefetch && opt.device.is_cuda(); }

  std::vector<int64_t> make_order(int64_t e) const {
    if (opt.shuffle) return random_permutation(examples, mix_seed(opt.seed, uint64_t(e)));
    std::vector<int64_t> o(static_cast<size_t>(examples));
    std::iota(o.begin(), o.end(), int64_t(0));
    return o;
  }

  // Gathers batch b of the epoch on the host, into `buffer` when given, and transforms it.
  Batch make_host_batch(int64_t b, PinnedBuffer* buffer) const {
    const int64_t start = b * opt.batch_size;
    const int64_t rows = std::min(opt.batch_size, examples - start);
    Batch out;
    out.index = b;
    out.indices.assign(order.begin() + start, order.begin() + start + rows);
    if (buffer != nullptr) {
      out.inputs = buffer->inputs.narrow(0, 0, rows);
      out.targets = buffer->targets.narrow(0, 0, rows);
    } else {
      out.inputs = empty(with_rows(rows, input_row), {input_dtype});
      out.targets = empty(with_rows(rows, target_row), {target_dtype});
    }
    dataset->gather(out.indices, out.inputs, out.targets);
    if (opt.transform) {
      opt.transform(out.inputs,
                    mix_seed(mix_seed(opt.seed ^ kTransformStream, uint64_t(epoch)), uint64_t(b)));
      NN_CHECK(out.inputs.defined(), ValueError, "DataLoader: the transform left batch ", b,
               "'s inputs undefined");
    }
    return out;
  }

  // The caller's path: a batch made here and now, copied on the caller's stream.
  Batch make_batch_now(int64_t b) const {
    Batch out = make_host_batch(b, nullptr);
    if (opt.device.is_cuda()) {
      out.inputs = out.inputs.to(opt.device);
      out.targets = out.targets.to(opt.device);
    }
    return out;
  }

  // The worker's path (see the top of this file).
  Slot make_slot(int64_t b) {
    Slot slot;
    if (!cuda_prefetch()) {
      slot.batch = make_host_batch(b, nullptr);
      return slot;
    }
    PinnedBuffer& buf = pinned[size_t(b % kPinnedBuffers)];
    if (!buf.inputs.defined()) {
      buf.inputs = empty(with_rows(opt.batch_size, input_row), {input_dtype, Device::cpu(), true});
      buf.targets =
          empty(with_rows(opt.batch_size, target_row), {target_dtype, Device::cpu(), true});
    }
    if (buf.copied.defined()) buf.copied.synchronize();
    Batch host = make_host_batch(b, &buf);
    Batch& dev = slot.batch;
    dev.index = b;
    dev.indices = std::move(host.indices);
    {
      cuda::StreamGuard guard(consumer_stream);
      dev.inputs = empty(host.inputs.shape(), {host.inputs.dtype(), opt.device});
      dev.targets = empty(host.targets.shape(), {host.targets.dtype(), opt.device});
    }
    cuda::Event consumer_done = cuda::Event::create(opt.device);
    consumer_done.record(consumer_stream);
    consumer_done.wait(side_stream);
    {
      cuda::StreamGuard guard(side_stream);
      dev.inputs.copy_(host.inputs, /*non_blocking=*/true);
      dev.targets.copy_(host.targets, /*non_blocking=*/true);
    }
    slot.copied = cuda::Event::create(opt.device);
    slot.copied.record(side_stream);
    buf.copied = slot.copied;
    return slot;
  }

  // Lets the consumer stream wait for a batch it never took, so that its device memory, once
  // freed to that stream's pool, is not reused while the copy may still write it.
  void retire(Slot& slot) noexcept {
    try {
      if (slot.copied.defined()) slot.copied.wait(consumer_stream);
    } catch (...) {  // a CUDA error now would have surfaced on the next use of the device
    }
  }

  void worker_main() {
    for (int64_t b = 0; b < batches; ++b) {
      {
        std::unique_lock<std::mutex> lock(mutex);
        has_room.wait(lock, [&] { return stop || int64_t(ready.size()) < kPrefetchDepth; });
        if (stop) return;
      }
      Slot slot;
      try {
        slot = make_slot(b);
      } catch (...) {
        slot.error = std::current_exception();
      }
      const bool failed = slot.error != nullptr;
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (stop) {
          retire(slot);
          return;
        }
        ready.push_back(std::move(slot));
      }
      has_batch.notify_one();
      if (failed) return;
    }
  }

  void start_worker() {
    stop = false;
    if (opt.device.is_cuda()) {
      consumer_stream = cuda::current_stream(opt.device.index);
      if (side_stream.device() != opt.device) side_stream = Stream::create(opt.device);
      pinned.resize(size_t(kPinnedBuffers));
    }
    worker = std::thread([this] { worker_main(); });
  }

  void stop_worker() noexcept {
    if (!worker.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    has_room.notify_all();
    worker.join();
    for (Slot& s : ready) retire(s);
    ready.clear();
  }

  // Moves to batch current_index + 1 (or to the end of the epoch), rethrowing its error.
  void advance() {
    const int64_t next = current_index + 1;
    current = Batch();
    if (next >= batches) {
      current_index = batches;
      stop_worker();
      return;
    }
    if (!opt.prefetch) {
      try {
        current = make_batch_now(next);
      } catch (...) {
        current_index = batches;
        throw;
      }
      current_index = next;
      return;
    }
    Slot slot;
    {
      std::unique_lock<std::mutex> lock(mutex);
      has_batch.wait(lock, [&] { return !ready.empty(); });
      slot = std::move(ready.front());
      ready.pop_front();
    }
    has_room.notify_one();
    if (slot.error) {
      current_index = batches;
      stop_worker();
      std::rethrow_exception(slot.error);
    }
    if (slot.copied.defined()) slot.copied.wait(cuda::current_stream(opt.device.index));
    current = std::move(slot.batch);
    current_index = next;
  }

  ~Impl() {
    stop_worker();
    // Page-locked buffers may be the source of a copy still in flight.
    for (PinnedBuffer& b : pinned) {
      try {
        if (b.copied.defined()) b.copied.synchronize();
      } catch (...) {  // nothing sensible to do in a destructor
      }
    }
  }
};

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : impl_(std::make_unique<Impl>()) {
  NN_CHECK(dataset != nullptr, ValueError, "DataLoader: the dataset is null");
  NN_CHECK(options.batch_size >= 1, ValueError, "DataLoader: batch_size is ", options.batch_size,
           ", expected at least 1");
  cuda::check_device(options.device, "DataLoader");
  Impl& s = *impl_;
  s.dataset = std::move(dataset);
  s.opt = std::move(options);
  s.examples = s.dataset->size();
  NN_CHECK(s.examples >= 0, ValueError, "DataLoader: the dataset reports a negative size ",
           s.examples);
  const int64_t b = s.opt.batch_size;
  s.batches = s.opt.drop_last ? s.examples / b : (s.examples + b - 1) / b;
  if (s.examples > 0) {
    // The first example fixes the batches' shapes and dtypes.
    const Example first = s.dataset->get(0);
    NN_CHECK(first.input.defined() && first.target.defined(), ValueError,
             "DataLoader: example 0 has an undefined input or target");
    s.input_row = first.input.shape();
    s.target_row = first.target.shape();
    s.input_dtype = first.input.dtype();
    s.target_dtype = first.target.dtype();
  }
  s.current_index = s.batches;
}

DataLoader::~DataLoader() = default;
DataLoader::DataLoader(DataLoader&&) noexcept = default;
DataLoader& DataLoader::operator=(DataLoader&&) noexcept = default;

int64_t DataLoader::size() const { return impl_->batches; }
const LoaderOptions& DataLoader::options() const { return impl_->opt; }
const Dataset& DataLoader::dataset() const { return *impl_->dataset; }
int64_t DataLoader::epoch() const { return impl_->next_epoch; }
void DataLoader::set_epoch(int64_t epoch) { impl_->next_epoch = epoch; }
std::vector<int64_t> DataLoader::order(int64_t epoch) const { return impl_->make_order(epoch); }

DataLoader::Iterator DataLoader::begin() {
  Impl& s = *impl_;
  s.stop_worker();
  s.current = Batch();
  ++s.generation;
  s.epoch = s.next_epoch++;
  s.order = s.make_order(s.epoch);
  s.current_index = -1;
  if (s.batches > 0 && s.opt.prefetch) s.start_worker();
  s.advance();
  return Iterator(impl_.get(), s.generation, false);
}

DataLoader::Iterator DataLoader::end() { return Iterator(impl_.get(), impl_->generation, true); }

bool DataLoader::Iterator::done() const {
  return sentinel_ || impl_ == nullptr || impl_->current_index >= impl_->batches;
}

void DataLoader::Iterator::check(const char* what) const {
  NN_CHECK(impl_ != nullptr && !sentinel_, ValueError, "DataLoader::Iterator::", what,
           ": the iterator is an end or default iterator");
  NN_CHECK(generation_ == impl_->generation, ValueError, "DataLoader::Iterator::", what,
           ": the iterator belongs to an earlier epoch (begin() was called since)");
}

const Batch& DataLoader::Iterator::operator*() const {
  check("operator*");
  NN_CHECK(!done(), ValueError,
           "DataLoader::Iterator::operator*: the epoch is over, there is no batch");
  return impl_->current;
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  check("operator++");
  NN_CHECK(!done(), ValueError, "DataLoader::Iterator::operator++: the epoch is already over");
  impl_->advance();
  return *this;
}

bool DataLoader::Iterator::operator==(const Iterator& other) const {
  if (done() || other.done()) return done() && other.done();
  return impl_ == other.impl_ && generation_ == other.generation_;
}

}  // namespace nn::data
