// The pool behind kernels/cpu/parallel.h. One loop at a time: the submitting thread publishes it
// under the mutex (a new generation), workers and submitter take chunk numbers from the loop's
// atomic counter, and the thread finishing the last chunk wakes the submitter.
#include "kernels/cpu/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

// OpenBLAS's thread control, weak so that the library links (and SerialBlas does nothing) against
// another CBLAS or none.
extern "C" {
void openblas_set_num_threads(int threads) __attribute__((weak));
int openblas_get_num_threads(void) __attribute__((weak));
}

namespace nn::cpu {
namespace {

thread_local bool t_in_parallel = false;

int configured_threads() {
  for (const char* name : {"NN_NUM_THREADS", "OMP_NUM_THREADS"}) {
    if (const char* v = std::getenv(name)) {
      int n = std::atoi(v);
      if (n > 0) return std::min(n, 256);
    }
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

// One parallel loop. Workers hold it by shared_ptr, so a worker that wakes late, after the
// loop is over, still looks at that loop's exhausted counter and never at a newer loop's.
struct Job {
  Job(const std::function<void(int64_t)>& t, int64_t n) : task(t), chunks(n), remaining(n) {}
  const std::function<void(int64_t)>& task;
  const int64_t chunks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> remaining;
  std::mutex mutex;
  std::condition_variable done;
  std::exception_ptr error;

  // Runs chunks until none is left; the thread finishing the last one wakes the submitter.
  void take_chunks() {
    const bool outer = t_in_parallel;
    t_in_parallel = true;
    int64_t finished = 0;
    for (int64_t c; (c = next.fetch_add(1)) < chunks; ++finished) {
      try {
        task(c);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
      }
    }
    t_in_parallel = outer;
    if (finished > 0 && remaining.fetch_sub(finished) == finished) {
      std::lock_guard<std::mutex> lock(mutex);
      done.notify_all();
    }
  }
};

class Pool {
 public:
  explicit Pool(int threads) : size_(threads) {
    for (int i = 1; i < threads; ++i) std::thread([this] { work(); }).detach();
  }

  int size() const { return size_; }

  void run(int64_t chunks, const std::function<void(int64_t)>& task) {
    std::unique_lock<std::mutex> submit(submit_mutex_, std::try_to_lock);
    auto job = std::make_shared<Job>(task, chunks);
    if (submit.owns_lock() && size_ > 1 && chunks > 1) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        current_ = job;
        ++generation_;
      }
      wake_.notify_all();
    }
    job->take_chunks();
    {
      std::unique_lock<std::mutex> lock(job->mutex);
      job->done.wait(lock, [&] { return job->remaining.load() == 0; });
    }
    if (submit.owns_lock()) {
      std::lock_guard<std::mutex> lock(mutex_);
      current_.reset();
    }
    if (job->error) std::rethrow_exception(job->error);
  }

 private:
  void work() {
    uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen && current_ != nullptr; });
        seen = generation_;
        job = current_;
      }
      job->take_chunks();
    }
  }

  const int size_;
  std::mutex submit_mutex_;  // one pooled loop at a time; others run on their own thread
  std::mutex mutex_;
  std::condition_variable wake_;
  std::shared_ptr<Job> current_;
  uint64_t generation_ = 0;
};

Pool& pool() {
  // Never destroyed: its detached workers sleep on it until the process ends.
  static Pool* p = new Pool(configured_threads());
  return *p;
}

// SerialBlas's bookkeeping: the scopes alive and the count OpenBLAS had before the first.
struct BlasThreads {
  std::mutex mutex;
  int scopes = 0;
  int saved = 0;
};

BlasThreads& blas_threads() {
  static BlasThreads* b = new BlasThreads();  // never destroyed: scopes may outlive statics
  return *b;
}

bool have_openblas() {
  return openblas_set_num_threads != nullptr && openblas_get_num_threads != nullptr;
}

}  // namespace

SerialBlas::SerialBlas() {
  if (!have_openblas()) return;
  BlasThreads& b = blas_threads();
  std::lock_guard<std::mutex> lock(b.mutex);
  if (b.scopes++ == 0) {
    b.saved = openblas_get_num_threads();
    if (b.saved != 1) openblas_set_num_threads(1);
  }
}

SerialBlas::~SerialBlas() {
  if (!have_openblas()) return;
  BlasThreads& b = blas_threads();
  std::lock_guard<std::mutex> lock(b.mutex);
  if (--b.scopes == 0 && b.saved > 1) openblas_set_num_threads(b.saved);
}

int max_threads() { return t_in_parallel ? 1 : pool().size(); }

void run_parallel(int64_t chunks, const std::function<void(int64_t)>& task) {
  if (chunks <= 0) return;
  pool().run(chunks, task);
}

}  // namespace nn::cpu
