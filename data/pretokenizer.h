// GPT-2's pre-tokenizer: splits text into "words" that BPE merges never cross.
//
// Two hand-written equivalents of GPT-2's regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// for_each_gpt2_word (the `gpt2` tokenizer) is the regex itself, over code points with
// the Unicode classes of utf8proc: \p{L} = categories Lu Ll Lt Lm Lo, \p{N} = Nd Nl No,
// \s = the White_Space property (Zs, Zl, Zp, U+0009..000D, U+0085), as HF tokenizers'
// (Oniguruma) and tiktoken's regex engines define them. A byte that is not part of
// well-formed UTF-8 counts as one "other" code point ([^\s\p{L}\p{N}]), which is what
// GPT-2's own code does with such a byte decoded by errors="surrogateescape" (a lone
// surrogate, category Cs), and where errors="replace" puts U+FFFD (So, also "other").
//
// for_each_word (our `bpe` tokenizer, kept for its saved vocabularies) approximates it
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

// The same for GPT-2's regex with Unicode classes.
size_t next_gpt2_word_end(std::string_view text, size_t begin);

// The regex's classes of one code point (utf8proc's tables).
enum class CharClass { Letter, Number, Space, Other };
CharClass gpt2_char_class(char32_t cp);

// Calls on_word(std::string_view) for each word of text, in order, words ending where
// next_end (next_word_end or next_gpt2_word_end) says.
template <typename F>
void for_each_piece(std::string_view text, size_t (*next_end)(std::string_view, size_t), F&& on_word) {
  for (size_t i = 0, end; i < text.size(); i = end) {
    end = next_end(text, i);
    on_word(text.substr(i, end - i));
  }
}

template <typename F>
void for_each_word(std::string_view text, F&& on_word) {
  for_each_piece(text, next_word_end, on_word);
}

template <typename F>
void for_each_gpt2_word(std::string_view text, F&& on_word) {
  for_each_piece(text, next_gpt2_word_end, on_word);
}

}  // namespace attn
