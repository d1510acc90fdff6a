"""Cost per one million verified payments and per one million renewals, at AWS list prices.

Quantities come from the counted flows (`bench.flows`): Lambda invocations and their measured
wall and CPU time, DynamoDB operations by table, key prefix and outcome, SQS messages,
EventBridge events, HTTP API requests, log bytes.

DynamoDB request units: for each successful call, what DynamoDB Local reported consuming
(`ReturnConsumedCapacity=INDEXES`: an UpdateItem by the larger of the item before and after,
each index write apart), as on-demand DynamoDB bills it. Where no figure was reported (a failed
condition answers an error, which carries none; a flow counted without it) the units are
modelled from the stored items' mean size by key prefix (`CHECKOUT`, `ORDER`, ...), a settling
order update adding its index entry. A verified payment's registration writes three items
(checkout claimed, pending order, checkout opened) and its payment two (the order's transition,
with its index entry, and the checkout kept); every successful write is also a stream record,
hence a publisher invocation at low traffic. Prices are AWS's public on-demand list prices
for US East (N. Virginia), first tier, free tiers ignored; `PRICES` holds them (change them for
another Region).

Lambda duration at a memory size M (MB): Lambda gives a function CPU in proportion to its
memory, one full vCPU at 1,769 MB. The measured CPU time (one full core here) is stretched by
1769/M below that; the rest of the wall time (waiting on I/O) is not:

    billed_ms = ceil(io_ms + cpu_ms * max(1, 1769 / M)),  io_ms = wall_ms - cpu_ms
    GB-s      = billed_ms / 1000 * M / 1024

Figures measured against local servers on 127.0.0.1 carry almost no network time: a deployed
function also waits for StepPay, DynamoDB and SQS over the network. `PRODUCTION_LATENCY_MS`
adds an assumed round trip per call to show that sensitivity next to the measured figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

FULL_VCPU_MB = 1769
MIB = 1024

# US East (N. Virginia) on-demand list prices, USD.
PRICES: dict[str, float] = {
    "lambda_request": 0.20 / 1e6,  # per request
    "lambda_gb_second_arm64": 0.0000133334,  # per GB-s, first 7.5 billion GB-s a month
    "http_api_request": 1.00 / 1e6,  # per request, first 300 million a month
    "dynamodb_write_request_unit": 0.625 / 1e6,  # on-demand WRU (1 KB)
    "dynamodb_read_request_unit": 0.125 / 1e6,  # on-demand RRU (4 KB strongly consistent)
    "eventbridge_custom_event": 1.00 / 1e6,  # per 64 KB event published to a custom bus
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB request
    "scheduler_invocation": 1.00 / 1e6,  # EventBridge Scheduler, after 14 million free
    "cloudwatch_logs_gb": 0.50,  # ingestion, per GB
}
PRICE_NOTES = {
    "lambda_request": "$0.20 per million",
    "lambda_gb_second_arm64": "$0.0000133334 per GB-second (arm64)",
    "http_api_request": "$1.00 per million",
    "dynamodb_write_request_unit": "$0.625 per million WRU",
    "dynamodb_read_request_unit": "$0.125 per million RRU",
    "eventbridge_custom_event": "$1.00 per million events",
    "sqs_request": "$0.40 per million requests",
    "scheduler_invocation": "$1.00 per million invocations",
    "cloudwatch_logs_gb": "$0.50 per GB ingested",
}
# Assumed network round trips in AWS (ap-northeast-2), for the sensitivity column only.
PRODUCTION_LATENCY_MS = {"steppay": 60.0, "dynamodb": 5.0, "sqs": 10.0, "events": 15.0}
# What a Lambda writes per invocation besides the function's own lines (START, END, REPORT).
PLATFORM_LOG_BYTES = 300
# SQS requests per webhook: SendMessage, then the event source mapping's ReceiveMessage and
# DeleteMessage (batches of one at low traffic; long polling between messages is not counted).
SQS_REQUESTS_PER_MESSAGE = 3
WRITE_OPS = ("PutItem", "UpdateItem", "DeleteItem")
READ_OPS = ("GetItem",)
# Reported units of these are read units; of every other operation, write units.
MEASURED_READ_OPS = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems")
# Where units are modelled (see the module docstring): an order that becomes PAID or CANCELED
# (an UpdateItem; a pending order is a PutItem) also writes its entry in the sparse
# SettledOrdersIndex, far below 1 KB. Counted for every successful order update, an upper
# bound: a failed renewal's update writes no entry. A checkout's updates (opened, kept) are not
# indexed.
INDEXED_WRITES = (("UpdateItem", "ORDER"),)
INDEX_WRU_PER_WRITE = 1
# Reconciliation's Query on that index is eventually consistent: half a read unit per 4 KB.
INDEX_QUERY_RRU = 0.5


def billed_ms(wall_ms: float, cpu_ms: float, memory_mb: int, extra_io_ms: float = 0.0) -> int:
    io_ms = max(0.0, wall_ms - cpu_ms) + extra_io_ms
    return max(1, math.ceil(io_ms + cpu_ms * max(1.0, FULL_VCPU_MB / memory_mb)))


def cold_start_ms(import_cpu_ms: float, import_wall_ms: float, memory_mb: int) -> float:
    """Modelled init time at `memory_mb` from a cold import measured on one full core."""
    return max(0.0, import_wall_ms - import_cpu_ms) + import_cpu_ms * max(1.0, FULL_VCPU_MB / memory_mb)


def _units(size_bytes: float, unit: int) -> int:
    return max(1, math.ceil(size_bytes / unit))


def _production_io_ms(function_calls: Mapping[str, float]) -> float:
    """The assumed network time of one invocation making `function_calls`."""
    total = 0.0
    for name, count in function_calls.items():
        if name.startswith("steppay "):
            total += count * PRODUCTION_LATENCY_MS["steppay"]
        elif name.startswith("dynamodb."):
            total += count * PRODUCTION_LATENCY_MS["dynamodb"]
        elif name.startswith("sqs."):
            total += count * PRODUCTION_LATENCY_MS["sqs"]
        elif name.startswith("events."):
            total += count * PRODUCTION_LATENCY_MS["events"]
    return total


def flow_cost(
    flow: Mapping[str, Any],
    memory: Mapping[str, int],
    item_sizes: Mapping[str, float],
    reconciliation: Mapping[str, Any] | None,
    *,
    reconciliation_passes: float,
    production: bool = False,
) -> dict[str, Any]:
    """USD per one million flows, by line, plus the quantities per flow."""
    invocations: Mapping[str, float] = flow["invocations"]
    lambda_requests = sum(invocations.values())
    gb_seconds = 0.0
    for function, count in invocations.items():
        wall = flow["mean_wall_ms"].get(function, 0.0)
        cpu = flow["mean_cpu_ms"].get(function, 0.0)
        extra = _production_io_ms(flow["calls_per_invocation"].get(function, {})) if production else 0.0
        gb_seconds += count * billed_ms(wall, cpu, memory[function], extra) / 1000 * memory[function] / MIB

    wru = rru = 0.0
    wru_by_write: dict[str, float] = {}  # label -> write units per flow, index entries included
    measured: Mapping[str, float] = flow.get("dynamodb_capacity") or {}
    for label, count in flow["dynamodb"].items():
        operation, _table, prefix, outcome = label.split("|")
        size = item_sizes.get(prefix, 1024.0)
        if outcome == "ok" and label in measured:
            # The table's units and every index's (labels "<label>|<index>"), already per flow.
            units = measured[label] + sum(v for k, v in measured.items() if k.startswith(label + "|"))
            if operation in MEASURED_READ_OPS:
                rru += units
            else:
                wru += units
                wru_by_write[label] = units
            continue
        if operation in WRITE_OPS:
            units = count * _units(size, 1024)
            if (operation, prefix) in INDEXED_WRITES and outcome == "ok":
                units += count * INDEX_WRU_PER_WRITE
            wru += units
            wru_by_write[label] = units
        elif operation in READ_OPS:
            rru += count * _units(size, 4096)

    if reconciliation is not None and reconciliation_passes:
        function = "ReconciliationFunction"
        wall = float(reconciliation["wall_ms_per_paid_order"])
        cpu = float(reconciliation["cpu_ms_per_paid_order"])
        extra = _production_io_ms(reconciliation["io_per_paid_order"]) if production else 0.0
        gb_seconds += (
            reconciliation_passes
            * billed_ms(wall, cpu, memory[function], extra)
            / 1000
            * memory[function]
            / MIB
        )
        order_wru = _units(item_sizes.get("ORDER", 1024.0), 1024)
        for name, count in reconciliation["io_per_paid_order"].items():
            if name == "dynamodb.GetItem":
                rru += reconciliation_passes * count
            elif name == "dynamodb.Query":
                rru += reconciliation_passes * count * INDEX_QUERY_RRU
            elif name == "dynamodb.PutItem":
                wru += reconciliation_passes * count * order_wru
            elif name == "dynamodb.UpdateItem":  # an order update also writes its index entry
                wru += reconciliation_passes * count * (order_wru + INDEX_WRU_PER_WRITE)

    calls: Mapping[str, float] = flow.get("calls", {})
    # The flows count every SQS call (the intake's sends, and the event source's receive and
    # delete as bench.backends.QueuePoller makes them); without those, each message sent is
    # modelled as a send, a receive and a delete of its own.
    counted = {k: v for k, v in calls.items() if k.startswith("sqs.")}
    if "sqs.ReceiveMessage" in counted:
        sqs_requests = sum(counted.values())
    else:
        sqs_requests = calls.get("sqs.SendMessage", flow["webhooks"]) * SQS_REQUESTS_PER_MESSAGE
    steppay_calls = sum(v for k, v in calls.items() if k.startswith("steppay "))
    log_gb = (flow["log_bytes"] + lambda_requests * PLATFORM_LOG_BYTES) / 1e9
    per_flow = {
        "Lambda requests": lambda_requests * PRICES["lambda_request"],
        "Lambda duration (GB-s)": gb_seconds * PRICES["lambda_gb_second_arm64"],
        "HTTP API requests": flow["http_api_requests"] * PRICES["http_api_request"],
        "DynamoDB writes (WRU)": wru * PRICES["dynamodb_write_request_unit"],
        "DynamoDB reads (RRU)": rru * PRICES["dynamodb_read_request_unit"],
        "EventBridge events": flow["events_published"] * PRICES["eventbridge_custom_event"],
        "SQS requests": sqs_requests * PRICES["sqs_request"],
    }
    subtotal = sum(per_flow.values())
    logs = log_gb * PRICES["cloudwatch_logs_gb"]
    million = 1e6
    return {
        "quantities_per_flow": {
            "lambda_requests": round(lambda_requests, 2),
            "lambda_gb_seconds": round(gb_seconds, 5),
            "http_api_requests": flow["http_api_requests"],
            "dynamodb_wru": round(wru, 2),
            "dynamodb_rru": round(rru, 2),
            "eventbridge_events": flow["events_published"],
            "sqs_requests": round(sqs_requests, 2),
            "steppay_calls": round(steppay_calls, 2),
            "stream_records": flow.get("stream_records", 0.0),
            "records_to_publisher": flow.get("records_to_publisher", 0.0),
            "log_bytes": round(flow["log_bytes"] + lambda_requests * PLATFORM_LOG_BYTES),
        },
        "dynamodb_wru_by_write": {k: round(v, 2) for k, v in sorted(wru_by_write.items())},
        "usd_per_million": {k: round(v * million, 2) for k, v in per_flow.items()},
        "usd_per_million_total": round(subtotal * million, 2),
        "usd_per_million_logs": round(logs * million, 2),
    }


def scheduler_monthly_usd(runs_per_month: float = 24 * 30) -> float:
    return runs_per_month * PRICES["scheduler_invocation"]


def memory_options(
    functions: Mapping[str, Mapping[str, float]],
    cold: Mapping[str, Mapping[str, float]],
    rss: Mapping[str, float],
    sizes: tuple[int, ...] = (256, 512, 768, 1024, 1536, 1769),
) -> dict[str, list[dict[str, float]]]:
    """Per function and memory size: modelled cold start, warm duration and USD per million calls."""
    table: dict[str, list[dict[str, float]]] = {}
    for function, timing in functions.items():
        rows = []
        for size in sizes:
            billed = billed_ms(timing["wall_ms"], timing["cpu_ms"], size)
            usd = (
                billed / 1000 * size / MIB * PRICES["lambda_gb_second_arm64"] + PRICES["lambda_request"]
            ) * 1e6
            row = {
                "memory_mb": size,
                "warm_billed_ms": billed,
                "usd_per_million_invocations": round(usd, 2),
                "rss_share": round(rss.get(function, 0.0) / size, 2),
            }
            if function in cold:
                row["cold_start_ms"] = round(
                    cold_start_ms(cold[function]["cpu_ms"], cold[function]["wall_ms"], size)
                )
            rows.append(row)
        table[function] = rows
    return table


# Cold-start budgets for choosing a memory size (modelled from this machine's one-core figures):
# a shopper (or StepPay, for the webhook intake) waits on these functions; nobody waits on the rest.
COLD_START_BUDGET_MS = {"shopper-facing": 2000.0, "background": 5000.0}
MAX_RSS_SHARE = 0.5  # peak RSS at most half the memory size: room for larger batches and answers


def recommend(options: list[dict[str, float]], shopper_facing: bool) -> int:
    """The smallest size whose modelled cold start fits the budget and whose RSS share is low.

    Below one vCPU (1,769 MB) CPU-bound time costs the same at any size (time shrinks as memory
    grows), so what a larger size costs is the I/O wait it is billed for: the smallest size that
    meets the budget is the cheapest one that does.
    """
    budget = COLD_START_BUDGET_MS["shopper-facing" if shopper_facing else "background"]
    for row in options:
        if row.get("cold_start_ms", 0.0) <= budget and row["rss_share"] <= MAX_RSS_SHARE:
            return int(row["memory_mb"])
    return int(options[-1]["memory_mb"])
