// A small synthetic English-like dataset for the training tests: 6000 words drawn from a
// fixed list of 12 (a sentence ends every 9 words), prepared with the char tokenizer and a
// 10% validation split, so a tiny model learns it visibly within a few steps.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "data/prepare.h"

namespace attn::testing {

// Writes root/text/corpus.txt (word order from `seed`), prepares it into root/data and
// returns root/data.
inline std::filesystem::path make_word_dataset(const std::filesystem::path& root, uint32_t seed) {
  static const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home"};
  std::mt19937 rng(seed);
  std::filesystem::create_directories(root / "text");
  std::ofstream out(root / "text" / "corpus.txt");
  for (int i = 0; i < 6000; ++i) out << words[rng() % 12] << (i % 9 == 8 ? ".\n" : " ");
  out.close();
  PrepareOptions p;
  p.inputs = {(root / "text").string()};
  p.out_dir = (root / "data").string();
  p.tokenizer = "char";
  p.val_fraction = 0.1;
  prepare_dataset(p, [](const std::string&) {});
  return root / "data";
}

}  // namespace attn::testing
