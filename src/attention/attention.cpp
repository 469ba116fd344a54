#include "attention/attention.h"

namespace attn {

double alibi_slope(int h, int n_head) { return Alibi::slope<double>(h, n_head); }

}  // namespace attn
