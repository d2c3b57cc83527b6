"""Stream a completion token by token, then print what the request cost.

`engine.generate()` is an async generator: each output holds only the text new since the previous one,
so printing `out.text` as it comes is the whole streaming loop. The final output carries the metrics.

Run: python examples/stream.py ["Once upon a time"] [--model PATH] [--max-tokens N]
"""

import argparse
import asyncio

from sarathi_sdk import Engine, SamplingParams


async def main(prompt: str, model: str | None, max_tokens: int) -> None:
    async with Engine(model) as engine:
        params = SamplingParams(max_tokens=max_tokens, temperature=0)
        async for out in engine.generate(prompt, params):
            print(out.text, end="", flush=True)
            if out.finished:
                m = out.metrics
                decode_time = sum(m.tbts)
                print(f"\n[{out.finish_reason}: {m.num_prompt_tokens} prompt tokens, "
                      f"{m.num_generated_tokens} generated, first token after {m.ttft * 1000:.0f} ms, "
                      f"then {len(m.tbts) / max(decode_time, 1e-9):.1f} tokens/s]")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prompt", nargs="?", default="Once upon a time")
    parser.add_argument("--model", help="checkpoint folder or .gguf file (default: the bundled SmolLM2)")
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    asyncio.run(main(args.prompt, args.model, args.max_tokens))
