// Tokenizing on every core, with the same ids as one encode() call per text.
//
// Each text is cut into pieces of about kEncodeChunkBytes at "safe cuts": just after a
// '\n' that has a printable ASCII character (not a space) on each side. There, every
// tokenizer here (GPT-2's regex, our byte-level approximation of it, characters) makes the
// '\n' a word of its own, in the whole text and at the end of the piece before the cut
// alike (a longer whitespace run would not do: at the end of a text "\s+(?!\S)" takes the
// whole run, inside it the run's last character is left to the next word), and a word
// depends only on the text from its start onwards, so encoding the pieces one by one and
// joining the ids gives exactly the ids of the whole text. Pieces are encoded by a
// pool of threads and joined in order: the output does not depend on the thread count.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"

namespace attn {

constexpr size_t kEncodeChunkBytes = size_t{1} << 20;

// The first safe cut at or after `from` (text.size() when there is none).
size_t next_safe_cut(std::string_view text, size_t from);

// ids[i] = tokenizer.encode(texts[i]), computed on `threads` threads (0: all cores).
// The first attn::Error thrown by an encode is rethrown (the text's index is in `failed`).
std::vector<std::vector<int32_t>> encode_in_parallel(const Tokenizer& tokenizer, std::span<const std::string_view> texts,
                                                     int threads, size_t* failed = nullptr);

// Worker threads to use for `threads` (0: std::thread::hardware_concurrency()).
int encode_threads(int threads);

}  // namespace attn
