// SIGINT/SIGTERM during training: the first one asks the loop to stop after the current
// step (it then saves a checkpoint and exits cleanly); a second one ends the process.
#pragma once

namespace attn {
void install_stop_handlers();
bool stop_requested();
void request_stop();        // for tests: as if a signal had come
void clear_stop_request();  // for tests: back to no request
}  // namespace attn
