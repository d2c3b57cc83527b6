"""The requests of `python -m sarathi_sdk.bench.structured`: ten JSON schemas, each with the user
message that asks for an object of it (the validity run), and the recipe schema and prompts of the
throughput run.

Imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Case:
    """One schema of the validity run, and the user message that asks for an object of it."""

    name: str
    prompt: str
    schema: dict[str, Any]


def _string(pattern: str | None = None, **limits: int) -> dict[str, Any]:
    return {"type": "string", **({"pattern": pattern} if pattern else {}), **limits}


CASES = (
    Case("person", "Describe a fictional person as JSON: name, age and email.", {
        "type": "object",
        "properties": {"name": _string(), "age": {"type": "integer", "minimum": 0, "maximum": 120},
                       "email": _string(r"^[a-z]{1,12}@[a-z]{1,12}\.(com|org|net)$")},
        "required": ["name", "age", "email"]}),
    Case("product", "Describe a product in an online shop as JSON: name, price, whether it is in stock, tags.", {
        "type": "object",
        "properties": {"name": _string(), "price": {"type": "number", "minimum": 0, "maximum": 10000},
                       "in_stock": {"type": "boolean"},
                       "tags": {"type": "array", "items": _string(maxLength=16), "minItems": 1, "maxItems": 3}},
        "required": ["name", "price", "in_stock", "tags"]}),
    Case("address", "Give a postal address in the United States as JSON: street, city, state, zip code.", {
        "type": "object",
        "properties": {"street": _string(), "city": _string(), "state": {"enum": ["CA", "NY", "TX", "WA", "FL"]},
                       "zip": _string(r"^[0-9]{5}$")},
        "required": ["street", "city", "state", "zip"]}),
    Case("order", "Write an online order as JSON: the customer, one to three items with SKU and quantity, the total.", {
        "type": "object",
        "properties": {
            "customer": {"type": "object", "properties": {"name": _string(), "id": {"type": "integer", "minimum": 1}},
                         "required": ["name", "id"]},
            "items": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
                "type": "object",
                "properties": {"sku": _string(r"^[A-Z]{3}-[0-9]{3}$"),
                               "quantity": {"type": "integer", "minimum": 1, "maximum": 10}},
                "required": ["sku", "quantity"]}},
            "total": {"type": "number", "minimum": 0}},
        "required": ["customer", "items", "total"]}),
    Case("weather", "Report today's weather in a city as JSON: city, temperature in Celsius, condition, humidity.", {
        "type": "object",
        "properties": {"city": _string(), "temperature_c": {"type": "number", "minimum": -50, "maximum": 60},
                       "condition": {"enum": ["sunny", "cloudy", "rain", "snow"]},
                       "humidity": {"type": "integer", "minimum": 0, "maximum": 100}},
        "required": ["city", "temperature_c", "condition", "humidity"]}),
    Case("event", "Describe a meetup as JSON: title, date, attendees, whether it is public, and maybe a location.", {
        "type": "object",
        "properties": {"title": _string(), "date": _string(r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])$"),
                       "attendees": {"type": "array", "items": _string(), "maxItems": 4},
                       "is_public": {"type": "boolean"}, "location": _string()},
        "required": ["title", "date", "attendees", "is_public"]}),
    Case("book", "Describe a famous book as JSON: title, author, year, genres, and its ISBN if you know it.", {
        "type": "object",
        "properties": {"title": _string(), "author": _string(),
                       "year": {"type": "integer", "minimum": 1450, "maximum": 2025},
                       "genres": {"type": "array", "minItems": 1, "maxItems": 2,
                                  "items": {"enum": ["fiction", "history", "science", "poetry", "fantasy"]}},
                       "isbn": _string(r"^97[89][0-9]{10}$")},
        "required": ["title", "author", "year", "genres"]}),
    Case("review", "Review a movie as JSON: the movie, a rating from 1 to 5, whether you recommend it, a summary.", {
        "type": "object",
        "properties": {"movie": _string(), "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                       "recommended": {"type": "boolean"}, "summary": _string(maxLength=120)},
        "required": ["movie", "rating", "recommended", "summary"]}),
    Case("settings", "Write an app's settings as JSON: theme, font size, email and SMS notifications, version.", {
        "type": "object",
        "properties": {
            "theme": {"enum": ["light", "dark"]}, "font_size": {"type": "integer", "minimum": 8, "maximum": 32},
            "notifications": {"type": "object", "required": ["email", "sms"],
                              "properties": {"email": {"type": "boolean"}, "sms": {"type": "boolean"}}},
            "version": _string(r"^[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}$"), "beta": {"type": "boolean"}},
        "required": ["theme", "font_size", "notifications", "version"]}),
    Case("todo", "Write a to-do list as JSON: its owner and two to four tasks, each done or not, with a priority.", {
        "type": "object",
        "properties": {"owner": _string(), "tasks": {"type": "array", "minItems": 2, "maxItems": 4, "items": {
            "type": "object",
            "properties": {"title": _string(), "done": {"type": "boolean"},
                           "priority": {"enum": ["low", "medium", "high"]}},
            "required": ["title", "done", "priority"]}}},
        "required": ["owner", "tasks"]}),
)

RECIPE = {
    "type": "object",
    "properties": {"title": _string(), "servings": {"type": "integer", "minimum": 1, "maximum": 12},
                   "ingredients": {"type": "array", "items": _string(), "minItems": 4, "maxItems": 8},
                   "steps": {"type": "array", "items": _string(), "minItems": 4, "maxItems": 8}},
    "required": ["title", "servings", "ingredients", "steps"],
}
"""The throughput run's schema: long enough that greedy decoding fills `--decode-tokens`, with the
string, integer and array states a real schema has. Seen by no other part, so its first requests
are also the concurrent-compile check."""
DISHES = ("pancakes", "tomato soup", "guacamole", "fried rice", "lentil curry", "banana bread", "pesto pasta",
          "omelette", "hummus", "apple pie", "ramen", "caesar salad", "chili", "risotto", "falafel", "brownies")
"""One dish per request of a batch: different prompts, so a batch's masks differ."""


def recipe_prompt(index: int) -> str:
    return f"Write a recipe for {DISHES[index % len(DISHES)]} as JSON."
