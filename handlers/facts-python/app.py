"""facts: answers `query:facts` with what this node knows about itself and the cluster, as JSON.

    hearsay query facts          -> {"addr":"10.0.0.5:7946","members":{...},"node":"a",...}
    hearsay query facts role     -> the same, plus "tag_values": {"web": 2, "db": 1}

The reply is one compact JSON object with sorted keys:

    node        this node's name
    addr        this node's gossip address, "ip:port" ("[ip6]:port" for IPv6)
    tags        this node's tags, {key: value}, without the agent's own "_hearsay_*" tags
    members     how many known members are in each state:
                {"alive": N, "failed": N, "left": N, "leaving": N, "none": N}
    total       how many members this node knows (the sum of "members")
    python      the Python version running the handler ("3.14.0" with componentize-py 0.25.1)
    tag_values  only when the payload names a tag key: {value: count} of that tag over the alive
                members that have it ({} when none has it)
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

import hearsay

PYTHON_VERSION = "%d.%d.%d" % sys.version_info[:3]

# Tags the agent sets for itself (e.g. "_hearsay_quic", its QUIC endpoint): not the operator's.
INTERNAL_TAG_PREFIX = "_hearsay_"


def facts(tag_key: str | None) -> dict[str, Any]:
    """The facts as a JSON-ready dict; ``tag_key`` adds the tag's value counts."""
    me = hearsay.local_member()
    everyone = hearsay.members()
    states = Counter(m.status.value for m in everyone)
    answer: dict[str, Any] = {
        "node": me.name,
        "addr": me.address,
        "tags": {k: v for k, v in me.tags.items() if not k.startswith(INTERNAL_TAG_PREFIX)},
        "members": {s.value: states[s.value] for s in hearsay.MemberStatus},
        "total": len(everyone),
        "python": PYTHON_VERSION,
    }
    if tag_key is not None:
        values = Counter(v for m in everyone if m.alive and (v := m.tag(tag_key)) is not None)
        answer["tag_values"] = dict(values)
    return answer


class Facts(hearsay.Handler):
    def on_query(self, query: hearsay.Query) -> None:
        try:
            key = query.payload.decode("utf-8").strip() or None
        except UnicodeDecodeError:
            raise hearsay.HandlerError("facts: the payload must be a tag key in UTF-8") from None
        body = json.dumps(facts(key), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        hearsay.reply(body)
