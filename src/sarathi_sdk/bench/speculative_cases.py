"""The speculative-decoding benchmark's prompts: answers that copy from the prompt, and free chat.

The copy prompts ask for what agents and editors ask for: a text repeated or lightly edited, code with
a rename, a record turned into JSON. Free chat asks questions whose answers quote nothing. Imports
nothing.
"""

from __future__ import annotations

ARTICLE = (
    "The James Webb Space Telescope is a space telescope designed to conduct infrared astronomy. Its "
    "high-resolution and high-sensitivity instruments allow it to view objects too old, distant, or faint for "
    "the Hubble Space Telescope. This enables investigations across many fields of astronomy and cosmology, "
    "such as observation of the first stars and the formation of the first galaxies."
)
CODE = """def total_price(items, tax_rate):
    subtotal = 0
    for item in items:
        subtotal += item.price * item.quantity
    tax = subtotal * tax_rate
    return subtotal + tax
"""
TYPOS = (
    "Our team will meet on Tuesday at the main office to review the quarterly report. Please bring your "
    "notes, the budget spreadsheet and any questions about the new hiring plan. Lunch will be provided "
    "after the meeting, and the afternoon is free for project work."
)
RECORD = "name: Ada Lovelace; born: 10 December 1815; field: mathematics; known for: the first computer program"

COPY = (
    "Repeat the following text exactly, word for word:\n\n" + ARTICLE,
    "Rename the function total_price to compute_total in this Python code and show the whole code:\n\n" + CODE,
    "Rewrite this message exactly as it is, but replace Tuesday with Thursday:\n\n" + TYPOS,
    "Copy this record as a JSON object with the same keys and values:\n\n" + RECORD,
)
CHAT = (
    "Write a short story about a dragon who learns to paint.",
    "What are three benefits of regular exercise? Explain each briefly.",
    "Describe how a bicycle works to a ten-year-old.",
    "Give me some tips for planning a weekend trip to the mountains.",
)
