"""Our `gpt2` tokenizer against HF transformers' GPT-2 tokenizers, and prepare's speed
against HF tokenizers' encode_batch (issue 18, acceptance 1 and 2). Runs on the GPU machine
(transformers, tokenizers installed; no network: the tokenizers are built from the local
encoder.json + vocab.bpe).

    compare_gpt2_tokenizer.py --attnlab build/attnlab --vocab DIR --work DIR [--mb 200]

1. ids: for each test file (tinyshakespeare, a folder of UTF-8 text in many scripts, random
   bytes), `attnlab prepare --tokenizer gpt2 --val-split tail` of that one file, both splits
   read back, against GPT2TokenizerFast and GPT2Tokenizer on the same text. HF takes Python
   strings: every file is decoded with errors="replace" and that text is what both sides
   encode (for valid UTF-8 it is the file itself; for random bytes our raw-byte behaviour is
   checked in tests/test_gpt2_tokenizer.cpp against GPT-2's encoder.py instead). Also: decode
   of our ids gives back the file's bytes.
2. speed: a corpus of --mb MB (the test texts repeated, as .jsonl documents of ~4 KB) through
   `attnlab prepare --tokenizer gpt2` (all cores, wall time including reading and writing
   shards) and HF tokenizers' encode_batch (all cores, RAYON default) on the same documents.
Prints one JSON line per check; exit 1 if any ids differ."""
import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import time

TEXTS = {
    "cyrillic.txt": "Съешь же ещё этих мягких французских булок, да выпей чаю. Привет, мир!\n",
    "cjk.txt": "日本語のテキスト、中文文本。한국어 텍스트！全角数字１２３と文字ＡＢＣ。\n",
    "arabic.txt": "مرحبا بالعالم، هذا اختبار. الأرقام ١٢٣٤٥ والنص العربي.\n",
    "emoji.txt": "emoji 🙂🙃 👩‍👩‍👧 flags 🇫🇷🇩🇪 ❤️ keycaps 1️⃣ and text between them.\n",
    "combining.txt": "combining: e\u0301 a\u0308 n\u0303 Z\u0351\u0354 \u0915\u093f \u05d0\u05b8\n",
    "spaces.txt": "NBSP:\u00a0here, em\u2003space, ideographic\u3000space, narrow\u202fnbsp, thin\u2009x, zw\u200bsp, NEL\u0085x\u2028y\n",
    "digits.txt": "full-width １２３ ＡＢＣ, superscripts ² ³, fractions ½ ⅓, roman Ⅻ, contractions don't we'll they're I'm\n",
    "punct.txt": "dashes — – quotes “” ‘’ «» … • ·   runs   of spaces\n\n\n\ttabs\t\t<|endoftext|> end\n",
}


def read_shards(paths):
    ids = []
    for p in paths:
        with open(p, "rb") as f:
            head = f.read(64)
            dtype, count = struct.unpack_from("<IQ", head, 12)
            width = 2 if dtype == 1 else 4
            data = f.read(count * width)
            ids.extend(struct.unpack(f"<{count}{'H' if width == 2 else 'I'}", data))
    return ids


def prepare(attnlab, inputs, out, vocab, extra=()):
    cmd = [attnlab, "prepare", "--tokenizer", "gpt2", "--gpt2-vocab", vocab, "--out", out, *extra]
    for i in inputs:
        cmd += ["--input", i]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"prepare failed: {r.stderr.strip()}")
    meta = json.load(open(os.path.join(out, "meta.json")))
    return meta, dt, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--attnlab", required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--tinyshakespeare", default="")
    ap.add_argument("--work", default="/tmp/gpt2tok_compare")
    ap.add_argument("--mb", type=int, default=200)
    a = ap.parse_args()
    try:
        from transformers import GPT2Tokenizer, GPT2TokenizerFast
        import tokenizers
    except Exception as e:  # pragma: no cover
        print(json.dumps({"skipped": f"transformers not importable ({e})"}))
        return 0
    os.makedirs(a.work, exist_ok=True)
    # HF's own layout (vocab.json + merges.txt) loaded with from_pretrained: transformers 5.17
    # builds an empty vocabulary from GPT2TokenizerFast(vocab_file=encoder.json, ...) without a
    # word (36 tokens for 300 MB, only <|endoftext|>), so both are checked on GPT-2's known ids.
    hf_dir = os.path.join(a.work, "hf_gpt2")
    os.makedirs(hf_dir, exist_ok=True)
    shutil.copy(os.path.join(a.vocab, "encoder.json"), os.path.join(hf_dir, "vocab.json"))
    shutil.copy(os.path.join(a.vocab, "vocab.bpe"), os.path.join(hf_dir, "merges.txt"))
    fast = GPT2TokenizerFast.from_pretrained(hf_dir)
    slow = GPT2Tokenizer.from_pretrained(hf_dir)
    for name, t in (("GPT2TokenizerFast", fast), ("GPT2Tokenizer", slow)):
        got = t("Hello world<|endoftext|>")["input_ids"]
        if got != [15496, 995, 50256]:
            print(json.dumps({"error": f"HF {name} from {hf_dir} gives {got} for 'Hello world<|endoftext|>', "
                                       "not GPT-2's [15496, 995, 50256]: the reference is broken"}))
            return 1

    files = {}
    for name, text in TEXTS.items():
        files[name] = (text * 50).encode("utf-8")
    files["all_scripts.txt"] = "".join(TEXTS.values()).encode("utf-8") * 20
    rng = random.Random(1234)
    files["random_bytes.bin.txt"] = bytes(rng.randrange(1, 256) for _ in range(20000))  # no NUL: not "binary"
    if a.tinyshakespeare and os.path.exists(a.tinyshakespeare):
        files["tinyshakespeare.txt"] = open(a.tinyshakespeare, "rb").read()

    bad = 0
    for name, raw in files.items():
        text = raw.decode("utf-8", errors="replace")
        path = os.path.join(a.work, name)
        with open(path, "wb") as f:
            f.write(text.encode("utf-8"))
        out = os.path.join(a.work, "ds_" + name)
        meta, _, _ = prepare(a.attnlab, [path], out, a.vocab, ["--val-split", "tail", "--threads", "4"])
        ours = read_shards([os.path.join(out, s) for s in meta["splits"]["train"]["shards"]]) + read_shards(
            [os.path.join(out, s) for s in meta["splits"]["val"]["shards"]])
        hf_fast = fast(text)["input_ids"]
        hf_slow = slow(text)["input_ids"]
        roundtrip = fast.decode(ours) == text
        ok = ours == hf_fast and ours == hf_slow
        bad += not ok
        first = next((i for i, (x, y) in enumerate(zip(ours, hf_fast)) if x != y), None)
        print(json.dumps({"check": "ids", "file": name, "tokens": len(ours), "equal_fast": ours == hf_fast,
                          "equal_slow": ours == hf_slow, "first_difference": first, "decode_exact": roundtrip,
                          "replaced_invalid_bytes": raw != text.encode("utf-8")}))

    # Speed: the same documents through prepare (all cores) and encode_batch (all cores).
    docs = []
    base = "".join(TEXTS.values())
    if "tinyshakespeare.txt" in files:
        base += files["tinyshakespeare.txt"].decode("utf-8")
    size = 0
    while size < a.mb * 1e6:
        start = rng.randrange(0, max(1, len(base) - 4096))
        d = base[start:start + 4096]
        docs.append(d)
        size += len(d.encode("utf-8"))
    corpus = os.path.join(a.work, "speed.jsonl")
    with open(corpus, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")
    mb = size / 1e6
    meta, dt_ours, _ = prepare(a.attnlab, [corpus], os.path.join(a.work, "ds_speed"), a.vocab,
                               ["--shard-tokens", "100000000"])
    tok = fast.backend_tokenizer
    tok.encode_batch(docs[:1000])  # warm
    t0 = time.perf_counter()
    out = tok.encode_batch(docs)
    dt_hf = time.perf_counter() - t0
    n_hf = sum(len(e.ids) for e in out)
    # less the end-of-text tokens between documents: one fewer than the documents in each split
    n_ours = meta["splits"]["train"]["tokens"] + meta["splits"]["val"]["tokens"] - (len(docs) - 2)
    print(json.dumps({"check": "speed", "mb": round(mb, 1), "cores": os.cpu_count(),
                      "ours_prepare_mb_s": round(mb / dt_ours, 1), "hf_encode_batch_mb_s": round(mb / dt_hf, 1),
                      "ratio": round(dt_hf / dt_ours, 3), "tokens_ours": n_ours, "tokens_hf": n_hf,
                      "tokenizers": tokenizers.__version__}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
