"""sarathi-shortest-first: the scheduler "shortest-first", SARATHI's policy serving short prompts first.

Registered through `sarathi_register_schedulers`, the registry every plugin adds named policies to,
so `Engine(scheduler="shortest-first")` picks it once the engine loads this plugin. Shortest prompt
first cuts the mean time to first token when prompt lengths vary, at the cost of long prompts waiting
longer (they may starve under a steady stream of short ones).
"""

from sarathi_scheduling import SarathiPolicy
from sarathi_sdk import hookimpl

SCHEDULER = "shortest-first"


class ShortestFirstPolicy(SarathiPolicy):
    """SARATHI's decode-maximal chunked-prefill policy with the queues ordered by prompt length.

    `sort_key` is the policy base's one knob for order: the waiting and running queues are kept
    sorted by it as requests arrive (no re-sort per step), the smallest key is admitted first and the
    largest running key is the one preempted when the KV cache is full. Ties keep arrival order.
    """

    def __init__(self, config, kv_cache_manager):
        super().__init__(config, kv_cache_manager)
        self.sort_key = lambda request: (len(request.prompt_token_ids), request.arrival_index)


@hookimpl
def sarathi_register_schedulers(register):
    register(SCHEDULER, ShortestFirstPolicy)
