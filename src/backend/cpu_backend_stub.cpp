// LOCAL STUB (uncommitted): the CPU backend is not merged into this branch yet.
#include "backend/cpu_backend.h"
#include "core/error.h"
namespace attn {
std::unique_ptr<Backend> make_cpu_backend(const GPTConfig&, const BackendOptions&) {
  fail("cpu backend: local stub");
}
}  // namespace attn
