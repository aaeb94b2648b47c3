// The caching allocator's policy, run on the CPU over a fake backend whose "memory" is a range
// of addresses that are never touched, with a capacity so out-of-memory paths can be driven.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/caching_allocator.h"

namespace nn {
namespace {

constexpr size_t kKiB = size_t(1) << 10;
constexpr size_t kMiB = size_t(1) << 20;

struct FakeMemory {
  size_t capacity = 0;
  size_t used = 0;
  uintptr_t next_address = uintptr_t(1) << 32;
  std::map<void*, size_t> live;  // raw segments handed out
  int raw_allocs = 0;
  int raw_frees = 0;
  int failed_allocs = 0;
};

struct FakeBackend {
  std::shared_ptr<FakeMemory> memory;

  void* raw_alloc(size_t nbytes) {
    if (memory->used + nbytes > memory->capacity) {
      ++memory->failed_allocs;
      return nullptr;
    }
    void* p = reinterpret_cast<void*>(memory->next_address);
    memory->next_address += nbytes + 64 * kMiB;  // a gap: segments are never adjacent
    memory->used += nbytes;
    memory->live.emplace(p, nbytes);
    ++memory->raw_allocs;
    return p;
  }

  void raw_free(void* p) {
    auto it = memory->live.find(p);
    ASSERT_NE(it, memory->live.end()) << "raw_free of a pointer the backend never gave out";
    memory->used -= it->second;
    memory->live.erase(it);
    ++memory->raw_frees;
  }
};

using Allocator = CachingAllocator<FakeBackend>;

class CachingAllocatorTest : public ::testing::Test {
 protected:
  explicit CachingAllocatorTest(size_t capacity = 1024 * kMiB) {
    memory_->capacity = capacity;
    allocator_ =
        std::make_unique<Allocator>(FakeBackend{memory_}, "fake:0", static_cast<int64_t>(capacity));
  }
  void* alloc(size_t n, const void* stream = kStreamA) { return allocator_->allocate(n, stream); }
  void release(void* p) { ASSERT_TRUE(allocator_->deallocate(p)); }
  MemoryStats stats() const { return allocator_->stats(); }
  static char* at(void* base, size_t offset) { return static_cast<char*>(base) + offset; }

  static inline const void* const kStreamA = reinterpret_cast<const void*>(0x1000);
  static inline const void* const kStreamB = reinterpret_cast<const void*>(0x2000);
  std::shared_ptr<FakeMemory> memory_ = std::make_shared<FakeMemory>();
  std::unique_ptr<Allocator> allocator_;
};

TEST_F(CachingAllocatorTest, RoundsSizesTo512Bytes) {
  void* zero = alloc(0);
  void* one = alloc(1);
  void* odd = alloc(513);
  EXPECT_NE(zero, nullptr);
  EXPECT_NE(zero, one);
  EXPECT_EQ(allocator_->block_size(zero), 512u);
  EXPECT_EQ(allocator_->block_size(one), 512u);
  EXPECT_EQ(allocator_->block_size(odd), 1024u);
  EXPECT_EQ(stats().allocated_bytes, 2048);
  EXPECT_EQ(Allocator::segment_size(512), 2 * kMiB);
  EXPECT_EQ(Allocator::segment_size(kMiB), 2 * kMiB);
  EXPECT_EQ(Allocator::segment_size(kMiB + 512), 20 * kMiB);
  EXPECT_EQ(Allocator::segment_size(25 * kMiB), 26 * kMiB);
}

TEST_F(CachingAllocatorTest, ReusesAFreedBlockWithoutTheBackend) {
  void* p = alloc(1000);
  release(p);
  void* q = alloc(1000);
  EXPECT_EQ(q, p);
  EXPECT_EQ(memory_->raw_allocs, 1);
  EXPECT_EQ(stats().num_device_allocs, 1);
  EXPECT_EQ(stats().num_device_frees, 0);
}

TEST_F(CachingAllocatorTest, SmallRequestsSplitOneSegment) {
  void* a = alloc(1000);
  void* b = alloc(1000);
  void* c = alloc(300 * kKiB);
  EXPECT_EQ(b, at(a, 1024));
  EXPECT_EQ(c, at(a, 2048));
  EXPECT_EQ(memory_->raw_allocs, 1);
  EXPECT_EQ(stats().reserved_bytes, int64_t(2 * kMiB));
  EXPECT_EQ(stats().allocated_bytes, int64_t(2048 + 300 * kKiB));
}

TEST_F(CachingAllocatorTest, FreedNeighboursMergeBackIntoTheSegment) {
  void* a = alloc(512 * kKiB);
  void* b = alloc(512 * kKiB);
  void* c = alloc(512 * kKiB);
  ASSERT_EQ(b, at(a, 512 * kKiB));
  ASSERT_EQ(c, at(a, 1024 * kKiB));
  // a and b merge into one 1 MiB block, which a 1 MiB request then fits exactly.
  release(a);
  release(b);
  void* ab = alloc(kMiB);
  EXPECT_EQ(ab, a);
  EXPECT_EQ(memory_->raw_allocs, 1);
  // Freeing everything (the middle last) leaves one free block spanning the segment.
  release(c);
  release(ab);
  allocator_->empty_cache();
  EXPECT_EQ(memory_->raw_frees, 1);
  EXPECT_EQ(stats().reserved_bytes, 0);
  EXPECT_TRUE(memory_->live.empty());
}

TEST_F(CachingAllocatorTest, MergesWithBothNeighboursAtOnce) {
  void* a = alloc(512 * kKiB);
  void* b = alloc(512 * kKiB);
  void* c = alloc(512 * kKiB);
  void* d = alloc(512 * kKiB);  // fills the 2 MiB segment
  release(a);
  release(c);
  release(b);               // joins a and c
  void* abc = alloc(kMiB);  // the largest small-pool request
  EXPECT_EQ(abc, a);
  EXPECT_EQ(memory_->raw_allocs, 1);
  release(abc);
  release(d);
  allocator_->empty_cache();
  EXPECT_EQ(memory_->raw_frees, 1);
}

TEST_F(CachingAllocatorTest, MediumAndLargeRequestsGetTheirOwnSegments) {
  void* medium = alloc(3 * kMiB);
  EXPECT_EQ(stats().reserved_bytes, int64_t(20 * kMiB));
  void* medium2 = alloc(5 * kMiB);  // the rest of the 20 MiB segment
  EXPECT_EQ(medium2, at(medium, 3 * kMiB));
  EXPECT_EQ(memory_->raw_allocs, 1);
  void* large = alloc(25 * kMiB);
  EXPECT_EQ(stats().reserved_bytes, int64_t(46 * kMiB));
  EXPECT_EQ(memory_->raw_allocs, 2);
  // A small request never comes from the large pool.
  void* small = alloc(4 * kKiB);
  EXPECT_EQ(memory_->raw_allocs, 3);
  for (void* p : {medium, medium2, large, small}) release(p);
  EXPECT_EQ(stats().allocated_bytes, 0);
}

TEST_F(CachingAllocatorTest, LargeBlocksAreNotSplitForSlivers) {
  void* big = alloc(20 * kMiB - 512 * kKiB);  // 19.5 MiB: the rest (0.5 MiB) stays attached
  EXPECT_EQ(allocator_->block_size(big), 20 * kMiB);
  EXPECT_EQ(stats().allocated_bytes, int64_t(20 * kMiB));
}

TEST_F(CachingAllocatorTest, BlocksFreedOnOneStreamAreNotGivenToAnother) {
  void* p = alloc(1000, kStreamA);
  release(p);
  void* q = alloc(1000, kStreamB);
  EXPECT_NE(q, p);
  EXPECT_EQ(memory_->raw_allocs, 2);
  void* r = alloc(1000, kStreamA);
  EXPECT_EQ(r, p);
  EXPECT_EQ(memory_->raw_allocs, 2);
  // The split remainder of A's segment is A's too.
  void* s = alloc(1000, kStreamB);
  EXPECT_EQ(s, at(q, 1024));
}

TEST_F(CachingAllocatorTest, TracksAllocatedReservedAndPeaks) {
  void* a = alloc(kMiB);
  void* b = alloc(3 * kMiB);
  MemoryStats s = stats();
  EXPECT_EQ(s.allocated_bytes, int64_t(4 * kMiB));
  EXPECT_EQ(s.reserved_bytes, int64_t(22 * kMiB));
  EXPECT_EQ(s.peak_allocated_bytes, int64_t(4 * kMiB));
  EXPECT_EQ(s.peak_reserved_bytes, int64_t(22 * kMiB));
  EXPECT_EQ(s.num_device_allocs, 2);
  release(b);
  s = stats();
  EXPECT_EQ(s.allocated_bytes, int64_t(kMiB));
  EXPECT_EQ(s.reserved_bytes, int64_t(22 * kMiB));  // cached, not returned
  EXPECT_EQ(s.peak_allocated_bytes, int64_t(4 * kMiB));
  allocator_->empty_cache();
  allocator_->reset_peak_stats();
  s = stats();
  EXPECT_EQ(s.reserved_bytes, int64_t(2 * kMiB));
  EXPECT_EQ(s.peak_allocated_bytes, int64_t(kMiB));
  EXPECT_EQ(s.peak_reserved_bytes, int64_t(2 * kMiB));
  EXPECT_EQ(s.num_device_frees, 1);
  release(a);
  EXPECT_EQ(stats().allocated_bytes, 0);
  EXPECT_EQ(stats().peak_allocated_bytes, int64_t(kMiB));
}

TEST_F(CachingAllocatorTest, EmptyCacheReleasesOnlyFullyFreeSegments) {
  void* in_use = alloc(1000);
  void* cached = alloc(3 * kMiB);
  void* partly = alloc(30 * kMiB);
  release(cached);
  void* neighbour = alloc(1000);  // shares in_use's segment
  release(neighbour);
  allocator_->empty_cache();
  EXPECT_EQ(memory_->raw_frees, 1);
  EXPECT_EQ(stats().reserved_bytes, int64_t(2 * kMiB + 30 * kMiB));
  EXPECT_EQ(memory_->live.size(), 2u);
  release(in_use);
  release(partly);
  allocator_->empty_cache();
  EXPECT_TRUE(memory_->live.empty());
  EXPECT_EQ(stats().reserved_bytes, 0);
}

TEST_F(CachingAllocatorTest, AbsurdRequestsThrowInsteadOfWrappingAround) {
  EXPECT_THROW(alloc(SIZE_MAX), OutOfMemoryError);
  EXPECT_THROW(alloc(SIZE_MAX - 100), OutOfMemoryError);
  EXPECT_EQ(memory_->raw_allocs, 0);
  EXPECT_EQ(stats().allocated_bytes, 0);
}

TEST_F(CachingAllocatorTest, RejectsPointersItDidNotAllocate) {
  int local = 0;
  EXPECT_FALSE(allocator_->deallocate(&local));
  void* p = alloc(64);
  EXPECT_TRUE(allocator_->deallocate(p));
  EXPECT_FALSE(allocator_->deallocate(p));  // a double free is not ours any more
  EXPECT_TRUE(allocator_->deallocate(nullptr));
}

TEST_F(CachingAllocatorTest, DestructionReturnsEverySegment) {
  alloc(1000);
  release(alloc(3 * kMiB));
  alloc(40 * kMiB);
  allocator_.reset();
  EXPECT_TRUE(memory_->live.empty());
  EXPECT_EQ(memory_->raw_allocs, memory_->raw_frees);
}

TEST_F(CachingAllocatorTest, ConcurrentUseKeepsTheBooksBalanced) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      std::mt19937 rng(1234 + t);
      std::uniform_int_distribution<size_t> size(1, 4 * kMiB);
      const void* stream = t % 2 ? kStreamA : kStreamB;
      std::vector<void*> held;
      for (int i = 0; i < 500; ++i) {
        if (held.size() < 8 && (rng() % 3 != 0 || held.empty())) {
          held.push_back(allocator_->allocate(size(rng), stream));
        } else {
          const size_t k = rng() % held.size();
          EXPECT_TRUE(allocator_->deallocate(held[k]));
          held.erase(held.begin() + static_cast<std::ptrdiff_t>(k));
        }
      }
      for (void* p : held) EXPECT_TRUE(allocator_->deallocate(p));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(stats().allocated_bytes, 0);
  allocator_->empty_cache();
  EXPECT_EQ(stats().reserved_bytes, 0);
  EXPECT_TRUE(memory_->live.empty());
}

class SmallCapacityTest : public CachingAllocatorTest {
 protected:
  SmallCapacityTest() : CachingAllocatorTest(20 * kMiB) {}
};

TEST_F(SmallCapacityTest, OutOfMemoryFreesTheCacheAndRetries) {
  release(alloc(1000));       // a cached 2 MiB segment
  void* p = alloc(3 * kMiB);  // needs 20 MiB: fits only once the cache is gone
  EXPECT_NE(p, nullptr);
  const MemoryStats s = stats();
  EXPECT_EQ(s.num_alloc_retries, 1);
  EXPECT_EQ(s.num_device_frees, 1);
  EXPECT_EQ(s.reserved_bytes, int64_t(20 * kMiB));
  EXPECT_EQ(memory_->failed_allocs, 1);
}

TEST_F(SmallCapacityTest, OutOfMemoryAfterTheRetryThrowsWithTheTotals) {
  void* held = alloc(14 * kMiB);  // a segment of exactly 14 MiB
  try {
    alloc(6 * kMiB);  // a 20 MiB segment: never fits
    FAIL() << "expected OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("fake:0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("6.00 MiB (6291456 bytes)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("allocated 14.00 MiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("reserved 14.00 MiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("capacity 20.00 MiB"), std::string::npos) << msg;
  }
  EXPECT_EQ(memory_->failed_allocs, 2);
  EXPECT_EQ(stats().num_alloc_retries, 1);
  // The failure left the books intact and a request that fits still succeeds.
  EXPECT_EQ(stats().allocated_bytes, int64_t(14 * kMiB));
  void* small = alloc(1000);
  EXPECT_NE(small, nullptr);
  release(small);
  release(held);
}

}  // namespace
}  // namespace nn
