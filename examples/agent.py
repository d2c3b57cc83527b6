"""An agent loop on real tool calls: the `openai` client against `sarathi serve`.

The app declares a calculator tool. A 135M model has no tool-call format of its own for "auto" to
read, so the first turn asks with `tool_choice="required"`: the server constrains the model's output
to a call of one of the tools, with arguments that match its schema, and returns it as
`message.tool_calls` (finish_reason "tool_calls"). The app runs each call with a small safe evaluator
(never `eval`), sends the results back as `role: "tool"` messages, and asks again with
`tool_choice="none"` for the answer. Greedy decoding keeps the run reproducible.

Without `--base-url` the example serves the model itself, in a background thread on a free port
(`sarathi_sdk.serve.create_app` under uvicorn); with it, it talks to a running `sarathi serve`.

Run: python examples/agent.py ["What is 123 * 45?"] [--base-url URL] [--model PATH]
"""

import argparse
import ast
import contextlib
import json
import operator
import socket
import threading
import time

import openai
import uvicorn

from sarathi_sdk.serve import create_app

CALCULATOR = {"type": "function", "function": {
    "name": "calculator",
    "description": "Evaluate an arithmetic expression with + - * / and ^",
    "parameters": {"type": "object", "required": ["expression"], "properties": {
        "expression": {"type": "string", "pattern": "^[0-9]{1,6} [-+*/^] [0-9]{1,6}$"}}},
}}
SYSTEM = "You have a calculator tool. Use it for arithmetic, then answer with the number it returns."


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


def run_agent(client: openai.OpenAI, model: str, question: str) -> None:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    reply = client.chat.completions.create(model=model, messages=messages, tools=[CALCULATOR],
                                           tool_choice="required", parallel_tool_calls=False, temperature=0)
    message = reply.choices[0].message
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls or []:
        expression = json.loads(call.function.arguments)["expression"]
        result = calculator(expression)
        print(f"tool call: calculator({expression}) -> {result}")
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    answer = client.chat.completions.create(model=model, messages=messages, tools=[CALCULATOR], tool_choice="none",
                                            max_tokens=32, temperature=0)
    print(f"answer: {answer.choices[0].message.content.strip()}")


@contextlib.contextmanager
def local_server(model: str | None):
    """`sarathi serve` in this process: the app under uvicorn in a thread, on a port the OS picks."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(model), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()


def main(question: str, base_url: str | None, model: str | None) -> None:
    with contextlib.ExitStack() as stack:
        url = base_url or stack.enter_context(local_server(model))
        client = stack.enter_context(openai.OpenAI(base_url=url, api_key="unused", timeout=120, max_retries=0))
        run_agent(client, client.models.list().data[0].id, question)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("question", nargs="?", default="What is 123 * 45?")
    parser.add_argument("--base-url", help="a running sarathi serve, e.g. http://127.0.0.1:8000/v1 (default: serve here)")
    parser.add_argument("--model", help="checkpoint folder or .gguf file to serve (default: the bundled SmolLM2)")
    args = parser.parse_args()
    main(args.question, args.base_url, args.model)
