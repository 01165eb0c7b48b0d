#!/usr/bin/env python3
"""Writes the inbox the import measurement used: 5,000 UTF-16LE .smx delta documents of 30
state messages each (500 and 402, every third with an HRESULT Param), for 2,000 ConfigMgr
clients over 300 updates. Usage: gen_inbox.py DIR (seeded: the same files every time)."""
import codecs, os, random, sys

def msg(serial, ttype, tid, state, params=()):
    p = ''
    if params:
        p = f'<UserParameters Flags="0" Count="{len(params)}">' + ''.join(f'<Param>{x}</Param>' for x in params) + '</UserParameters>'
    return (f'<StateMessage MessageTime="20261111080100.000000+000" SerialNumber="{serial}">'
            f'<Topic ID="{tid}" Type="{ttype}" IDType="3"/><State ID="{state}" Criticality="0"/>{p}</StateMessage>')

def main(out):
    random.seed(1)
    os.makedirs(out, exist_ok=True)
    updates = [f"{i:08x}-1c3a-4e8b-9f21-6a7c0d5e3b10" for i in range(300)]
    serial = {}
    for f in range(5000):
        c = random.randrange(2000)
        cid = f"GUID:0b1e3f5a-7c9d-4e2f-8a1b-{c:012d}"
        s = serial.get(c, 100)
        msgs = []
        for k in range(30):
            s += 1
            u = random.choice(updates)
            if k % 3 == 0:
                msgs.append(msg(s, 402, u, random.choice([8, 10, 11, 13]), ("200", "0x80070643")))
            else:
                msgs.append(msg(s, 500, u, random.randrange(1, 4), ("200",)))
        serial[c] = s
        text = ('<?xml version="1.0" encoding="UTF-16"?>\r\n<Report><ReportHeader><Identification><Machine>'
                f'<ClientInstalled>1</ClientInstalled><ClientType>1</ClientType><ClientID>{cid}</ClientID>'
                f'<ClientVersion>5.00.9135.1000</ClientVersion><NetBIOSName>PC{c}</NetBIOSName><CodePage>437</CodePage>'
                '<SystemDefaultLCID>1033</SystemDefaultLCID></Machine></Identification><ReportDetails>'
                '<ReportContent>State Message Data</ReportContent><ReportType>Delta</ReportType>'
                '<Date>2026-11-11T08:00:00Z</Date><Version>1.0</Version><Format>1.0</Format></ReportDetails>'
                '</ReportHeader><ReportBody>\r\n' + "\r\n".join(msgs) + "</ReportBody></Report>\r\n")
        with open(os.path.join(out, f"{f:08X}.SMX"), "wb") as fh:
            fh.write(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))

if __name__ == "__main__":
    main(sys.argv[1])
