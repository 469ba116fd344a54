// mbarrier helpers: the shared-memory barriers that order a producer's TMA loads with the
// consumers that read them (and the consumers' release of a buffer with its next load).
//
// An mbarrier counts arrivals and (for TMA) transaction bytes. A phase completes when the
// expected arrivals have arrived and the byte count is back to zero; then the phase bit flips.
// A waiter names the parity of the phase it waits for:
//   - consumers of buffer s at its u-th use wait "full" with parity u & 1;
//   - the producer, before its u-th load into s, waits "empty" with parity (u & 1) ^ 1: on a
//     fresh barrier the phase "before 0" counts as complete, so the first wait passes at once.
// Addresses are shared-state-space (32-bit) addresses of 8-byte aligned uint64_t slots.
#pragma once
#include <cstdint>

namespace attn::tiles {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// One thread initializes; then fence_barrier_init() and a CTA-wide barrier before any use.
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(arrivals) : "memory");
}
__device__ __forceinline__ void fence_barrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

// One arrival.
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

// One arrival that also announces `bytes` of TMA transactions to come on this phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}

// Block until the phase of the given parity has completed.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT_AGAIN:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_AGAIN;\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// A ring of `Stages` buffers, each guarded by a "full" barrier (the producer's load landed) and
// an "empty" barrier (every consumer is done reading). Use index u counts every load ever issued
// into the ring (the producer's and the consumers' counters advance in the same order).
template <int Stages>
struct RingBarriers {
  uint64_t full[Stages];
  uint64_t empty[Stages];

  // `consumers`: arrivals that release a buffer. Called by one thread.
  __device__ void init(uint32_t consumers) {
    for (int s = 0; s < Stages; ++s) {
      mbar_init(smem_addr(&full[s]), 1);  // the producer's arrive_expect_tx
      mbar_init(smem_addr(&empty[s]), consumers);
    }
  }
  static __device__ __forceinline__ int stage(uint32_t use) { return static_cast<int>(use % Stages); }
  static __device__ __forceinline__ uint32_t parity(uint32_t use) { return (use / Stages) & 1u; }
  __device__ __forceinline__ uint32_t full_bar(uint32_t use) { return smem_addr(&full[stage(use)]); }
  __device__ __forceinline__ uint32_t empty_bar(uint32_t use) { return smem_addr(&empty[stage(use)]); }

  // Producer: wait until the buffer of `use` is free, then announce `bytes` of loads into it.
  __device__ __forceinline__ uint32_t acquire(uint32_t use, uint32_t bytes) {
    mbar_wait(empty_bar(use), parity(use) ^ 1u);
    mbar_arrive_expect_tx(full_bar(use), bytes);
    return full_bar(use);
  }
  // Consumer: wait until the load of `use` has landed.
  __device__ __forceinline__ void wait_full(uint32_t use) { mbar_wait(full_bar(use), parity(use)); }
  // Consumer: this arrival's share of releasing the buffer of `use`.
  __device__ __forceinline__ void release(uint32_t use) { mbar_arrive(empty_bar(use)); }
};

}  // namespace attn::tiles
