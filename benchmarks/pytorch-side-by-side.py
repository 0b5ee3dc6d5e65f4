#!/usr/bin/env python3
"""PyTorch + transformers fp16 on the same synthetic HF checkpoints as `glowq bench`, merged into its report.

Runs where PyTorch and a CUDA GPU are (the GPU machines; not CI). For each prompt length it measures, like
`glowq bench` (src/GlowQ.Runtime/Benchmarks/LatencyBenchmark.cs):

  - TTFB: the prompt's forward pass and the greedy choice of the first token (torch.cuda.synchronize around it);
  - decode tokens/s: the remaining --gen - 1 tokens, one forward pass each with the KV cache;

with the same prompt token ids (the same xorshift stream), --warmup unmeasured runs, then median/min/max over --repeats.

    python3 benchmarks/pytorch-side-by-side.py --model /tmp/syn1b --prompt-lengths 16,128,512,2048 --gen 128 \\
        --repeats 5 --merge out/report.json --out out

writes out/pytorch.json and out/pytorch.md; with --merge, the markdown also sets each glowq configuration of the
report (same file stem) beside PyTorch fp16 at the same prompt length (decode and TTFB ratios).
"""

import argparse
import json
import os
import statistics
import sys
import time

MASK64 = (1 << 64) - 1


def prompt_tokens(length, vocab):
    """The prompt LatencyBenchmark.FillPrompt makes: a fixed xorshift64 stream, ids from min(3, vocab-1) up."""
    state = 0x9E3779B97F4A7C15
    low = min(3, vocab - 1)
    tokens = []
    for _ in range(length):
        state ^= (state << 13) & MASK64
        state ^= state >> 7
        state ^= (state << 17) & MASK64
        tokens.append(low + state % (vocab - low))
    return tokens


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(model, torch, vocab, length, generate, device):
    ids = torch.tensor([prompt_tokens(length, vocab)], device=device)
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        token = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
        torch.cuda.synchronize()
        first = time.perf_counter()
        past = out.past_key_values
        for _ in range(generate - 1):
            out = model(input_ids=token, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
        torch.cuda.synchronize()
    end = time.perf_counter()
    return (first - start), (end - first)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="HF checkpoint directory (e.g. from `glowq synth`); required unless --print-prompt")
    parser.add_argument("--prompt-lengths", default="16,128,512,2048")
    parser.add_argument("--gen", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--merge", help="a glowq bench report.json to compare with")
    parser.add_argument("--out", default=".")
    parser.add_argument("--print-prompt", type=int, metavar="N", help="print the first N prompt ids for --vocab and exit")
    parser.add_argument("--vocab", type=int, default=512)
    args = parser.parse_args()

    if args.print_prompt:
        print(",".join(str(t) for t in prompt_tokens(args.print_prompt, args.vocab)))
        return 0

    if not args.model:
        parser.error("--model is required")

    lengths = [int(x) for x in args.prompt_lengths.split(",")]
    if args.gen < 2 or args.repeats < 1 or args.warmup < 0 or any(l < 1 for l in lengths):
        print("pytorch-side-by-side: --gen must be >= 2, --repeats >= 1, --warmup >= 0, prompt lengths >= 1", file=sys.stderr)
        return 2

    import torch
    import transformers

    if not torch.cuda.is_available():
        print("pytorch-side-by-side: no CUDA device; this comparison runs on a GPU machine", file=sys.stderr)
        return 1

    device = torch.device("cuda")
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float16).to(device).eval()
    vocab = model.config.vocab_size
    max_positions = getattr(model.config, "max_position_embeddings", None)
    results = []
    for length in lengths:
        if max_positions is not None and length + args.gen > max_positions:
            print(f"pytorch-side-by-side: skipping prompt length {length} (exceeds {max_positions} positions with --gen {args.gen})", file=sys.stderr)
            continue
        ttfb, prefill, decode = [], [], []
        for run in range(args.warmup + args.repeats):
            print(f"pytorch-side-by-side: prompt {length}, {'warm-up' if run < args.warmup else 'run'} {run + 1}", file=sys.stderr)
            first, rest = measure(model, torch, vocab, length, args.gen, device)
            if run < args.warmup:
                continue
            ttfb.append(first * 1000)
            prefill.append(length / first)
            decode.append((args.gen - 1) / rest)
        results.append({"prompt_tokens": length, "ttfb_ms": spread(ttfb),
                        "prefill_tokens_per_second": spread(prefill), "decode_tokens_per_second": spread(decode)})

    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(sys.argv),
        "runtime": f"PyTorch {torch.__version__} + transformers {transformers.__version__}, fp16, greedy, KV cache",
        "device": torch.cuda.get_device_name(0),
        "driver": torch.version.cuda,
        "model": os.path.basename(os.path.normpath(args.model)),
        "generated_tokens": args.gen, "repeats": args.repeats, "warmup_runs": args.warmup,
        "prompts": results,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "pytorch.json"), "w") as f:
        json.dump(report, f, indent=2)

    lines = [f"# PyTorch fp16 side by side: {report['date']}", "",
             f"- {report['runtime']} on {report['device']} (CUDA {report['driver']}); model {report['model']}",
             f"- {args.gen} generated tokens, {args.warmup} warm-up + {args.repeats} runs, median (min-max); `{report['command']}`", "",
             "| runtime | prompt | TTFB ms | prefill tok/s | decode tok/s |", "|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| pytorch fp16 | {r['prompt_tokens']} | {r['ttfb_ms']['median']:.2f} | "
                     f"{r['prefill_tokens_per_second']['median']:.0f} | {r['decode_tokens_per_second']['median']:.1f} |")
    if args.merge:
        with open(args.merge) as f:
            ours = json.load(f)
        by_length = {r["prompt_tokens"]: r for r in results}
        lines += ["", "| glowq configuration | prompt | decode tok/s vs PyTorch | TTFB vs PyTorch |", "|---|---:|---:|---:|"]
        for c in ours["configurations"]:
            for p in c["prompts"]:
                theirs = by_length.get(p["prompt_tokens"])
                if theirs is None:
                    continue
                decode = p["decode_tokens_per_second"]["median"] / theirs["decode_tokens_per_second"]["median"]
                ttfb = p["ttfb_ms"]["median"] / theirs["ttfb_ms"]["median"]
                lines.append(f"| {c['model']} {c['method']} restore {c['restore']} ({c['backend']}) | {p['prompt_tokens']} | {decode:.2f}x | {ttfb:.2f}x |")
    with open(os.path.join(args.out, "pytorch.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
