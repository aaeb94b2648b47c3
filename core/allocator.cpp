// Host allocations. CUDA and pinned memory live in core/cuda/ (or core/no_cuda.cpp).
//
// Large CPU blocks are cached: a training step frees and re-requests the same activation and
// gradient sizes every step, and each fresh block of megabytes from the C library comes back
// from the kernel as zero-filled pages, one page fault per 4 KiB on first touch (5% of a CNN
// step on the CPU). A freed block of at least kCacheMinBytes goes to a size-ordered free list
// and serves a later request of at least 7/8 of its size; the list holds at most NN_CPU_CACHE_MB
// mebibytes (default kDefaultCacheMb, none under AddressSanitizer, where reuse would hide a use
// after free; 0 turns the cache off), freeing its largest blocks to make room. Every block
// carries a header of kCpuAlignment bytes before the pointer handed out, holding its usable
// size, so cpu_free needs no lookup.
#include "core/allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>

#include "core/error.h"

namespace nn {

namespace {

constexpr size_t kCacheMinBytes = size_t(256) << 10;
constexpr size_t kDefaultCacheMb = 256;
// A cached block serves a request when the request is at least this share of it (7/8).
constexpr size_t kCacheSlackNum = 7, kCacheSlackDen = 8;

struct Header {
  size_t usable;  // bytes after the header
};
static_assert(sizeof(Header) <= kCpuAlignment, "the header must fit in one alignment unit");

Header* header_of(void* p) {
  return reinterpret_cast<Header*>(static_cast<char*>(p) - kCpuAlignment);
}

void* raw_allocate(size_t usable) {
  void* base = std::aligned_alloc(kCpuAlignment, usable + kCpuAlignment);
  if (base == nullptr) return nullptr;
  void* p = static_cast<char*>(base) + kCpuAlignment;
  header_of(p)->usable = usable;
  return p;
}

void raw_free(void* p) { std::free(header_of(p)); }

class BlockCache {
 public:
  BlockCache() {
#if defined(__SANITIZE_ADDRESS__)
    size_t mb = 0;
#else
    size_t mb = kDefaultCacheMb;
#endif
    if (const char* v = std::getenv("NN_CPU_CACHE_MB")) mb = size_t(std::strtoull(v, nullptr, 10));
    limit_ = mb << 20;
  }

  // A cached block of at least `nbytes` usable bytes and not much more, or nullptr.
  void* take(size_t nbytes) {
    if (limit_ == 0) return nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.lower_bound(nbytes);
    if (it == free_.end() || nbytes < it->first / kCacheSlackDen * kCacheSlackNum) return nullptr;
    void* p = it->second;
    cached_ -= it->first;
    free_.erase(it);
    return p;
  }

  // Keeps p for reuse, or frees it when it does not fit in the limit.
  void give(void* p, size_t usable) {
    if (usable > limit_) {
      raw_free(p);
      return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    while (cached_ + usable > limit_ && !free_.empty()) {
      auto last = std::prev(free_.end());
      cached_ -= last->first;
      raw_free(last->second);
      free_.erase(last);
    }
    free_.emplace(usable, p);
    cached_ += usable;
  }

 private:
  std::mutex mutex_;
  std::multimap<size_t, void*> free_;
  size_t cached_ = 0;
  size_t limit_ = 0;
};

BlockCache& cache() {
  // Never destroyed: tensors freed by other static destructors still come back here.
  static BlockCache* c = new BlockCache();
  return *c;
}

}  // namespace

void* cpu_allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  // Rounded to the alignment, so the next block's header stays aligned too.
  size_t rounded = (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
  NN_CHECK(rounded >= nbytes && rounded + kCpuAlignment > rounded, OutOfMemoryError,
           "cpu_allocate: request of ", nbytes, " bytes overflows");
  if (rounded >= kCacheMinBytes) {
    if (void* p = cache().take(rounded)) return p;
  }
  void* p = raw_allocate(rounded);
  NN_CHECK(p != nullptr, OutOfMemoryError, "cpu_allocate: out of host memory allocating ", nbytes,
           " bytes");
  return p;
}

void cpu_free(void* p) {
  if (p == nullptr) return;
  const size_t usable = header_of(p)->usable;
  if (usable >= kCacheMinBytes)
    cache().give(p, usable);
  else
    raw_free(p);
}

}  // namespace nn
