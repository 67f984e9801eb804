"""112: the status page's Prometheus form (issue 13 item 8) parses with a
small parser of the text format 0.0.4 (every sample of a family announced
by HELP and TYPE, labels well formed, no sample twice), its histograms are
well formed (cumulative buckets ending in +Inf equal to _count), and the
counters and histograms count what the requests did: a mail sync adds
PostgreSQL statements and transactions, IMAP commands, a session begun and
completed, items down, 2xx answers and a slow-sync alert; a sent mail adds
an SMTP submission."""
import re

from test_510_mail import new_folder
from test_550_filters import Device
from test_610_outbox import _outbox_session, copies

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(?:,|$)')


def parse(text):
    """The exposition as ({family: type}, {(name, ((label, value), ...)):
    value}); asserts the format on the way."""
    types, helps, samples = {}, set(), {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            helps.add(line.split(" ")[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert typ in ("counter", "gauge", "histogram"), line
            assert name not in types, "TYPE twice: " + line
            types[name] = typ
            continue
        assert not line.startswith("#"), line
        m = SAMPLE.match(line)
        assert m, line
        name, labels, value = m.groups()
        pairs, pos = [], 0
        for lm in LABEL.finditer(labels or ""):
            assert lm.start() == pos, line
            pairs.append((lm.group(1), lm.group(2)))
            pos = lm.end()
        assert pos == len(labels or ""), line
        fam = name if name in types else re.sub(r"_(bucket|sum|count)$", "", name)
        assert fam in types and fam in helps, line
        assert fam == name or types[fam] == "histogram", line
        key = (name, tuple(pairs))
        assert key not in samples, "sample twice: " + line
        samples[key] = float(value)
    return types, samples


def histograms(types, samples):
    """{(family, labels but le): (count, sum)} of every histogram, each
    checked: buckets in order, cumulative, +Inf last and equal to _count."""
    out = {}
    for fam in (f for f, t in types.items() if t == "histogram"):
        series = {}
        for (name, lab), v in samples.items():
            part = name[len(fam) + 1:] if name.startswith(fam + "_") else None
            if part not in ("bucket", "sum", "count"):
                continue
            rest = tuple(x for x in lab if x[0] != "le")
            s = series.setdefault(rest, {"b": [], "sum": None, "count": None})
            if part == "bucket":
                s["b"].append((float(dict(lab)["le"]), v))
            else:
                s[part] = v
        for rest, s in series.items():
            b = s["b"]
            assert b and b == sorted(b, key=lambda x: x[0]), (fam, rest)
            assert b[-1][0] == float("inf") and b[-1][1] == s["count"], (fam, rest)
            assert all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)), (fam, rest)
            assert s["sum"] is not None and s["sum"] >= 0
            out[(fam, rest)] = (s["count"], s["sum"])
    return out


def scrape(stack):
    st, hdr, body = stack.request("GET", "/memds-status?format=prometheus")
    assert st == 200 and hdr["content-type"].startswith("text/plain; version=0.0.4")
    types, samples = parse(body.decode())
    return samples, histograms(types, samples)


def test_112_histograms_count_what_requests_did(stack):
    s0, h0 = scrape(stack)
    assert ("memds_db_query_duration_seconds", ()) in h0
    assert ("memds_imap_command_duration_seconds", (("command", "fetch"),)) in h0
    assert ("memds_smtp_submission_duration_seconds", ()) in h0
    folder = new_folder(stack, 3)
    d = Device(stack, folder)
    got, msgs, st = d.sync()
    assert st == "200" and len(got) == 3
    s1, h1 = scrape(stack)

    def grew(h_a, h_b, fam, rest=()):
        return h_b[(fam, rest)][0] - h_a[(fam, rest)][0]

    def imap_total(h):
        return sum(c for (f, _), (c, _) in h.items()
                   if f == "memds_imap_command_duration_seconds")

    # a session of three messages at least: statements and transactions
    assert grew(h0, h1, "memds_db_query_duration_seconds") >= 10
    assert grew(h0, h1, "memds_db_transaction_duration_seconds") >= 3
    assert imap_total(h1) - imap_total(h0) >= 2  # (a select and a fetch)
    assert grew(h0, h1, "memds_imap_command_duration_seconds",
                (("command", "select"),)) >= 1
    for h in (h0, h1):
        for (fam, rest), (count, total) in h.items():
            assert total >= 0 and count >= 0

    def delta(name, *lab):
        return s1.get((name, lab), 0) - s0.get((name, lab), 0)

    assert delta("memds_sessions_started_total") == 1
    assert delta("memds_sessions_completed_total") == 1
    assert delta("memds_items_total", ("direction", "down")) == 3
    assert delta("memds_items_total", ("direction", "up")) == 0
    assert delta("memds_sync_alerts_total", ("type", "slow")) == 1
    assert delta("memds_responses_by_class_total", ("class", "2xx")) >= 3
    assert delta("memds_responses_by_class_total", ("class", "4xx")) == 0
    # one mail sent: one submission, no error
    sess, body = _outbox_session(stack, "dev-metrics-" + folder, "1", "metrics-" + folder)
    a = sess.post(sess.message(body))
    assert [x["Data"] for x in a.statuses() if x["Cmd"] == "Add"] == ["201"]
    assert len(copies(stack, "bob", "bob-secret", "INBOX", "metrics-" + folder)) == 1
    s2, h2 = scrape(stack)
    assert grew(h1, h2, "memds_smtp_submission_duration_seconds") == 1
    assert s2[("memds_smtp_errors_total", ())] == s1[("memds_smtp_errors_total", ())]
    assert grew(h1, h2, "memds_imap_command_duration_seconds",
                (("command", "append"),)) >= 1  # (the copy in Sent)
    assert s2[("memds_items_total", (("direction", "up"),))] \
        == s1[("memds_items_total", (("direction", "up"),))] + 1
    # a bad request is a 4xx
    stack.allow_log(r"not a SyncML message")
    stack.post_syncml(b"garbage")
    s3, _ = scrape(stack)
    assert s3[("memds_responses_by_class_total", (("class", "4xx"),))] \
        == s2[("memds_responses_by_class_total", (("class", "4xx"),))] + 1
