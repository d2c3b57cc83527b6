"""A terminal chatbot: the conversation so far goes to the model each turn, with its chat template.

`engine.chat(messages)` renders the whole history with the model's own chat template (SmolLM2's
`<|im_start|>` turns) and streams the reply; the app appends the reply to the history, so the next
turn sees it ("And of Italy?" is understood). Prefix caching lets each turn prefill only what is new:
the earlier turns' KV is reused.

Run: python examples/chatbot.py [--model PATH] [--max-tokens N]; one message per line, /exit to leave.
"""

import argparse
import asyncio
import sys

from sarathi_sdk import Engine, SamplingParams


async def main(model: str | None, max_tokens: int) -> None:
    history: list[dict[str, str]] = []  # SmolLM2's template adds its own system prompt
    async with Engine(model, enable_prefix_caching=True) as engine:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)  # the engine keeps serving meanwhile
            if not line or line.strip() == "/exit":
                break
            history.append({"role": "user", "content": line.strip()})
            print("assistant: ", end="", flush=True)
            reply = ""
            async for out in engine.chat(history, SamplingParams(max_tokens=max_tokens, temperature=0)):
                reply += out.text
                print(out.text, end="", flush=True)
            print(f"  [{out.metrics.num_cached_tokens} of {out.metrics.num_prompt_tokens} prompt tokens cached]")
            history.append({"role": "assistant", "content": reply})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint folder or .gguf file (default: the bundled SmolLM2)")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main(args.model, args.max_tokens))
