// GPT-2-style pre-tokenizer: splits text into "words" that BPE merges never cross.
//
// A hand-written equivalent of GPT-2's regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// over bytes: letters are A-Z, a-z and every byte >= 0x80 (so multi-byte UTF-8
// sequences, valid or not, stay inside words), digits are 0-9, whitespace is
// space, \t, \n, \v, \f, \r, everything else (NUL included) is "other".
// The pieces always partition the input exactly, which is what makes byte-level
// BPE round trips exact on arbitrary bytes.
#pragma once
#include <cstddef>
#include <string_view>

namespace attn {

// End (exclusive) of the word that starts at `begin` (< text.size()).
size_t next_word_end(std::string_view text, size_t begin);

// Calls on_word(std::string_view) for each word of text, in order.
template <typename F>
void for_each_word(std::string_view text, F&& on_word) {
  size_t i = 0;
  while (i < text.size()) {
    const size_t end = next_word_end(text, i);
    on_word(text.substr(i, end - i));
    i = end;
  }
}

}  // namespace attn
