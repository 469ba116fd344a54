// Shards changed under a running trainer. Shards are memory-mapped (shard.h): re-running
// `prepare` replaces a file by rename (the mapping keeps the old inode: reads stay valid but
// the run no longer matches its data), and truncating one in place makes the next read of a
// page past the new end raise SIGBUS. Both become one error line naming the shard:
//   - ShardWatch remembers (inode, size, mtime) of every shard at the start; check() compares
//     (a stat per shard, called at each checkpoint and evaluation);
//   - the SIGBUS handler looks the faulting address up among the live mappings.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace attn {

class ShardWatch {
 public:
  explicit ShardWatch(const std::vector<std::string>& paths);
  // Throws attn::Error "shard P changed while training (...)" when one differs.
  void check() const;

 private:
  struct Seen {
    std::string path;
    uint64_t inode = 0, bytes = 0;
    int64_t mtime_ns = 0;
  };
  std::vector<Seen> seen_;
};

// Mappings the SIGBUS handler can name (shard.cpp registers each Shard's map).
void register_shard_mapping(const void* begin, size_t bytes, const std::string& path);
void unregister_shard_mapping(const void* begin);
// Installs the SIGBUS handler: a fault inside a registered mapping prints
// "error: shard P changed while training (truncated under the memory map)" and exits 1.
void install_shard_fault_handler();

}  // namespace attn
