// Distributed tests run their ranks as threads of one process, bootstrapped through the TCP
// rendezvous exactly as separate processes would be: rank 0 listens on a port the kernel
// picks (master_port 0), the other ranks connect to it. Usable from .cpp and .cu tests.
#pragma once
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "distributed/rendezvous.h"

namespace attn::testing {

// Runs body(rendezvous, rank) on `world` ranks, each on its own thread with a connected
// rendezvous (every wait bounded by timeout_s); returns each rank's exception message, ""
// for a rank that finished. rank0_delay holds rank 0 back before it accepts, so that the
// other ranks exercise their connect retry.
inline std::vector<std::string> run_rank_threads(int world, double timeout_s,
                                                 const std::function<void(Rendezvous&, int)>& body,
                                                 std::chrono::milliseconds rank0_delay = std::chrono::milliseconds(0)) {
  DistEnv e0;
  e0.world_size = world, e0.master_port = 0;
  Rendezvous rv0(e0, timeout_s);  // binds now, so the port is known before any rank starts
  const int port = rv0.port();
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        std::unique_ptr<Rendezvous> own;
        if (r > 0) {
          DistEnv e = e0;
          e.rank = r, e.master_port = port;
          own = std::make_unique<Rendezvous>(e, timeout_s);
        }
        if (r == 0) std::this_thread::sleep_for(rank0_delay);
        Rendezvous& rv = r == 0 ? rv0 : *own;
        rv.connect();
        body(rv, r);
      } catch (const std::exception& ex) {
        errors[r] = ex.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

}  // namespace attn::testing
