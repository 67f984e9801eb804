"""Push over SMS (issue 12, the WAP Push channel): a device registered with
`push-register ... sms +NUMBER` gets its SAN as WAP Push over SMS through a
real Kannel (bearerbox + smsbox, sendsms) whose fake SMSC hands the SMS to
fakesmsc, the "phone": the test decodes the UDH (WDP port 2948 from 9200,
concatenation), the WSP Push header (0xCE, X-Wap-Application-Id 0x85) and
the SAN (digest, sync type 206, datastore). A SAN too long for one SMS
comes concatenated; Kannel down keeps the notification."""
import time
import uuid

import pytest

import kannel as K
from test_700_push import SRV_PW, admin, deliver, digest_of, parse_san, pending
from test_550_filters import Device

NUMBER = "+4915550" + str(uuid.uuid4().int % 10000).zfill(4)


@pytest.fixture
def sms(stack):
    """Kannel on its own ports, and httpd told to use it."""
    if not K.available():
        pytest.fail("Kannel is not installed (./dev deps installs kannel and kannel-extras)")
    k = K.Kannel(stack.var).start()
    try:
        stack.apply_site(stack._default_site.replace("{", "{{").replace("}", "}}")
                         + "\nMemDSKannelURL %s\nMemDSKannelAuth %s %s\n"
                         % (k.url, K.USER, k.password))
        yield k
    finally:
        k.stop()


def _device(stack, server_id):
    dev = Device(stack, "Inbox")
    dev.sync()
    r = admin(stack, "push-register", "alice", dev.devid, "sms", NUMBER)
    assert r.returncode == 0, r.stdout
    r = admin(stack, "server-password", "--basic", "--server-id", server_id, "alice",
              dev.devid, password=SRV_PW)
    assert r.returncode == 0, r.stdout
    return dev


def _forget(stack, dev):
    if dev is not None:
        admin(stack, "push-register", "--delete", "alice", dev.devid)


def _until(get, ok, timeout=20):
    """get() until ok(value) or timeout; the last value."""
    deadline = time.time() + timeout
    v = get()
    while not ok(v) and time.time() < deadline:
        time.sleep(0.2)
        v = get()
    return v


def _san_of(k, n_sms, server_id):
    assert k.wait(n_sms), "no SMS at the phone within 15 s:\n" + k.log("fakesmsc")[-2000:]
    msgs = k.messages()
    assert len(msgs) == n_sms, msgs
    for sender, receiver, udh, data in msgs:
        assert receiver == NUMBER and sender == K.SENDER
        assert len(udh) + len(data) <= 140, (len(udh), len(data))
    pdus = K.reassemble([(udh, data) for _, _, udh, data in msgs])
    assert len(pdus) == 1
    tid, ctype, appid, san = K.wsp_push(pdus[0])
    assert (ctype, appid) == (0xCE, b"\xaf\x85")  # X-Wap-Application-Id: push.syncml
    digest, version, ui, init, session, sid, syncs = parse_san(san)
    assert (version, ui, init, sid) == (12, 1, 1, server_id)
    assert syncs == [(206, 0x306, "Inbox")], syncs
    assert digest == digest_of(san, server_id, SRV_PW)
    assert digest != digest_of(san, server_id, "wrong")
    return msgs, san


def test_711_new_mail_reaches_the_phone_as_wap_push(stack, sms):
    dev = None
    try:
        dev = _device(stack, "memds-sms")
        tag = "sms-" + uuid.uuid4().hex[:6]
        t0 = time.time()
        deliver(stack, tag)
        msgs, san = _san_of(sms, 1, "memds-sms")
        latency = time.time() - t0
        assert msgs[0][2] == bytes.fromhex("060504 0b84 23f0")
        assert msgs[0][3][1:6] == bytes.fromhex("06 03 ce af 85")
        # the device syncs and gets the mail; the notification is gone
        got, _, _ = dev.sync()
        assert any(tag.encode() in d.encode() for _, _, d, _, _ in got), got
        assert pending(stack, dev.devid) == ""
        print("delivery to SMS at the phone: %.2f s, SAN %d bytes, user data %d bytes"
              % (latency, len(san), len(msgs[0][2]) + len(msgs[0][3])))
    finally:
        _forget(stack, dev)


def test_712_a_long_san_is_concatenated(stack, sms):
    dev = None
    server_id = "memds-sms-" + "x" * 150 + ".example.test"  # SAN > 127 bytes
    try:
        dev = _device(stack, server_id)
        deliver(stack, "long-" + uuid.uuid4().hex[:6])
        msgs, san = _san_of(sms, 2, server_id)
        refs = {udh[9] for _, _, udh, _ in msgs}
        assert len(refs) == 1 and [udh[11] for _, _, udh, _ in msgs] == [1, 2]
        assert all(udh[:9] == bytes.fromhex("0b0504 0b84 23f0 0003") for _, _, udh, _ in msgs)
        print("SAN of %d bytes: %d SMS" % (len(san), len(msgs)))
        dev.sync()
    finally:
        _forget(stack, dev)


def test_713_kannel_down_keeps_the_notification(stack, sms):
    dev = None
    try:
        dev = _device(stack, "memds-sms")
        sms.stop()  # smsbox and bearerbox gone
        stack.allow_log(r"MEMDS00611")
        deliver(stack, "smsdown-" + uuid.uuid4().hex[:6])
        p = _until(lambda: pending(stack, dev.devid), lambda v: v.count(":") >= 2
                   and v.split(":")[1] != "0")
        store, attempts, err = p.split(":", 2)
        assert store == "Inbox" and int(attempts) >= 1, p
        assert "sendsms" in err and sms.password not in err, err
        _forget(stack, dev)
        dev.sync()
        assert pending(stack, dev.devid) == ""
        dev = None
    finally:
        _forget(stack, dev)



def test_715_wrong_kannel_password_is_a_failed_delivery(stack, sms):
    dev = None
    try:
        stack.apply_site(stack._default_site.replace("{", "{{").replace("}", "}}")
                         + "\nMemDSKannelURL %s\nMemDSKannelAuth %s wrong-%s\n"
                         % (sms.url, K.USER, sms.password))
        dev = _device(stack, "memds-sms")
        stack.allow_log(r"MEMDS00611.*sendsms answered 403")
        deliver(stack, "smsauth-" + uuid.uuid4().hex[:6])
        p = _until(lambda: pending(stack, dev.devid), lambda v: v.count(":") >= 2
                   and v.split(":")[1] != "0")
        assert "sendsms answered 403" in p and "\n" not in p, p
        assert sms.messages() == []
    finally:
        _forget(stack, dev)
        if dev is not None:
            dev.sync()


def test_714_push_register_checks_the_number(stack):
    dev = Device(stack, "Inbox")
    dev.sync()
    for bad in ("12", "+49 155", "tel:+4915550", ""):
        r = admin(stack, "push-register", "alice", dev.devid, "sms", bad)
        assert r.returncode != 0 and "phone number" in r.stdout, (bad, r.stdout)
    r = admin(stack, "push-register", "alice", dev.devid, "sms", "+4915550123")
    assert r.returncode == 0, r.stdout
    r = admin(stack, "push-register", "--delete", "alice", dev.devid)
    assert r.returncode == 0, r.stdout
