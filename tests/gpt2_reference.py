"""GPT-2's tokenizer as OpenAI published it (gpt-2/src/encoder.py: bytes_to_unicode, the
regex, bpe() merging the lowest-ranked pair everywhere at once), as an independent
reference for attnlab's C++ `gpt2` tokenizer.

    gpt2_reference.py VOCAB_DIR IN_FILE OUT_FILE   # ids of IN_FILE's bytes, one per line

Bytes that are not valid UTF-8 are decoded with errors="surrogateescape" (a lone surrogate
per byte, "other" for the regex) and encoded back the same way, so the ids cover exactly
the input bytes. "<|endoftext|>" in the text becomes the special token 50256 (HF's and
tiktoken's allowed_special="all").
Needs the `regex` module (Debian python3-regex); exits 77 (skip) without it."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from import_or_skip import import_or_skip  # noqa: E402

(regex,) = import_or_skip("regex")

PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
EOT = "<|endoftext|>"


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def get_pairs(word):
    return {(word[i], word[i + 1]) for i in range(len(word) - 1)}


class Encoder:
    def __init__(self, vocab_dir):
        with open(os.path.join(vocab_dir, "encoder.json"), encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(os.path.join(vocab_dir, "vocab.bpe"), encoding="utf-8") as f:
            merges = [tuple(line.split()) for line in f.read().split("\n")[1:] if line]
        self.ranks = dict(zip(merges, range(len(merges))))
        self.byte_encoder = bytes_to_unicode()
        self.cache = {}

    def bpe(self, token):  # encoder.py's bpe(), unchanged in substance
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        pairs = get_pairs(word)
        if not pairs:
            return [token]
        while True:
            bigram = min(pairs, key=lambda pair: self.ranks.get(pair, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        self.cache[token] = list(word)
        return list(word)

    def encode_ordinary(self, text):
        ids = []
        for token in regex.findall(PATTERN, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8", "surrogateescape"))
            ids.extend(self.encoder[t] for t in self.bpe(token))
        return ids

    def encode(self, text):
        ids = []
        for i, part in enumerate(text.split(EOT)):
            if i:
                ids.append(self.encoder[EOT])
            ids.extend(self.encode_ordinary(part))
        return ids


def main():
    vocab_dir, in_file, out_file = sys.argv[1:4]
    with open(in_file, "rb") as f:
        text = f.read().decode("utf-8", "surrogateescape")
    ids = Encoder(vocab_dir).encode(text)
    with open(out_file, "w") as f:
        f.write("\n".join(map(str, ids)) + "\n")


if __name__ == "__main__":
    main()
