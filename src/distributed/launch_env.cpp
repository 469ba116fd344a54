#include "distributed/launch_env.h"

#include <cerrno>
#include <climits>
#include <cstdlib>

#include "core/error.h"

extern char** environ;

namespace attn {

namespace {

// The integer value of env[name]; throws naming the variable when it is not one.
int parse_int(const std::map<std::string, std::string>& env, const std::string& name) {
  const std::string& s = env.at(name);
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE || v < INT_MIN || v > INT_MAX)
    fail("{}='{}' is not an integer", name, s);
  return static_cast<int>(v);
}

struct Launcher {
  const char* source;
  const char* rank;
  const char* world;
  const char* local;
};

constexpr Launcher kLaunchers[] = {
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
    {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
};

}  // namespace

DistEnv detect_dist_env(const std::map<std::string, std::string>& env) {
  DistEnv d;
  d.source = "none";
  auto has = [&](const char* k) { return env.count(k) > 0; };
  for (const Launcher& l : kLaunchers) {
    if (!has(l.rank) && !has(l.world)) continue;
    ATTN_CHECK(has(l.rank), "{} is set but {} is not (both are needed for a {} launch)", l.world, l.rank, l.source);
    ATTN_CHECK(has(l.world), "{} is set but {} is not (both are needed for a {} launch)", l.rank, l.world, l.source);
    d.source = l.source;
    d.world_size = parse_int(env, l.world);
    ATTN_CHECK(d.world_size >= 1, "{}={} must be >= 1", l.world, d.world_size);
    d.rank = parse_int(env, l.rank);
    ATTN_CHECK(d.rank >= 0 && d.rank < d.world_size, "{}={} is out of range for {}={}", l.rank, d.rank, l.world,
               d.world_size);
    d.local_rank = has(l.local) ? parse_int(env, l.local) : d.rank;
    ATTN_CHECK(d.local_rank >= 0 && d.local_rank < d.world_size, "{}={} is out of range for {}={}", l.local,
               d.local_rank, l.world, d.world_size);
    break;
  }
  if (has("MASTER_ADDR")) {
    d.master_addr = env.at("MASTER_ADDR");
    ATTN_CHECK(!d.master_addr.empty(), "MASTER_ADDR is set but empty");
  }
  if (has("MASTER_PORT")) {
    d.master_port = parse_int(env, "MASTER_PORT");
    ATTN_CHECK(d.master_port >= 1 && d.master_port <= 65535, "MASTER_PORT={} is not a port (1..65535)",
               d.master_port);
  }
  return d;
}

std::map<std::string, std::string> process_env() {
  std::map<std::string, std::string> out;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv(*e);
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) out.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return out;
}

}  // namespace attn
