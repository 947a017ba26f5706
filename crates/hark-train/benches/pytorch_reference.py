"""PyTorch measuring stick for hark's training speed (not part of the product).

The same network as `hark_model::AcousticModel` (stride-2 conv stem, residual
depthwise-separable blocks with layer norm, linear head, log-softmax), the
same CTC loss and AdamW, the same synthetic batch as `benches/train_step.rs`.
Written the way a PyTorch user would: channel-major Conv1d layers.
Prints one JSON line: {"backend", "threads", "channels", "blocks", "batch",
"audio_per_s", "s_per_step"}.

    python3 pytorch_reference.py --threads 2 --channels 256 --blocks 8 --kernel 11
"""
import argparse
import json
import math
import time

import torch
from torch import nn


class ChannelNorm(nn.Module):
    """LayerNorm over channels of a [batch, channels, frames] tensor."""

    def __init__(self, c):
        super().__init__()
        self.norm = nn.LayerNorm(c)

    def forward(self, x):
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class Block(nn.Module):
    def __init__(self, c, k):
        super().__init__()
        self.dw = nn.Conv1d(c, c, k, padding=k // 2, groups=c, bias=False)
        self.pw = nn.Conv1d(c, c, 1, bias=False)
        self.norm = ChannelNorm(c)

    def forward(self, x):
        return torch.relu(self.norm(self.pw(self.dw(x))) + x)


class Model(nn.Module):
    def __init__(self, mels=80, vocab=29, c=256, blocks=8, k=11):
        super().__init__()
        self.stem = nn.Conv1d(mels, c, k, stride=2, padding=k // 2)
        self.stem_norm = ChannelNorm(c)
        self.blocks = nn.Sequential(*[Block(c, k) for _ in range(blocks)])
        self.head = nn.Conv1d(c, vocab, 1)

    def forward(self, x):
        x = torch.relu(self.stem_norm(self.stem(x)))
        x = self.blocks(x)
        return torch.log_softmax(self.head(x).transpose(1, 2), dim=2)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--kernel", type=int, default=11)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=400)
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Model(c=a.channels, blocks=a.blocks, k=a.kernel)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3)
    ctc = nn.CTCLoss(zero_infinity=True)
    i = torch.arange(a.frames * 80, dtype=torch.float32)
    x = torch.stack([torch.sin((i * 7 + b) * 0.013).reshape(a.frames, 80).T for b in range(a.batch)])
    text = "weather in san francisco tomorrow"
    tgt = torch.tensor([[2 + (ord(ch) - 96) if ch != " " else 2 for ch in text]] * a.batch)
    out_len = torch.full((a.batch,), math.ceil(a.frames / 2), dtype=torch.long)
    tgt_len = torch.full((a.batch,), len(text), dtype=torch.long)

    def step():
        opt.zero_grad()
        lp = model(x).transpose(0, 1)
        loss = ctc(lp, tgt, out_len, tgt_len)
        loss.backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    secs = time.perf_counter() - start
    audio = a.batch * a.frames * a.steps / 100.0
    print(json.dumps({
        "backend": "pytorch-cpu " + torch.__version__,
        "threads": a.threads,
        "channels": a.channels,
        "blocks": a.blocks,
        "batch": a.batch,
        "audio_per_s": round(audio / secs, 1),
        "s_per_step": round(secs / a.steps, 4),
    }))


if __name__ == "__main__":
    main()
