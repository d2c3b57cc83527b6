"""A small agent loop: the model asks for a tool in a fixed format, the app runs it, the model answers.

A 135M model cannot do arithmetic (asked for 123 * 45 it says 500), but it can follow a format. The
system prompt and one worked exchange teach it to reply `CALL calculator(EXPRESSION)`; the app parses
that line, evaluates the expression with a small safe evaluator (never `eval`), sends back
`RESULT: VALUE` as the next message, and lets the model write the answer. Greedy decoding keeps the
run reproducible.

Run: python examples/agent.py ["What is 123 * 45?"] [--model PATH] [--max-steps N]
"""

import argparse
import ast
import asyncio
import operator
import re

from sarathi_sdk import Engine, SamplingParams

SYSTEM = ("You have a calculator. To use it, reply with one line: CALL calculator(EXPRESSION). "
          "The result comes back as RESULT: VALUE.")
EXAMPLE = [
    {"role": "user", "content": "What is 12 * 3?"},
    {"role": "assistant", "content": "CALL calculator(12 * 3)"},
    {"role": "user", "content": "RESULT: 36"},
    {"role": "assistant", "content": "12 * 3 = 36."},
]
CALL = re.compile(r"CALL calculator\((.+)\)")


def power(base: float, exponent: float) -> float:
    if abs(exponent) > 100:  # 9 ** 9 ** 9 would hang the app, not just be wrong
        raise ValueError(f"exponent {exponent} is too large")
    return base**exponent


OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
             ast.Pow: power, ast.BitXor: power, ast.USub: operator.neg}  # models write 2^10 for 2 ** 10


def calculator(expression: str) -> str:
    """Evaluate + - * / ** (or ^) on numbers; anything else is an error message for the model."""
    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](value(node.operand))
        raise ValueError(f"unsupported expression {expression!r}")

    try:
        return str(value(ast.parse(expression, mode="eval").body))
    except (SyntaxError, ValueError, ArithmeticError) as exc:
        return f"error: {exc}"


async def main(question: str, model: str | None, max_steps: int) -> None:
    messages = [{"role": "system", "content": SYSTEM}, *EXAMPLE, {"role": "user", "content": question}]
    params = SamplingParams(max_tokens=32, temperature=0)
    async with Engine(model) as engine:
        for _ in range(max_steps):
            reply = "".join([out.text async for out in engine.chat(messages, params)]).strip()
            messages.append({"role": "assistant", "content": reply})
            call = CALL.search(reply)
            if call is None:
                print(f"answer: {reply}")
                return
            result = calculator(call.group(1))
            print(f"tool call: calculator({call.group(1)}) -> {result}")
            messages.append({"role": "user", "content": f"RESULT: {result}"})
        print("no answer after", max_steps, "steps")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("question", nargs="?", default="What is 123 * 45?")
    parser.add_argument("--model", help="checkpoint folder or .gguf file (default: the bundled SmolLM2)")
    parser.add_argument("--max-steps", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.question, args.model, args.max_steps))
