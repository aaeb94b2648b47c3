// The block-management policy of the CUDA caching allocator, written over an abstract raw
// backend so that it can be tested on the CPU with a fake one:
//   struct Backend { void* raw_alloc(size_t bytes);   // nullptr when out of memory
//                    void raw_free(void* p); };
//   optional:       std::string memory_note();        // appended to out-of-memory messages
// Policy (after PyTorch's): sizes rounded up to kBlockRounding; requests <= kSmallRequest come
// from kSmallSegment segments, requests below kMediumRequest from kMediumSegment segments and
// larger ones from segments rounded up to kLargeRounding. Free blocks are cached per stream key
// (a block freed on one stream is never handed to another) in a set ordered by size; a request
// takes the best fit, splits off the remainder, and a freed block merges with its free
// neighbours in the same segment. When raw_alloc fails, every fully free cached segment is
// released and the request retried once before OutOfMemoryError is thrown. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"

namespace nn {

constexpr size_t kBlockRounding = 512;               // every block size is a multiple of this
constexpr size_t kSmallRequest = size_t(1) << 20;    // <= 1 MiB: the small pool
constexpr size_t kSmallSegment = size_t(2) << 20;    // segments of the small pool
constexpr size_t kMediumRequest = size_t(10) << 20;  // (1 MiB, 10 MiB): one 20 MiB segment
constexpr size_t kMediumSegment = size_t(20) << 20;
constexpr size_t kLargeRounding = size_t(2) << 20;  // larger segments: 2 MiB multiples
constexpr size_t kMaxRequest = size_t(1) << 62;     // beyond any device; keeps rounding exact

// "1.50 MiB (1572864 bytes)": sizes in out-of-memory messages.
inline std::string format_bytes(int64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  std::ostringstream os;
  if (unit == 0) {
    os << bytes << " bytes";
  } else {
    os << std::fixed << std::setprecision(2) << value << ' ' << units[unit] << " (" << bytes
       << " bytes)";
  }
  return os.str();
}

template <class Backend>
class CachingAllocator {
 public:
  using StreamKey = const void*;

  // `device_name` ("cuda:0") and `capacity` (bytes, 0 when unknown) only feed error messages.
  explicit CachingAllocator(Backend backend, std::string device_name = "device",
                            int64_t capacity = 0)
      : backend_(std::move(backend)), device_name_(std::move(device_name)), capacity_(capacity) {}
  ~CachingAllocator() { release_all(); }
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least `nbytes` usable on `stream`. A zero-byte request still gets a minimal
  // block so that every pointer handed out is unique and non-null.
  void* allocate(size_t nbytes, StreamKey stream) {
    NN_CHECK(nbytes <= kMaxRequest, OutOfMemoryError, "out of memory on ", device_name_,
             ": tried to allocate ", nbytes, " bytes, more than any device holds");
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t size = round_size(nbytes);
    Pool& pool = pool_for(size);
    Block* block = take_free_block(pool, stream, size);
    if (block == nullptr) block = new_segment(pool, stream, size, nbytes);
    if (should_split(block, size)) split(pool, block, size);
    block->allocated = true;
    live_.emplace(block->ptr, block);
    stats_.allocated_bytes += static_cast<int64_t>(block->size);
    update_peaks();
    return block->ptr;
  }

  // Returns `p` to the pool of the stream it was allocated on. False when `p` is not a block of
  // this allocator (so a caller with several allocators can ask each); nullptr is ignored.
  bool deallocate(void* p) {
    if (p == nullptr) return true;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(p);
    if (it == live_.end()) return false;
    Block* block = it->second;
    live_.erase(it);
    block->allocated = false;
    stats_.allocated_bytes -= static_cast<int64_t>(block->size);
    Pool& pool = *block->pool;
    block = merge(pool, block, block->prev);
    block = merge(pool, block, block->next);
    pool.insert(block);
    return true;
  }

  // Releases every cached segment that has no block in use.
  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_free_segments();
  }

  MemoryStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void reset_peak_stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_allocated_bytes = stats_.allocated_bytes;
    stats_.peak_reserved_bytes = stats_.reserved_bytes;
  }

  // The rounded size of the live block at `p` (0 when `p` is not live here).
  size_t block_size(const void* p) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(const_cast<void*>(p));
    return it == live_.end() ? 0 : it->second->size;
  }

  static size_t round_size(size_t nbytes) {
    if (nbytes < kBlockRounding) return kBlockRounding;
    return (nbytes + kBlockRounding - 1) / kBlockRounding * kBlockRounding;
  }

  // The raw allocation made for a request of rounded `size`.
  static size_t segment_size(size_t size) {
    if (size <= kSmallRequest) return kSmallSegment;
    if (size < kMediumRequest) return kMediumSegment;
    return (size + kLargeRounding - 1) / kLargeRounding * kLargeRounding;
  }

 private:
  struct Pool;
  // A piece of a segment. Blocks of one segment form a list in address order (prev/next);
  // the whole segment has one stream key.
  struct Block {
    char* ptr = nullptr;
    size_t size = 0;
    StreamKey stream = nullptr;
    Pool* pool = nullptr;
    Block* prev = nullptr;
    Block* next = nullptr;
    bool allocated = false;
  };
  // Ordered by stream, then size, then address: a lower_bound on (stream, size) is the best fit.
  struct BlockLess {
    bool operator()(const Block* a, const Block* b) const {
      if (a->stream != b->stream) return std::less<StreamKey>()(a->stream, b->stream);
      if (a->size != b->size) return a->size < b->size;
      return std::less<char*>()(a->ptr, b->ptr);
    }
  };
  struct Pool {
    bool small = false;
    std::set<Block*, BlockLess> free_blocks;
    void insert(Block* b) { free_blocks.insert(b); }
    void erase(Block* b) { free_blocks.erase(b); }
  };

  Pool& pool_for(size_t size) { return size <= kSmallRequest ? small_pool_ : large_pool_; }

  Block* take_free_block(Pool& pool, StreamKey stream, size_t size) {
    Block key;
    key.stream = stream;
    key.size = size;
    auto it = pool.free_blocks.lower_bound(&key);
    if (it == pool.free_blocks.end() || (*it)->stream != stream) return nullptr;
    Block* block = *it;
    pool.free_blocks.erase(it);
    return block;
  }

  // Asks the backend for a new segment; on failure frees the cache and retries once.
  Block* new_segment(Pool& pool, StreamKey stream, size_t size, size_t requested) {
    const size_t bytes = segment_size(size);
    void* raw = backend_.raw_alloc(bytes);
    if (raw == nullptr) {
      ++stats_.num_alloc_retries;
      release_free_segments();
      raw = backend_.raw_alloc(bytes);
    }
    if (raw == nullptr) throw_out_of_memory(requested, bytes);
    ++stats_.num_device_allocs;
    stats_.reserved_bytes += static_cast<int64_t>(bytes);
    auto* block = new Block;
    block->ptr = static_cast<char*>(raw);
    block->size = bytes;
    block->stream = stream;
    block->pool = &pool;
    return block;
  }

  // Small blocks split down to the rounding; large ones only when the rest could serve a
  // large request, so the large pool is not littered with slivers.
  bool should_split(const Block* block, size_t size) const {
    const size_t rest = block->size - size;
    return block->pool->small ? rest >= kBlockRounding : rest > kSmallRequest;
  }

  void split(Pool& pool, Block* block, size_t size) {
    auto* rest = new Block;
    rest->ptr = block->ptr + size;
    rest->size = block->size - size;
    rest->stream = block->stream;
    rest->pool = &pool;
    rest->prev = block;
    rest->next = block->next;
    if (rest->next) rest->next->prev = rest;
    block->next = rest;
    block->size = size;
    pool.insert(rest);
  }

  // Folds `neighbour` into `block` when it is free; returns the surviving block.
  Block* merge(Pool& pool, Block* block, Block* neighbour) {
    if (neighbour == nullptr || neighbour->allocated) return block;
    pool.erase(neighbour);
    Block* first = neighbour == block->prev ? neighbour : block;
    Block* second = first == block ? neighbour : block;
    first->size += second->size;
    first->next = second->next;
    if (first->next) first->next->prev = first;
    delete second;
    return first;
  }

  void release_free_segments() {
    for (Pool* pool : {&small_pool_, &large_pool_}) {
      for (auto it = pool->free_blocks.begin(); it != pool->free_blocks.end();) {
        Block* block = *it;
        if (block->prev != nullptr || block->next != nullptr) {
          ++it;
          continue;
        }
        it = pool->free_blocks.erase(it);
        stats_.reserved_bytes -= static_cast<int64_t>(block->size);
        ++stats_.num_device_frees;
        void* raw = block->ptr;
        delete block;
        backend_.raw_free(raw);
      }
    }
  }

  // Gives every segment back, in use or not: only at destruction, when nobody may hold a block.
  void release_all() noexcept {
    std::vector<Block*> heads;
    for (Pool* pool : {&small_pool_, &large_pool_})
      for (Block* b : pool->free_blocks)
        if (b->prev == nullptr) heads.push_back(b);
    for (auto& [ptr, b] : live_)
      if (b->prev == nullptr) heads.push_back(b);
    for (Block* head : heads) {
      void* raw = head->ptr;
      for (Block* b = head; b != nullptr;) {
        Block* next = b->next;
        delete b;
        b = next;
      }
      try {
        backend_.raw_free(raw);
      } catch (...) {  // a destructor must not throw; the process is going anyway
      }
    }
  }

  [[noreturn]] void throw_out_of_memory(size_t requested, size_t segment) {
    std::ostringstream os;
    os << "out of memory on " << device_name_ << ": tried to allocate "
       << format_bytes(static_cast<int64_t>(requested)) << " (a segment of "
       << format_bytes(static_cast<int64_t>(segment)) << "); allocated "
       << format_bytes(stats_.allocated_bytes) << ", reserved "
       << format_bytes(stats_.reserved_bytes);
    if (capacity_ > 0) os << ", capacity " << format_bytes(capacity_);
    if constexpr (requires(Backend & b) { b.memory_note(); }) {
      const std::string note = backend_.memory_note();
      if (!note.empty()) os << "; " << note;
    }
    os << " (cache emptied and retried once)";
    throw OutOfMemoryError(os.str());
  }

  void update_peaks() {
    if (stats_.allocated_bytes > stats_.peak_allocated_bytes)
      stats_.peak_allocated_bytes = stats_.allocated_bytes;
    if (stats_.reserved_bytes > stats_.peak_reserved_bytes)
      stats_.peak_reserved_bytes = stats_.reserved_bytes;
  }

  Backend backend_;
  std::string device_name_;
  int64_t capacity_;
  mutable std::mutex mutex_;
  Pool small_pool_{true, {}};
  Pool large_pool_{false, {}};
  std::unordered_map<void*, Block*> live_;
  MemoryStats stats_;
};

}  // namespace nn
