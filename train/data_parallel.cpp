#include "train/data_parallel.h"

#include <cstring>
#include <functional>

#include <fmt/format.h>

#include "core/device.h"
#include "core/error.h"
#include "core/rng.h"
#include "distributed/devices.h"
#include "distributed/tcp_comm.h"

namespace attn {

namespace {

// FNV-1a of the effective config: a cheap, stable fingerprint to compare across ranks.
std::string config_fingerprint(const std::string& toml) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : toml) h = (h ^ c) * 1099511628211ull;
  return fmt::format("{:016x}", h);
}

}  // namespace

DataParallelRun::DataParallelRun(const DistEnv& env, const Config& cfg, const std::string& config_toml) : env_(env) {
  if (!active()) return;
  rv_ = std::make_unique<Rendezvous>(env_, static_cast<double>(cfg.distributed.timeout_s));
  rv_->connect();
  require_same_on_all_ranks(*rv_, "config (hash of the effective config; start every rank with the same one)",
                            config_fingerprint(config_toml));
  if (resolve_device(cfg.device.backend) == "cuda") use_cuda_device(env_.local_rank);
}

void DataParallelRun::attach(Backend& backend, const Config& cfg) {
  if (!active()) return;
  if (backend.name() == "cuda")
    comm_ = make_nccl_communicator(*rv_, env_.local_rank);
  else
    comm_ = make_tcp_communicator(*rv_);
  backend.enable_data_parallel(*comm_, cfg.distributed.zero == 1, static_cast<size_t>(cfg.distributed.bucket_mb) << 20);
}

std::vector<double> DataParallelRun::sum(const std::vector<double>& mine) {
  if (!active()) return mine;
  Blob blob(mine.size() * sizeof(double));
  if (!mine.empty()) std::memcpy(blob.data(), mine.data(), blob.size());
  const std::vector<Blob> all = rv_->all_gather(blob);
  std::vector<double> out(mine.size(), 0.0);
  for (int r = 0; r < world_size(); ++r) {
    ATTN_CHECK(all[r].size() == blob.size(), "rank {} sent {} bytes of scalars, expected {}", r, all[r].size(),
               blob.size());
    const double* d = reinterpret_cast<const double*>(all[r].data());
    for (size_t i = 0; i < out.size(); ++i) out[i] += d[i];
  }
  return out;
}

}  // namespace attn
