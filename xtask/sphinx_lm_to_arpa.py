"""Writes PocketSphinx's shipped US English LM (`en-us.lm.bin`) as an ARPA file.

`cargo xtask lm` runs this in the PocketSphinx virtual environment; `hark lm
--arpa` then prunes the ARPA file into hark's own binary general LM.

Why not PocketSphinx's own writer: `NGramModel.write(..., 'arpa')` in
pocketsphinx 5.1.1 crashes on this very model (its header declares 2,051,547
bigrams, its trie holds 2,051,541: upstream issue 502, fixed after 5.1.1), and
the bigram section is cut off when it dies. So this script reads the trie
format itself (pocketsphinx's `src/lm/ngram_model_trie.c`, `lm_trie.c`,
`lm_trie_quant.c`, `bitarr.c`: a KenLM-style trie keyed by the predicted word,
then the previous word, then the one before; 16-bit quantized probabilities
and backoffs of higher orders, float unigrams; log base 1.0001), and
checks what it wrote against PocketSphinx's own scores for n-grams drawn at
random before it reports success.

Usage: python sphinx_lm_to_arpa.py OUT.arpa [LM.bin]
"""

import math
import os
import random
import sys

import numpy as np

HEADER = b"Trie Language Model"
LN_BASE = math.log(1.0001)  # pocketsphinx's default logmath base
LOG10_PER_UNIT = LN_BASE / math.log(10.0)


def required_bits(max_value):
    return int(max_value).bit_length()


def base_size(entries, max_vocab, remaining_bits):
    total_bits = required_bits(max_vocab) + remaining_bits
    return ((1 + entries) * total_bits + 7) // 8 + 8


class Packed:
    """A bit-packed array of fixed-width records (bitarr.c: little-endian)."""

    def __init__(self, mem, total_bits):
        self.mem = np.concatenate([np.frombuffer(mem, dtype=np.uint8), np.zeros(8, dtype=np.uint8)])
        self.total_bits = total_bits

    def field(self, index, offset, bits):
        """Field `bits` wide at `offset` bits into records `index` (an array)."""
        at = index.astype(np.uint64) * np.uint64(self.total_bits) + np.uint64(offset)
        byte = (at >> np.uint64(3)).astype(np.int64)
        shift = at & np.uint64(7)
        word = np.zeros(len(byte), dtype=np.uint64)
        for k in range(8):
            word |= self.mem[byte + k].astype(np.uint64) << np.uint64(8 * k)
        return ((word >> shift) & np.uint64((1 << bits) - 1)).astype(np.int64)


def read(path):
    data = open(path, "rb").read()
    if not data.startswith(HEADER):
        sys.exit(f"{path} is not a PocketSphinx trie LM (no '{HEADER.decode()}' header)")
    at = len(HEADER)
    order = data[at]
    at += 1
    if order != 3:
        sys.exit(f"{path}: order {order}; this reader handles trigram models")
    counts = list(np.frombuffer(data, dtype="<u4", count=order, offset=at))
    at += 4 * order + 4  # + the quantizer's former type field
    table = 1 << 16
    quant = np.frombuffer(data, dtype="<f4", count=3 * table, offset=at)
    mid_prob, mid_bo, long_prob = quant[:table], quant[table : 2 * table], quant[2 * table :]
    at += 4 * 3 * table
    uni = np.frombuffer(data, dtype=[("prob", "<f4"), ("bo", "<f4"), ("next", "<u4")], count=counts[0] + 1, offset=at)
    at += 12 * (counts[0] + 1)
    word_bits = required_bits(counts[0])
    next_bits = required_bits(counts[2])
    mid_size = base_size(counts[1], counts[0], 32 + next_bits)
    long_size = base_size(counts[2], counts[0], 16)
    middle = Packed(data[at : at + mid_size], word_bits + 32 + next_bits)
    longest = Packed(data[at + mid_size : at + mid_size + long_size], word_bits + 16)
    at += mid_size + long_size
    n = int(np.frombuffer(data, dtype="<i4", count=1, offset=at)[0])
    words = data[at + 4 : at + 4 + n].split(b"\0")[: counts[0]]
    words = [w.decode("utf-8") for w in words]
    if len(words) != counts[0]:
        sys.exit(f"{path}: {len(words)} word strings for {counts[0]} unigrams")

    # Bigrams: the middle records under unigram w are its history words h.
    begin, end = uni["next"][:-1].astype(np.int64), uni["next"][1:].astype(np.int64)
    n2 = int(end[-1])
    idx2 = np.arange(n2)
    w2 = np.repeat(np.arange(counts[0]), end - begin)
    h2 = middle.field(idx2, 0, word_bits)
    bo2 = mid_bo[middle.field(idx2, word_bits, 16)]
    p2 = mid_prob[middle.field(idx2, word_bits + 16, 16)]
    nxt = middle.field(np.arange(n2 + 1), word_bits + 32, next_bits)
    # Trigrams: the longest records under bigram (h, w) are the words g before h.
    n3 = int(nxt[-1])
    idx3 = np.arange(n3)
    parent = np.repeat(idx2, nxt[1:] - nxt[:-1])
    g3 = longest.field(idx3, 0, word_bits)
    p3 = long_prob[longest.field(idx3, word_bits, 16)]
    return words, uni[:-1], (h2, w2, p2, bo2), (g3, h2[parent], w2[parent], p3)


def write_arpa(out, words, uni, bigrams, trigrams):
    to10 = lambda x: x * LOG10_PER_UNIT  # noqa: E731
    h2, w2, p2, bo2 = bigrams
    g3, h3, w3, p3 = trigrams
    with open(out, "w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        f.write(f"ngram 1={len(words)}\nngram 2={len(h2)}\nngram 3={len(g3)}\n\n\\1-grams:\n")
        for w, (p, bo, _) in zip(words, uni):
            f.write(f"{to10(p):.5f}\t{w}\t{to10(bo):.5f}\n")
        f.write("\n\\2-grams:\n")
        for h, w, p, bo in zip(h2.tolist(), w2.tolist(), to10(p2).tolist(), to10(bo2).tolist()):
            f.write(f"{p:.5f}\t{words[h]} {words[w]}\t{bo:.5f}\n")
        f.write("\n\\3-grams:\n")
        for g, h, w, p in zip(g3.tolist(), h3.tolist(), w3.tolist(), to10(p3).tolist()):
            f.write(f"{p:.5f}\t{words[g]} {words[h]} {words[w]}\n")
        f.write("\n\\end\\\n")


def score(words, uni, bigrams, trigrams):
    """log10 P(w | g h) with backoff, from the tables as read (for the check)."""
    h2, w2, p2, bo2 = bigrams
    g3, h3, w3, p3 = trigrams
    big = {(h, w): (p, bo) for h, w, p, bo in zip(h2.tolist(), w2.tolist(), p2.tolist(), bo2.tolist())}
    tri = {(g, h, w): p for g, h, w, p in zip(g3.tolist(), h3.tolist(), w3.tolist(), p3.tolist())}

    def lp(g, h, w):
        if (g, h, w) in tri:
            return tri[(g, h, w)] * LOG10_PER_UNIT
        bo = big[(g, h)][1] if (g, h) in big else 0.0
        if (h, w) in big:
            return (bo + big[(h, w)][0]) * LOG10_PER_UNIT
        return (bo + float(uni["bo"][h]) + float(uni["prob"][w])) * LOG10_PER_UNIT

    return lp, list(tri), list(big)


def check(lm_path, words, uni, bigrams, trigrams, samples=3000):
    """Our reading must score n-grams as PocketSphinx itself does."""
    import pocketsphinx

    # `prob` takes the predicted word first, then its history, nearest first.
    model = pocketsphinx.NGramModel.readfile(lm_path)
    lp, tri, big = score(words, uni, bigrams, trigrams)
    rng = random.Random(18)
    cases = [rng.choice(tri) for _ in range(samples)]  # trigrams stored
    cases += [(rng.choice(big)[0], *rng.choice(big)) for _ in range(samples)]  # mostly backed off
    worst = 0.0
    for g, h, w in cases:
        ours = lp(g, h, w)
        theirs = model.prob([words[w], words[h], words[g]]) * LOG10_PER_UNIT
        worst = max(worst, abs(ours - theirs))
    if worst > 1e-3:
        sys.exit(f"the trie reading disagrees with PocketSphinx by up to {worst:.4f} (log10) on {len(cases)} trigrams")
    return len(cases), worst


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out = sys.argv[1]
    if len(sys.argv) == 3:
        lm_path = sys.argv[2]
    else:
        import pocketsphinx

        lm_path = os.path.join(pocketsphinx.get_model_path(), "en-us", "en-us.lm.bin")
    words, uni, bigrams, trigrams = read(lm_path)
    checked, worst = check(lm_path, words, uni, bigrams, trigrams)
    write_arpa(out, words, uni, bigrams, trigrams)
    print(
        f"{lm_path}: {len(words)} unigrams, {len(bigrams[0])} bigrams, {len(trigrams[0])} trigrams -> {out} "
        f"(checked against PocketSphinx on {checked} trigrams: within {worst:.1e} log10)"
    )


if __name__ == "__main__":
    main()
