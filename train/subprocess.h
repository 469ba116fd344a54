// Running another program and waiting for it: ablate's cells (one `attnlab bench` process
// each), its PyTorch peers and scripts/plot.py.
#pragma once
#include <string>
#include <vector>

namespace attn {

// Runs `exe args...` (a bare name is looked up on PATH) and returns its wait status.
// log_path: the file that receives its stdout and stderr; "" keeps ours. A program that
// cannot be started exits 127, as in a shell.
int run_process(const std::string& exe, const std::vector<std::string>& args, const std::string& log_path = "");

// The output of a shell command line (popen), "" when it fails; for small queries such as
// `nvidia-smi --query-gpu=...` or `git rev-parse HEAD`.
std::string command_output(const std::string& command_line);

}  // namespace attn
