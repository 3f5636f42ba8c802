"""Writes the small CRM export bundled beside sample-data/events.parquet (deterministic).

    python3 sample-data/crm/make_crm.py

The web log's users are u0000000 … u0009999 (January and February 2024). The CRM knows
3,000 persons (C00000 …); the identity map links web cookies and loyalty cards to them, the
call centre and the shop log touches under CRM ids, the shop system's orders name the
person by CRM id or loyalty card, and the customers table gives each person a segment.
Deliberate oddities, counted by touchpoint in data_quality / source_quality: 12 orders
exported twice, one cookie mapped to two persons at once, one call without a time.
Python standard library only.
"""

import csv
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).parent
rng = random.Random(20240101)
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
PERSONS = 3000


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def when():
    return START + timedelta(seconds=rng.randrange(60 * 86400))


def write(name, header, rows):
    with open(HERE / name, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


persons = [f"C{i:05d}" for i in range(PERSONS)]
cookie = {p: f"u{i * 3 + 1:07d}" for i, p in enumerate(persons)}  # every third web user
card = {p: f"L-{7000 + i}" for i, p in enumerate(persons) if i % 4 == 0}

identity = [(cookie[p], p, "", "") for p in persons]
identity += [(card[p], p, "", "") for p in sorted(card)]
# A shared family laptop: one cookie mapped to two persons over overlapping periods.
identity.append((cookie["C00000"], "C00003", "2024-02-01T00:00:00Z", ""))
identity[0] = (cookie["C00000"], "C00000", "", "2024-03-01T00:00:00Z")
write("identity_map.csv", ["alias_id", "person_id", "valid_from", "valid_to"], identity)

segments = ["loyal", "regular", "occasional"]
write("customers.csv", ["person_id", "segment"], [(p, rng.choice(segments)) for p in persons])

calls = [(p, iso(when()), rng.choice(["billing", "product", "complaint"]))
         for p in rng.sample(persons, 900)]
calls[17] = (calls[17][0], "", calls[17][2])
write("calls.csv", ["crm_id", "called_at", "reason"], calls)

visits = [(p, iso(when())) for p in rng.sample(persons, 700)]
write("store_visits.csv", ["crm_id", "visited_at"], visits)

orders = []
for n, p in enumerate(rng.sample(persons, 500)):
    ref = card.get(p, p) if n % 3 == 0 else p
    kind = "lead" if n % 5 == 0 else "purchase"
    amount = 0 if kind == "lead" else round(rng.uniform(20, 400), 2)
    orders.append((f"O{n:05d}", ref, iso(when()), kind, amount))
for o in orders[:12]:  # exported twice: the same order id, an hour later
    t = datetime.strptime(o[2], "%Y-%m-%dT%H:%M:%SZ") + timedelta(hours=1)
    orders.append((o[0], o[1], iso(t), o[3], o[4]))
write("orders.csv", ["order_id", "customer_ref", "ordered_at", "type", "amount"], orders)

write("erasure_request.csv", ["person_id"], [("C00042",)])
