// Where a measurement was taken: <dir>/env.json, written by `ablate` and `bench-generate` next
// to their results, read by `attnlab report`. GPUs, driver and CUDA come from nvidia-smi and the
// build; the commit from `git rev-parse HEAD` in the working directory ($ATTN_COMMIT overrides,
// for copies of a tree without .git); the command line from /proc/self/cmdline.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace attn {

// backend: the one the measurements run on ("cpu" or "cuda").
nlohmann::json describe_environment(const std::string& backend);

// Writes describe_environment(backend) to <dir>/env.json.
void write_environment(const std::string& dir, const std::string& backend);

}  // namespace attn
