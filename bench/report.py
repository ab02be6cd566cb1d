#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Renders scripts/bench.sh's raw results into docs/benchmarks.md.

Input lines look like "sec=sign lib=debian run=2 | loadgen target=mayfly ...":
every key=value on the line is a field. Figures are medians over runs.
Plots (PNG) are drawn with gnuplot when it is installed.

A run cannot lie by omission: the report is written in any case, but when a
measurement failed (listed in --failures by scripts/bench.sh: nonzero exit,
timeout, no output), a rate came out as zero, a request failed, or a
headline figure or its baseline is missing, the report starts with a
"Failed measurements" section, each failure is printed on stderr, and the
exit status is 1.
"""
import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys

KV = re.compile(r'([A-Za-z0-9_+.-]+)=("[^"]*"|\S+)')


def parse(path):
    rows, notes, meta = [], {}, {}
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            line = line.rstrip('\n')
            if not line:
                continue
            head = line.split(' ', 1)[0]
            if head in ('machine', 'cpu', 'wolfssl', 'git', 'mode', 'load_before', 'load_after'):
                meta[head] = line[len(head) + 1:]
                continue
            d = {k: v.strip('"') for k, v in KV.findall(line)}
            if head == 'note':
                notes.update(d)
                continue
            if '|' in line:
                d['prog'] = line.split('|', 1)[1].split()[0]
            rows.append(d)
    return rows, notes, meta


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def med(rows, field, **match):
    vals = [num(r.get(field)) for r in rows
            if all(r.get(k) == str(v) for k, v in match.items())]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def spread(rows, field, **match):
    vals = [num(r.get(field)) for r in rows
            if all(r.get(k) == str(v) for k, v in match.items())]
    vals = [v for v in vals if v is not None]
    return (min(vals), max(vals), len(vals)) if vals else None


def f0(v, unit=''):
    if v is None:
        return 'n/m'
    if float(v).is_integer() and abs(v) < 100:
        return f'{v:.0f}{unit}'
    if abs(v) >= 100:
        return f'{v:,.0f}{unit}'
    if abs(v) >= 10:
        return f'{v:.1f}{unit}'
    return f'{v:.2f}{unit}'


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def pct(v):
    return 'n/m' if v is None else f'{v * 100:.0f} %'


def xr(v):
    return 'n/m' if v is None else f'{v:.2f}x'


def mib(kb):
    return None if kb is None else kb / 1024.0


def verdict(ok):
    if ok is None:
        return 'not measured'
    return 'met' if ok else '**missed**'


def per_svid_us(cpu_s, n):
    """CPU microseconds per SVID, or None when either figure is missing."""
    if cpu_s is None or not n:
        return None
    return cpu_s * 1e6 / n


# fields that hold a measured rate: zero means nothing was measured
RATE_FIELDS = ('certs_per_s', 'per_s', 'fetches_per_s')


def tags_of(r):
    return ' '.join(f'{k}={r[k]}' for k in ('sec', 'lib', 'what', 'server', 'mode', 'clients',
                                            'conns', 'batch', 'threads', 'op', 'run') if k in r)


def row_problems(rows):
    """Rows whose rate is zero or whose requests failed."""
    out = []
    for r in rows:
        for f in RATE_FIELDS:
            v = num(r.get(f))
            if f in r and (v is None or v <= 0):
                out.append(f'{tags_of(r)}: {f}={r[f]} ({r.get("prog", "?")} measured nothing)')
        e = num(r.get('errors'))
        if e:
            out.append(f'{tags_of(r)}: {r["errors"]} request(s) failed ({r.get("prog", "?")})')
    return out


def read_failures(path):
    """scripts/bench.sh's failure list: "WHAT<TAB>WHY" lines."""
    out = []
    if path and os.path.exists(path):
        with open(path, encoding='utf-8', errors='replace') as f:
            for line in f:
                line = line.rstrip('\n')
                if line:
                    what, _, why = line.partition('\t')
                    out.append(f'{what}: {why}' if why else what)
    return out


def gnuplot(script, enabled):
    if not enabled:
        return False
    try:
        subprocess.run(['gnuplot'], input=script.encode(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def renewals(log_path, t0):
    """Seconds since t0 of every 'svid issued' line of the agent log."""
    out = []
    if not log_path or not os.path.exists(log_path):
        return out
    with open(log_path, encoding='utf-8', errors='replace') as f:
        for line in f:
            if 'svid issued' not in line:
                continue
            ts = line.split(' ', 1)[0]
            try:
                t = datetime.datetime.strptime(ts, '%Y-%m-%dT%H:%M:%S.%fZ')
            except ValueError:
                continue
            t = t.replace(tzinfo=datetime.timezone.utc).timestamp()
            out.append(t - t0)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--results', required=True)
    ap.add_argument('--failures', help="scripts/bench.sh's list of failed measurements")
    ap.add_argument('--storm-log')
    ap.add_argument('--storm-t0', type=float, default=0)
    ap.add_argument('--storm-mem')
    ap.add_argument('--out', required=True)
    ap.add_argument('--img', required=True)
    ap.add_argument('--gnuplot', default='0')
    ap.add_argument('--command', default='scripts/bench.sh')
    ap.add_argument('--storm-ttl', type=int, default=60)
    ap.add_argument('--storm-secs', type=int, default=150)
    ap.add_argument('--storm-n', type=int, default=10000)
    a = ap.parse_args()
    rows, notes, meta = parse(a.results)
    plots = a.gnuplot == '1'
    img_rel = os.path.relpath(a.img, os.path.dirname(os.path.abspath(a.out)))
    L = []
    P = L.append
    mode = dict(KV.findall(meta.get('mode', '')))
    runs = mode.get('runs', '?')
    problems = read_failures(a.failures) + row_problems(rows)
    # the wolfSSL the binaries were linked with, and the other one
    dl = mode.get('default_lib', 'debian')
    ol = 'debian' if dl == 'sp' else 'sp'
    lib_name = {'sp': 'the wolfSSL SP build', 'debian': 'Debian\'s wolfSSL'}

    # ---------------------------------------------------------------- numbers
    ecc = {}
    for lib in ('debian', 'sp'):
        for th in ('1', '2'):
            for op in ('keygen', 'sign', 'verify', 'verify+sign'):
                ecc[(lib, th, op)] = med(rows, 'per_s', sec='ecc', lib=lib, threads=th, op=op)
    floor = {(lib, th): med(rows, 'per_s', sec='floor', lib=lib, threads=th)
             for lib in ('debian', 'sp') for th in ('1', '2')}
    floor_cpu = {lib: med(rows, 'cpu_us_per_cert', sec='floor', lib=lib, threads='1')
                 for lib in ('debian', 'sp')}
    sign_cfgs = sorted({(r['conns'], r['batch']) for r in rows if r.get('sec') == 'sign'},
                       key=lambda c: (int(c[0]), int(c[1])))
    sign = {}
    for lib in ('debian', 'sp'):
        for c, b in sign_cfgs:
            sign[(lib, c, b)] = {f: med(rows, f, sec='sign', lib=lib, conns=c, batch=b)
                                 for f in ('certs_per_s', 'req_p50_ms', 'req_p99_ms',
                                           'server_cpu_us_per_cert', 'client_cpu_us_per_cert',
                                           'errors', 'rejected')}
    cf_conns = sorted({r['conns'] for r in rows if r.get('sec') == 'cfssl'}, key=int)
    cfssl = {c: {f: med(rows, f, sec='cfssl', conns=c)
                 for f in ('certs_per_s', 'req_p50_ms', 'req_p99_ms', 'server_cpu_us_per_cert',
                           'errors')} for c in cf_conns}

    def best(d):
        items = [(v['certs_per_s'], k) for k, v in d.items() if v['certs_per_s'] is not None]
        return max(items) if items else (None, None)

    best_deb, best_deb_k = best({k: v for k, v in sign.items() if k[0] == 'debian'})
    best_sp, best_sp_k = best({k: v for k, v in sign.items() if k[0] == 'sp'})
    best_cf, best_cf_k = best(cfssl)
    wl = {}
    for server in ('agent', 'bare'):
        for m in ('keepalive', 'newconn'):
            for c in ('1', '16', '64'):
                wl[(server, m, c)] = {f: med(rows, f, sec='wl', server=server, mode=m, clients=c)
                                      for f in ('fetches_per_s', 'p50_us', 'p99_us', 'max_us',
                                                'server_cpu_us_per_fetch', 'errors')}
    gr = {}
    for proto in ('grpc', 'json'):
        for m in ('keepalive', 'newconn'):
            for c in ('1', '16', '64'):
                gr[(proto, m, c)] = {f: med(rows, f, sec='grpc', proto=proto, mode=m, clients=c)
                                     for f in ('fetches_per_s', 'p50_us', 'p99_us',
                                               'server_cpu_us_per_fetch', 'errors', 'goaways')}
    body = med(rows, 'body_bytes', sec='probe')
    mem = {}
    for r in rows:
        if r.get('sec') == 'mem':
            mem[r.get('what')] = r
    prop = next((r for r in rows if r.get('sec') == 'prop'), {})
    cold = {}
    for r in rows:
        if r.get('sec') == 'cold':
            cold.setdefault(r['what'], []).append(float(r['ms']))
    issue = {r['what']: r for r in rows if r.get('sec') == 'issue'}
    bulk = {r['what']: r for r in rows if r.get('sec') == 'bulk'}
    storm_poll = next((r for r in rows if r.get('prog') == 'storm_poll'), {})
    storm_cpu = next((r for r in rows if r.get('prog') == 'storm_cpu'), {})
    storm_mem = next((r for r in rows if r.get('prog') == 'storm_mem'), {})
    storm_iss = next((r for r in rows if r.get('prog') == 'storm_issued'), {})

    # ------------------------------------------------------------------ header
    P('# mayfly benchmarks')
    P('')
    P(f'Generated by `{a.command}` (which `make bench` runs after `make all`) on '
      f'{meta.get("mode", "").split("started=")[-1] or "?"}. Every figure is the median of '
      f'{runs} runs unless it says otherwise, and every baseline was measured in the same run, '
      'on the same machine, minutes apart. The goals are not pass/fail tests, but a run in which '
      'any measurement failed, timed out or measured zero exits nonzero and says so at the top.')
    P('')
    mach = dict(KV.findall(meta.get('machine', '')))
    P('| machine | |')
    P('|---|---|')
    P(f'| CPU | {meta.get("cpu", "?")}, `nproc` = {mach.get("nproc", "?")} |')
    P(f'| memory | {mach.get("mem_mb", "?")} MB |')
    P(f'| kernel | {mach.get("kernel", "?")} |')
    wv = dict(KV.findall('v=' + meta.get('wolfssl', '')))
    P(f'| libraries | wolfSSL {meta.get("wolfssl", "?").split()[0]} (Debian), libmicrohttpd '
      f'{wv.get("mhd", "?")}, cfssl {wv.get("cfssl", "?")} (Debian golang-cfssl) |')
    g = dict(KV.findall('rev=' + meta.get('git', '')))
    P(f'| tree | `{meta.get("git", "?").split()[0]}`, {g.get("dirty", "?")} files modified or '
      'untracked (other work in progress was in the tree) |')
    P(f'| load average | before {meta.get("load_before", "?")}, after '
      f'{meta.get("load_after", "?").split(" elapsed")[0]} |')
    el = dict(KV.findall(meta.get('load_after', '')))
    P(f'| duration | {el.get("elapsed_s", "?")} s |')
    P('')
    P('**Read these numbers with the machine in mind.** It has two cores, shared by the server '
      'under test, its load generator and, during this run, other builds and tests running on the same machine. '
      'Absolute rates move by 20-30 % from one run to the next; the ratios against baselines '
      'measured in the same run move much less. Where a load generator and a server share the two '
      'cores, each table also gives the server\'s own CPU time per operation (from '
      '`/proc/<pid>/stat`), which does not depend on how the cores were shared.')
    P('')

    # ------------------------------------------------------------------ summary
    P('## Headline figures')
    P('')
    P(f'The default build signs with {lib_name[dl]}. Every baseline below was '
      'measured in the same run.')
    P('')
    P('| measurement | mayfly | baseline (same run) | ratio | goal | |')
    P('|---|---|---|---|---|---|')

    def head(label, cells, need):
        """One headline row; every (name, value) in need must be measured."""
        for name, v in need:
            if v is None:
                problems.append(f'headline "{label}": {name} not measured')
        P(f'| {label} | ' + ' | '.join(cells) + ' |')

    best_dl = best_sp if dl == 'sp' else best_deb
    best_ol = best_deb if dl == 'sp' else best_sp
    fl2 = floor.get((dl, '2'))
    r1 = ratio(best_dl, fl2)
    head(f'CA signing, mTLS API, batched (certs/s, {lib_name[dl]})',
         [f0(best_dl), f'in-process floor, 2 threads: {f0(fl2)}', pct(r1), '>= 70 % of floor',
          verdict(None if r1 is None else r1 >= 0.7)],
         [('mayfly signing rate', best_dl), ('in-process floor', fl2)])
    r2 = ratio(best_dl, best_cf)
    head('CA signing vs cfssl (certs/s)',
         [f0(best_dl), f'cfssl serve: {f0(best_cf)}', xr(r2), '>= 3x',
          verdict(None if r2 is None else r2 >= 3)],
         [('mayfly signing rate', best_dl), ('cfssl signing rate', best_cf)])
    if best_ol is not None:
        r3 = ratio(best_ol, floor.get((ol, '2')))
        head(f'CA signing on {lib_name[ol]} (certs/s)',
             [f0(best_ol), f'cfssl: {f0(best_cf)}; its floor, 2 threads: {f0(floor.get((ol, "2")))}',
              f'{xr(ratio(best_ol, best_cf))} vs cfssl, {pct(r3)} of its floor', '(not the default)',
              ''], [])
    ka, kb = wl[('agent', 'keepalive', '64')], wl[('bare', 'keepalive', '64')]
    r4 = ratio(ka['fetches_per_s'], kb['fetches_per_s'])
    head('Workload API, keep-alive, 64 clients (fetches/s)',
         [f0(ka['fetches_per_s']), f'bare libmicrohttpd: {f0(kb["fetches_per_s"])}', pct(r4),
          '>= 60 %', verdict(None if r4 is None else r4 >= 0.6)],
         [('agent fetch rate', ka['fetches_per_s']), ('bare server fetch rate', kb['fetches_per_s'])])
    p99, bp99 = ka['p99_us'], kb['p99_us']
    r5 = ratio(p99, bp99)
    head('Workload API p99 at 64 clients, keep-alive',
         [f'{f0(None if p99 is None else p99 / 1000)} ms',
          f'bare: {f0(None if bp99 is None else bp99 / 1000)} ms', xr(r5), '<= 2x bare',
          verdict(None if r5 is None else r5 <= 2)],
         [('agent p99', p99), ('bare server p99', bp99)])
    g1, j1 = gr[('grpc', 'keepalive', '1')], gr[('json', 'keepalive', '1')]
    g64, j64 = gr[('grpc', 'keepalive', '64')], gr[('json', 'keepalive', '64')]
    gp50, jp50 = g1['p50_us'], j1['p50_us']
    head('Workload API, gRPC FetchX509SVID, first message p50 (1 client, keep-alive)',
         [f'{f0(None if gp50 is None else gp50 / 1000)} ms',
          f'JSON API: {f0(None if jp50 is None else jp50 / 1000)} ms', '', '< 1 ms',
          verdict(None if gp50 is None else gp50 < 1000)],
         [('gRPC first message p50', gp50), ('JSON p50', jp50)])
    r6 = ratio(g64['fetches_per_s'], j64['fetches_per_s'])
    head('Workload API, gRPC, keep-alive, 64 clients (calls/s)',
         [f0(g64['fetches_per_s']), f'JSON API: {f0(j64["fetches_per_s"])}', pct(r6), 'measured',
          verdict(None if r6 is None else True)],
         [('gRPC call rate', g64['fetches_per_s']), ('JSON fetch rate', j64['fetches_per_s'])])
    a1_, a2_ = (num(mem.get(k, {}).get('rss_kb')) for k in ('agent_n1', 'agent_n2'))
    n1_, n2_ = num(mem.get('agent_n1', {}).get('n')), num(mem.get('agent_n2', {}).get('n'))
    m0, m1 = mem.get('agent_idle_0svid', {}), mem.get('agent_n1', {})
    rss0, rss1 = mib(num(m0.get('rss_kb'))), mib(num(m1.get('rss_kb')))
    head(f'agent RSS with {m1.get("n", "1000")} SVIDs',
         [f'{f0(rss1)} MiB', f'the same agent, attested, no SVIDs: {f0(rss0)} MiB', xr(ratio(rss1, rss0)),
          '<= 8 MiB', verdict(None if rss1 is None else rss1 <= 8)],
         [('agent RSS with SVIDs', rss1), ('idle agent RSS', rss0)])
    per_kib = None
    if a1_ and a2_ and n1_ and n2_ and n2_ > n1_:
        per_kib = (a2_ - a1_) / (n2_ - n1_)
    head(f'agent memory per cached SVID (between {f0(n1_)} and {f0(n2_)})',
         [f'{per_kib:.1f} KiB' if per_kib is not None else 'not measured',
          f'VmRSS at {f0(n2_)} SVIDs: {f0(mib(a2_))} MiB', '', '<= 2 KiB',
          verdict(None if per_kib is None else per_kib <= 2)],
         [('agent RSS with the larger SVID count', a2_)])
    cold_k = next((k for k in sorted(cold) if k.startswith('agent_') and k != 'agent_1svid'), None)
    cold_ms = statistics.median(cold[cold_k]) if cold_k else None
    cold_1 = statistics.median(cold['agent_1svid']) if cold.get('agent_1svid') else None
    head(f'agent restart to first fetch, {cold_k[6:].replace("svid", "") if cold_k else "?"} cached SVIDs',
         [f'{f0(cold_ms)} ms', f'with 1 cached SVID: {f0(cold_1)} ms', '', '<= 500 ms',
          verdict(None if cold_ms is None else cold_ms <= 500)],
         [('agent cold start with many SVIDs', cold_ms)])
    pp50, pmax, pcli = num(prop.get('p50_ms')), num(prop.get('max_ms')), num(prop.get('cli_p50_ms'))
    head('propagation, CLI to watch stream (p50 / max)',
         [f'{f0(pp50)} / {f0(pmax)} ms', f'the CLI process alone (p50): {f0(pcli)} ms', '',
          'p50 < 200 ms, max < 1 s',
          verdict(None if pp50 is None else (pp50 < 200 and (pmax or 0) < 1000))],
         [('propagation p50', pp50), ('CLI process time', pcli)])
    exp = num(storm_poll.get('expired'))
    left = num(storm_poll.get('min_remaining_s'))
    frac = None if left is None else left / a.storm_ttl
    ca_us = per_svid_us(num(storm_cpu.get('ca_cpu_s')), num(storm_iss.get('ca_issued')))
    agent_us = per_svid_us(num(storm_cpu.get('agent_cpu_s')), num(storm_iss.get('n')))
    head('rotation storm: expired SVIDs served / least lifetime left',
         [f'{f0(exp)} / {f0(left)} s ({pct(frac)} of the TTL)',
          f'SVIDs checked: {f0(num(storm_poll.get("svids_checked")))}; CPU per SVID: '
          f'CA {f0(ca_us)} µs, agent {f0(agent_us)} µs', '', '0 / >= 40 %',
          verdict(None if exp is None or frac is None else exp == 0 and frac >= 0.4)],
         [('expired SVIDs served', exp), ('least lifetime left', left),
          ('SVIDs checked', num(storm_poll.get('svids_checked'))),
          ('CA CPU per SVID', ca_us), ('agent CPU per SVID', agent_us)])
    fsp, fdeb = floor.get(('sp', '1')), floor.get(('debian', '1'))
    head('wolfSSL SP build: signing floor (1 thread)',
         [f'{f0(fsp)} /s', f'Debian wolfSSL: {f0(fdeb)} /s', xr(ratio(fsp, fdeb)),
          'the default build', 'see section 7'],
         [('SP floor', fsp), ('Debian floor', fdeb)])
    P('')
    if problems:
        at = len(L) - (L[::-1].index('## Headline figures') + 1)
        sec = ['## Failed measurements', '',
               f'**This run failed: {len(problems)} measurement(s) are missing or wrong.** The '
               'figures below that depend on them are not to be trusted.', '']
        sec += [f'- {p}' for p in problems] + ['']
        L[at:at] = sec

    # ------------------------------------------------------------------ 1 signing
    P('## 1. CA signing')
    P('')
    P('`bench/loadgen` plays an agent: it gets an agent SVID with a join token '
      '(`tests/tools/ca_client attest`), pre-generates P-256 CSRs for one registration entry '
      '(so key generation is outside the measured loop), and POSTs `/v1/sign` batches over N '
      'keep-alive mTLS connections (mf_http, TLS 1.3, wolfSSL on the client side, '
      'GnuTLS in libmicrohttpd on the server side). It counts certificates returned within a '
      'window that starts after a 1 s warm-up. The CA runs with `--agent-rate 10000 '
      '--agent-burst 10000` so that admission control (50 requests/s per agent by default) does '
      'not cap the measurement; `--max-signing` stays at its default of 8.')
    P('')
    P('The **in-process floor** (`bench/bench_floor`) is the same work without the server: '
      '`mf_csr_verify` (parse the CSR, check its signature) plus `mf_x509_issue` (build and sign '
      'the leaf) with the CA\'s code and the same wolfSSL, over 500 pre-generated CSRs, with 1 and '
      '2 threads. **cfssl** (`cfssl serve` from Debian\'s golang-cfssl, a P-256 CA made with '
      '`cfssl gencert -initca`) is driven by the same load generator, POSTing '
      '`{"certificate_request": PEM}` to `/api/v1/cfssl/sign`, one CSR per request (its sign '
      'endpoint has no batches). The servers start first and stay up, and each run measures the '
      'floor, mayfly-ca and cfssl back to back, so the three meet the same load on this shared '
      f'machine; every figure of this section is the median of {mode.get("sign_runs", runs)} '
      'runs.')
    P('')
    P('| server | wolfSSL | connections | batch | certs/s | request p50 / p99 (ms) | server CPU per cert (µs) | errors |')
    P('|---|---|---|---|---|---|---|---|')
    for lib in ('debian', 'sp'):
        for c, b in sign_cfgs:
            v = sign.get((lib, c, b))
            if not v or v['certs_per_s'] is None:
                continue
            P(f'| mayfly-ca | {lib} | {c} | {b} | {f0(v["certs_per_s"])} | {f0(v["req_p50_ms"])} / '
              f'{f0(v["req_p99_ms"])} | {f0(v["server_cpu_us_per_cert"])} | '
              f'{f0(v["errors"])} |')
    for c in cf_conns:
        v = cfssl[c]
        P(f'| cfssl serve | (Go crypto) | {c} | 1 | {f0(v["certs_per_s"])} | {f0(v["req_p50_ms"])} / '
          f'{f0(v["req_p99_ms"])} | {f0(v["server_cpu_us_per_cert"])} | {f0(v["errors"])} |')
    if notes.get('cfssl') == 'not_installed':
        P('| cfssl | | | | not measured: golang-cfssl could not be installed | | | |')
    for lib in ('debian', 'sp'):
        for th in ('1', '2'):
            if floor.get((lib, th)) is not None:
                P(f'| in-process floor | {lib} | {th} thread(s) | - | {f0(floor[(lib, th)])} | - | '
                  f'{f0(floor_cpu[lib]) if th == "1" else "-"} | - |')
    P('')
    best_dl_k = best_sp_k if dl == 'sp' else best_deb_k
    if best_dl is not None:
        sc = sign[best_dl_k]['server_cpu_us_per_cert']
        P(f'Best mayfly configuration ({lib_name[dl]}, the default): {best_dl_k[1]} '
          f'connection(s), batches of {best_dl_k[2]}: **{f0(best_dl)} certs/s, {pct(r1)} of the '
          f'2-thread floor**. By CPU time, the server spends {f0(sc)} µs per certificate against '
          f'the floor\'s {f0(floor_cpu[dl])} µs, i.e. the floor\'s work (parse and verify the '
          'CSR, build and sign the leaf) is '
          f'{pct(ratio(floor_cpu[dl], sc))} of the CA\'s; the rest is TLS, the JSON parse of '
          'the request (jansson), base64, the registry read and one log line per issuance '
          '(each item\'s answer is written straight into a buffer on its signer thread, and '
          'the reply goes to libmicrohttpd without a copy). '
          'cfssl spends '
          f'{f0(cfssl[best_cf_k]["server_cpu_us_per_cert"] if best_cf_k else None)} µs per '
          'certificate. The CA verifies and signs on a fixed pool of signer threads (one per '
          'core, `--signers`), each with its own DRBG and wolfSSL tables.')
        P('')
    P('On two cores the load generator and the CA compete (the generator takes about '
      f'{f0(sign[best_dl_k]["client_cpu_us_per_cert"] if best_dl_k else None)} µs of CPU per '
      'certificate), and the 2-thread floor has both cores to itself: the '
      'ratio to the floor is a little pessimistic for that reason. The generator is a TLS '
      'client on mayfly\'s wolfSSL; the SP build decrypts with AES-NI (`--enable-intelasm`), '
      'where Debian\'s table-driven AES-GCM took about 11 µs per certificate away from the '
      'cores the CA signs on.')
    P('')

    # ------------------------------------------------------------------ 2 workload API
    P('## 2. Workload API')
    P('')
    P(f'`bench/wlload` runs C clients that fetch `GET /v1/x509` (with `workload.spiffe.io: true`) '
      f'as fast as answers come, for 1, 16 and 64 clients, each over one keep-alive connection or '
      f'with a new connection (and so a new attestation) per fetch. The agent holds one SVID for '
      f'uid 0; its answer is {f0(body)} bytes. The baseline `bench/bare_httpd` is libmicrohttpd '
      'with the agent\'s threading flags and limits, on a Unix socket, answering every request '
      'with a fixed body of the same size: what is left when attestation and rendering are taken '
      'away. Client and server share the two cores.')
    P('')
    P('| mode | clients | agent fetches/s | bare fetches/s | agent / bare | agent p50 / p99 (µs) | bare p50 / p99 (µs) | agent CPU per fetch (µs) | bare CPU per fetch (µs) |')
    P('|---|---|---|---|---|---|---|---|---|')
    for m in ('keepalive', 'newconn'):
        for c in ('1', '16', '64'):
            x, y = wl[('agent', m, c)], wl[('bare', m, c)]
            if x['fetches_per_s'] is None:
                continue
            P(f'| {m} | {c} | {f0(x["fetches_per_s"])} | {f0(y["fetches_per_s"])} | '
              f'{pct(ratio(x["fetches_per_s"], y["fetches_per_s"]))} | {f0(x["p50_us"])} / '
              f'{f0(x["p99_us"])} | {f0(y["p50_us"])} / {f0(y["p99_us"])} | '
              f'{f0(x["server_cpu_us_per_fetch"])} | {f0(y["server_cpu_us_per_fetch"])} |')
    P('')
    nst = int(num(notes.get('wl_agent_restarts')) or 0)
    errs = sum(int(num(v['errors']) or 0) for k, v in wl.items() if k[0] == 'agent')
    if nst or errs:
        P(f'**The agent stopped answering {nst} time(s) during these runs** (and {errs} agent '
          'fetches failed, medians above include them). The script checks the agent before each '
          'run and restarts it from its data directory when it no longer answers.')
        P('')
    P('Where the agent\'s time goes: a connection is attested fully at its first request '
      '(SO_PEERCRED, a pidfd, `/proc/<pid>` reads, the executable, user and group names through '
      'NSS: about 35-40 system calls). Each later request on it re-checks in three system calls '
      'that the same process still runs the same, unchanged executable with the same ids '
      '(`agent_attest_conn`), and gets the answer rendered once per snapshot for its selectors '
      '(`agent_snap_answer`). A new connection pays the full attestation, which is why the '
      '`newconn` rows are far from the bare server. With 64 clients on 2 cores the latency is '
      'mostly queueing: 64 runnable client threads and 64 server threads share two cores. The '
      'agent under test runs with `--max-connections 512 --max-watches 384` (defaults 128 and '
      '96): 64 clients opening a connection per call (3,000-4,000 connections/s, enough to '
      'saturate both cores) keep more connections open than the defaults allow while the '
      'closed ones are torn down, and the agent refuses the excess, as it should under such a '
      'flood (tests/integration/attack_wl_flood.sh); the limits are raised so that the table '
      'measures serving, not admission.')
    P('')
    if plots:
        xs = [(c, wl[('agent', 'keepalive', c)]['fetches_per_s'], wl[('bare', 'keepalive', c)]['fetches_per_s'],
               wl[('agent', 'newconn', c)]['fetches_per_s'], wl[('bare', 'newconn', c)]['fetches_per_s'])
              for c in ('1', '16', '64')]
        if all(v is not None for row in xs for v in row[1:]):
            data = '\n'.join(f'"{c}" {a1:.0f} {b1:.0f} {a2:.0f} {b2:.0f}' for c, a1, b1, a2, b2 in xs)
            png = os.path.join(a.img, 'workload-api.png')
            ok = gnuplot(f'''set terminal pngcairo size 800,420 font ",10"
set output "{png}"
set title "Workload API fetches/s (median of {runs} runs)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel "fetches/s"
set yrange [0:*]
set xlabel "concurrent clients"
set key top left
set grid ytics
$d << EOD
{data}
EOD
plot $d using 2:xtic(1) title "agent, keep-alive", '' using 3 title "bare MHD, keep-alive", '' using 4 title "agent, new conn", '' using 5 title "bare MHD, new conn"
''', plots)
            if not ok:
                ok = gnuplot(f'''set terminal png size 800,420
set output "{png}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top left
$d << EOD
{data}
EOD
plot $d using 2:xtic(1) title "agent, keep-alive", '' using 3 title "bare MHD, keep-alive", '' using 4 title "agent, new conn", '' using 5 title "bare MHD, new conn"
''', plots)
            if ok:
                P(f'![Workload API throughput]({img_rel}/workload-api.png)')
                P('')

    # ------------------------------------------------------------------ 3 memory
    if any(v['fetches_per_s'] is not None for v in gr.values()):
        P('### The gRPC Workload API')
        P('')
        P('`bench/grpcload` calls `SpiffeWorkloadAPI/FetchX509SVID` over HTTP/2 (nghttp2 as the '
          'client, one connection per client thread) and stops the clock at the first complete '
          '`X509SVIDResponse` of each call, then cancels the stream; in `newconn` mode every call '
          'has a connection (and an attestation) of its own. `bench/wlload` runs against the same '
          'agent right after each gRPC run, so the two protocols are compared in the same run.')
        P('')
        P('| mode | clients | gRPC calls/s | JSON fetches/s | gRPC / JSON | gRPC first message p50 / p99 (µs) | JSON p50 / p99 (µs) | agent CPU per gRPC call (µs) | per JSON fetch (µs) |')
        P('|---|---|---|---|---|---|---|---|---|')
        for m in ('keepalive', 'newconn'):
            for c in ('1', '16', '64'):
                x, y = gr[('grpc', m, c)], gr[('json', m, c)]
                if x['fetches_per_s'] is None:
                    continue
                P(f'| {m} | {c} | {f0(x["fetches_per_s"])} | {f0(y["fetches_per_s"])} | '
                  f'{pct(ratio(x["fetches_per_s"], y["fetches_per_s"]))} | {f0(x["p50_us"])} / '
                  f'{f0(x["p99_us"])} | {f0(y["p50_us"])} / {f0(y["p99_us"])} | '
                  f'{f0(x["server_cpu_us_per_fetch"])} | {f0(y["server_cpu_us_per_fetch"])} |')
        P('')
        ga = sum(int(num(v['goaways']) or 0) for k, v in gr.items() if k[0] == 'grpc')
        if ga:
            P(f'The keep-alive gRPC clients were sent away (GOAWAY) {ga} time(s) in all (medians '
              'of the runs): the agent\'s nghttp2 bounds how fast a client may reset streams, and '
              'the load generator resets every call after its first message. It reconnects; '
              'those calls are not counted.')
            P('')
    P('## 3. Memory')
    P('')
    P('VmRSS and VmHWM from `/proc/<pid>/status`, read 2 s after the last SVID was installed. '
      'Entries were created through the admin API (`bench/bulkload`: `POST /v1/entries` over the '
      'admin socket, 4 keep-alive connections), each with a 1 h TTL so that nothing rotates during '
      'the reading. RSS includes the shared libraries\' resident pages (RssFile); RssAnon is the '
      'process\'s own memory.')
    P('')
    P('| process | state | VmRSS (MiB) | VmHWM (MiB) | RssAnon (MiB) | threads |')
    P('|---|---|---|---|---|---|')
    labels = [('agent_idle_0svid', 'agent', 'idle, attested, no entries'),
              ('agent_idle_1svid', 'agent', 'idle, 1 SVID'),
              ('agent_after_wl', 'agent', '1 SVID, after the Workload API load'),
              ('agent_n1', 'agent', f'{mem.get("agent_n1", {}).get("n", "?")} SVIDs'),
              ('agent_n2', 'agent', f'{mem.get("agent_n2", {}).get("n", "?")} SVIDs'),
              ('agent_n2_restarted', 'agent', f'{mem.get("agent_n2_restarted", {}).get("n", "?")} '
               'SVIDs, after a restart (loaded from its disk cache)'),
              ('ca_with_agent_n2', 'CA', f'serving that agent ({mem.get("ca_with_agent_n2", {}).get("n", "?")} entries)'),
              ('ca_empty', 'CA', 'empty registry'),
              ('ca_n', 'CA', f'{mem.get("ca_n", {}).get("n", "?")} entries'),
              ('ca_n_restarted', 'CA', f'{mem.get("ca_n_restarted", {}).get("n", "?")} entries, '
               'after a restart')]
    for key, proc, what in labels:
        m = mem.get(key)
        if not m:
            continue
        P(f'| {proc} | {what} | {f0(mib(num(m.get("rss_kb"))))} | {f0(mib(num(m.get("hwm_kb"))))} '
          f'| {f0(mib(num(m.get("anon_kb"))))} | {m.get("threads", "?")} |')
    for key, proc in (('sign_mem', 'CA after the signing benchmark'),):
        for r in rows:
            if r.get('sec') == key:
                P(f'| CA | after the signing load ({r.get("lib")}) | {f0(mib(num(r.get("rss_kb"))))} | '
                  f'{f0(mib(num(r.get("hwm_kb"))))} | {f0(mib(num(r.get("anon_kb"))))} | '
                  f'{r.get("threads", "?")} |')
    cm = next((r for r in rows if r.get('sec') == 'cfssl_mem'), None)
    if cm:
        P(f'| cfssl serve | after its signing load | {f0(mib(num(cm.get("rss_kb"))))} | '
          f'{f0(mib(num(cm.get("hwm_kb"))))} | {f0(mib(num(cm.get("anon_kb"))))} | '
          f'{cm.get("threads", "?")} |')
    P('')
    a0, a1, a2 = (num(mem.get(k, {}).get('rss_kb')) for k in ('agent_idle_0svid', 'agent_n1', 'agent_n2'))
    n1, n2 = num(mem.get('agent_n1', {}).get('n')), num(mem.get('agent_n2', {}).get('n'))
    if a1 and a2 and n1 and n2 and n2 > n1:
        per = (a2 - a1) * 1024 / (n2 - n1)
        P(f'The agent grows by about **{per / 1024:.1f} KiB per cached SVID** (between {n1:.0f} and '
          f'{n2:.0f}); SPIRE\'s is reported at about 3 KB. Each private key takes a 192-byte slot '
          'in a locked, MADV_DONTDUMP slab page (`mf_secret_alloc`), shared by reference between '
          'the cache and every snapshot; the snapshot holds references to the parsed chains and '
          'the keys, and renders PEM or protobuf only when asked (finding 5).')
        P('')
    for k, r in issue.items():
        P(f'Issuing {r.get("n")} SVIDs on the agent (entries created, then synced, signed in '
          f'batches of up to 500, verified and written to disk) took {f0(num(r.get("ms")))} ms.')
    for k in ('agent_entries_1', 'agent_entries_2', 'ca_entries', 'storm_entries'):
        r = bulk.get(k)
        if r:
            P(f'Bulk entry creation ({k.replace("_", " ")}): {r.get("count")} entries in '
              f'{r.get("seconds")} s, {r.get("per_s")}/s through the admin API.')
    P('')

    # ------------------------------------------------------------------ 4 propagation
    P('## 4. Propagation')
    P('')
    P(f'`bench/propagate` keeps a watch stream (`GET /v1/x509?watch=true`) open as a workload '
      f'(uid 0), then, {prop.get("trials", "?")} times, runs `mayfly-ca entry create` (a real CLI '
      'process) for a new SPIFFE ID whose selector matches it and stops the clock when a document '
      'on the stream carries the new ID. The time includes the CLI\'s own start and exit.')
    P('')
    P('| trials | p50 | p90 | max | mean | of which the CLI process (p50) | timeouts (5 s) |')
    P('|---|---|---|---|---|---|---|')
    P(f'| {prop.get("trials", "n/m")} | {f0(num(prop.get("p50_ms")))} ms | {f0(num(prop.get("p90_ms")))} ms '
      f'| {f0(num(prop.get("max_ms")))} ms | {f0(num(prop.get("mean_ms")))} ms | '
      f'{f0(num(prop.get("cli_p50_ms")))} ms | {prop.get("timeouts", "n/m")} |')
    P('')
    P('The path: admin API -> registry (SQLite, synchronous commit) -> every waiting `/v1/sync` '
      'long poll is woken -> the agent applies the new view, generates a key and a CSR and signs '
      'it through `/v1/sign` -> publishes a new snapshot -> the watch stream renders it. '
      'SPIRE\'s agents poll every 5 s.')
    P('')

    # ------------------------------------------------------------------ 4b several servers
    P('## 4b. Several CA servers on one PostgreSQL')
    P('')
    hprop = next((r for r in rows if r.get('sec') == 'ha_prop'), {})
    fo = [num(r.get('ms')) for r in rows if r.get('sec') == 'ha_failover' and r.get('ms')]
    fo_to = sum(1 for r in rows if r.get('sec') == 'ha_failover' and r.get('timeout'))
    if notes.get('ha_not_measured'):
        P(f'Not measured in this run ({notes.get("ha_not_measured")}).')
        P('')
    else:
        P('`bench/ha.sh`: two mayfly-ca servers share one PostgreSQL (a private server started '
          'for the run). Propagation: as section 4, but the entry is created through server A '
          'and the workload\'s agent talks to server B, so the change crosses servers through '
          'PostgreSQL LISTEN/NOTIFY. Failover: an agent given both servers loses the one it '
          'drew to SIGKILL; an entry is then created through the other, and the clock stops when '
          'the workload is served it (the agent noticed, moved with its backoff, synced and '
          'signed through the other server).')
        P('')
        P('| propagation trials | p50 | p90 | max | timeouts (5 s) | failover runs | failover '
          'median | failover max | failover timeouts (30 s) |')
        P('|---|---|---|---|---|---|---|---|---|')
        P(f'| {hprop.get("trials", "n/m")} | {f0(num(hprop.get("p50_ms")))} ms | '
          f'{f0(num(hprop.get("p90_ms")))} ms | {f0(num(hprop.get("max_ms")))} ms | '
          f'{hprop.get("timeouts", "n/m")} | {len(fo)} | '
          f'{f0(statistics.median(fo) if fo else None)} ms | {f0(max(fo) if fo else None)} ms | '
          f'{fo_to} |')
        P('')

    # ------------------------------------------------------------------ 5 storm
    P('## 5. Rotation storm')
    P('')
    P(f'{a.storm_n:,} entries with a {a.storm_ttl} s TTL on one agent (the CA runs with '
      f'`--ca-ttl 1h`, so that TTL is allowed), for {a.storm_secs} s from the agent\'s start: the '
      f'first issuance and then a renewal of every SVID each ~{a.storm_ttl // 2} s (drawn once per '
      'SVID in 45-55 % of its lifetime). The entries are spread over '
      f'{len([r for r in rows if r.get("prog") == "poll"]) or "?"} uids; `bench/storm_poll` runs one '
      'process per uid (setresuid, so the agent attests each as that workload) fetching '
      '`/v1/x509` every second and checking the NotAfter of every leaf it is handed against the '
      'clock at arrival.')
    P('')
    P('| SVIDs | fetches | SVIDs checked | expired SVIDs served | served in their last second | least remaining lifetime seen | 403 answers | errors |')
    P('|---|---|---|---|---|---|---|---|')
    P(f'| {a.storm_n:,} | {storm_poll.get("fetches", "n/m")} | {storm_poll.get("svids_checked", "n/m")} | '
      f'**{storm_poll.get("expired", "n/m")}** | {storm_poll.get("last_second", "n/m")} | '
      f'{storm_poll.get("min_remaining_s", "n/m")} s | '
      f'{storm_poll.get("denied", "n/m")} | {storm_poll.get("errors", "n/m")} |')
    P('')
    mr = num(storm_poll.get('min_remaining_s'))
    if mr is not None and mr < a.storm_ttl * 0.4:
        P(f'**Renewals fell behind.** An SVID is due for renewal at 45-55 % of its life, so a '
          f'workload should never see less than about {a.storm_ttl * 0.45:.0f} s left; it saw '
          f'{mr:.0f} s. On this machine the agent (one worker thread generating a key, a CSR and '
          'verifying the result for every SVID, on Debian wolfSSL) plus the CA plus the pollers '
          f'could not renew {a.storm_n:,} SVIDs every {a.storm_ttl // 2} s: the rate needed is '
          f'{a.storm_n / (a.storm_ttl * 0.5):.0f}/s. The agent never serves an SVID past its '
          'NotAfter (it drops it from the snapshot), so a longer lag shows up as 403 answers, '
          'not as expired certificates.')
        P('')
    ca_cpu = num(storm_cpu.get('ca_cpu_s'))
    wall = num(storm_cpu.get('wall_s'))
    issued_ca = num(storm_iss.get('ca_issued'))
    P('| CA CPU time | CA CPU share | CA peak RSS (VmHWM) | agent peak RSS (VmHWM) | SVIDs issued (agent log) | agent warnings |')
    P('|---|---|---|---|---|---|')
    P(f'| {f0(ca_cpu)} s over {f0(wall)} s | {pct(ratio(ca_cpu, wall))} of one core | '
      f'{f0(mib(num(storm_mem.get("ca_hwm_kb"))))} MiB | {f0(mib(num(storm_mem.get("agent_hwm_kb"))))} MiB | '
      f'{storm_iss.get("n", "n/m")} | {storm_iss.get("agent_warnings", "n/m")} |')
    P('')
    if ca_cpu and issued_ca:
        P(f'That is {f0(ca_cpu * 1e6 / issued_ca)} µs of CA CPU per certificate issued '
          f'({issued_ca:.0f} certificates including the agent\'s own).')
        P('')
    agent_cpu = num(storm_cpu.get('agent_cpu_s'))
    issued_agent = num(storm_iss.get('n'))
    if agent_cpu and issued_agent:
        P(f'The agent used {f0(agent_cpu)} s of CPU from its start to the end of the storm: '
          f'{f0(agent_cpu * 1e6 / issued_agent)} µs per SVID installed ({issued_agent:.0f}), '
          'for its key, its CSR, the CA round trip on its side, the check of the answer, the '
          'disk cache and the snapshots, and serving the pollers\' fetches in the same time.')
        P('')
    ren = renewals(a.storm_log, a.storm_t0)
    if ren:
        width = 2 if a.storm_secs <= 60 else 5
        bins = {}
        for t in ren:
            if t >= 0:
                bins[int(t // width) * width] = bins.get(int(t // width) * width, 0) + 1
        P(f'Renewal instants (SVIDs installed by the agent per {width} s, from its log):')
        P('')
        P('| t (s) | ' + ' | '.join(str(k) for k in sorted(bins)) + ' |')
        P('|---|' + '---|' * len(bins))
        P('| SVIDs | ' + ' | '.join(str(bins[k]) for k in sorted(bins)) + ' |')
        P('')
        if plots:
            png = os.path.join(a.img, 'rotation-storm.png')
            data = '\n'.join(f'{k} {v}' for k, v in sorted(bins.items()))
            ok = gnuplot(f'''set terminal pngcairo size 800,380 font ",10"
set output "{png}"
set title "Rotation storm: SVIDs installed per {width} s ({a.storm_n} SVIDs, TTL {a.storm_ttl} s)"
set style fill solid 0.8
set boxwidth {width * 0.9}
set xlabel "seconds since agent start"
set ylabel "SVIDs"
set yrange [0:*]
set xrange [0:*]
set grid ytics
$d << EOD
{data}
EOD
plot $d using ($1+{width / 2}):2 with boxes notitle
''', plots)
            if ok:
                P(f'![Renewal instants]({img_rel}/rotation-storm.png)')
                P('')

    # ------------------------------------------------------------------ 6 cold start
    P('## 6. Cold start')
    P('')
    P('| what | median | min - max | runs |')
    P('|---|---|---|---|')
    for k, v in sorted(cold.items()):
        desc = {'agent_1svid': 'agent restart to first successful `/v1/x509` fetch, 1 cached SVID'}.get(k)
        if desc is None and k.startswith('agent_'):
            desc = f'agent restart to first successful fetch, {k[6:].replace("svid", "")} cached SVIDs'
        if desc is None and k.startswith('ca_'):
            desc = f'CA start to its ready line, {k[3:].replace("_entries", "")} entries in the registry'
        P(f'| {desc} | {f0(statistics.median(v))} ms | {f0(min(v))} - {f0(max(v))} ms | {len(v)} |')
    P('')
    P('The agent is started with its data directory from the previous run (no join token): it '
      'reuses its saved identity, reads its disk cache on a thread pool (as many threads as '
      'cores) and waits for its first sync with the CA before it opens its socket: at most '
      '100 ms when the cache held SVIDs to serve (they are served at once, the sync goes on), '
      'at most 5 s when it held none. The CA '
      'opens its registry, loads or creates its keys and issues its own server SVID before it '
      'prints its ready line.')
    P('')

    # ------------------------------------------------------------------ 7 crypto floor
    P('## 7. The crypto floor: Debian wolfSSL and the SP build')
    P('')
    P('`bench/bench_ecc` calls wolfCrypt directly (no mayfly code): P-256 key generation, '
      'signing with one key (as the CA does), verification over 64 distinct keys (as a CA sees '
      'a new key in every CSR; Debian\'s wolfSSL caches tables for points it meets repeatedly, '
      'which verifying with one key would measure instead), and one verification plus one '
      'signature (the public-key work per CSR). The SP build is wolfSSL 5.5.4 from Debian\'s '
      'source package with Debian\'s configure flags plus `--enable-sp --enable-sp-asm '
      '--disable-sakke` and, on x86_64, `--enable-intelasm` (AES-NI for TLS, AVX2 for SHA-2; '
      '`scripts/build-wolfssl-sp.sh`).')
    P('')
    have_sp = any(ecc[('sp', t, o)] for t in ('1', '2') for o in ('sign',))
    P('| operation (per second) | Debian, 1 thread | Debian, 2 threads | SP, 1 thread | SP, 2 threads | SP / Debian (1 thread) |')
    P('|---|---|---|---|---|---|')
    for op in ('keygen', 'sign', 'verify', 'verify+sign'):
        P(f'| {op} | {f0(ecc[("debian", "1", op)])} | {f0(ecc[("debian", "2", op)])} | '
          f'{f0(ecc[("sp", "1", op)])} | {f0(ecc[("sp", "2", op)])} | '
          f'{xr(ratio(ecc[("sp", "1", op)], ecc[("debian", "1", op)]))} |')
    P(f'| mayfly floor (mf_csr_verify + mf_x509_issue) | {f0(floor[("debian", "1")])} | '
      f'{f0(floor[("debian", "2")])} | {f0(floor[("sp", "1")])} | {f0(floor[("sp", "2")])} | '
      f'{xr(ratio(floor[("sp", "1")], floor[("debian", "1")]))} |')
    P('')
    if not have_sp:
        P('The SP columns were not measured in this run: run `WOLFSSL_SP=1 scripts/bench.sh` '
          '(it builds the library first, about 3 minutes).')
        P('')
    P('**The SP build is the default.** `scripts/install-deps.sh` builds it once per Debian '
      'version into `~/.cache/mayfly/wolfssl-sp-<version>-r<rev>` (`scripts/build-wolfssl-sp.sh`); the '
      'Makefile compiles against its headers and links with its directory in the binaries\' '
      'RUNPATH, and `make install` puts a private copy in `PREFIX/lib/mayfly` (docs/operations.md). '
      'The library keeps Debian\'s soname and option set (the struct sizes mayfly sees are '
      'identical, checked), so either build runs the same binaries; this script measures the '
      'other one by putting it first in `LD_LIBRARY_PATH`:')
    P('')
    P('```sh')
    P('make WOLFSSL=system                          # build against Debian\'s libwolfssl instead')
    P('LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu bin/mayfly-ca run ...   # or swap it at run time')
    P('```')
    P('')
    P('`--disable-sakke` matters: `--enable-distro` turns SAKKE on, and with SP that adds a '
      '1 MiB thread-local point cache (1.35 MiB of static TLS per thread). glibc takes static TLS '
      'out of each thread\'s stack, so every thread created with a smaller stack fails. Without '
      'SAKKE the TLS is about 360 KiB (the P-256/384/521 point caches with wolfSSL\'s default '
      'of 16 entries); the SP build also leaves out P-521 and keeps two entries per curve, '
      'which makes it 30 KiB (finding 5). mayfly-ca sizes its '
      'connection threads\' stacks as 512 KiB plus the static TLS of the loaded libraries, so a '
      'handler keeps its 512 KiB (JSON at its nesting limit needs more than the 150 KiB a fixed '
      '512 KiB stack would leave). mayfly uses no SAKKE or ECCSI.')
    P('')

    # ------------------------------------------------------------------ findings
    P('## Hot-path findings')
    P('')
    P('Found while building these benchmarks, and what became of each.')
    P('')
    P('1. **wolfSSL\'s fixed-point cache and `wc_ecc_fp_free()`** (api/pki/mf_key.c), '
      '*resolved by the signer pool*. Debian\'s wolfSSL is built with FP_ECC: a point met twice '
      'in a thread gets a precomputed table of about 800 KB. Freeing that cache after every '
      'verification bounded the memory of the CA\'s connection threads but rebuilt the base '
      'point\'s table for every certificate (5.3 ms per certificate instead of 0.48 ms), so the '
      'cache was dropped after every operation (about 1 ms per certificate). The CA now verifies '
      'and signs on a fixed pool of signer threads (`ca/ca_signer.c`, one per core): each binds '
      'an `mf_signctx` and keeps its tables, whose memory is bounded by the pool, not by the '
      'connections. On the SP build (the default) the P-256 point cache is a bounded 67 KB per '
      'thread either way.')
    P('2. **A new DRBG per signature** (api/pki/mf_key.c `sign_digest`, `mf_key_generate`), '
      '*resolved for the CA*: `wc_InitRng` runs wolfSSL\'s DRBG health test and reseeds every '
      'time, 14 µs per call, about 10 % of the CA\'s CPU per certificate on the SP build. Each '
      'signer thread now keeps one seeded DRBG for its life (`mf_signctx`; wolfCrypt reseeds it '
      'itself; a forked child falls back to a new one per call); other callers (the agent, the '
      'CLI) still seed one per signature.')
    P('3. **Per-request attestation on keep-alive connections** (agent/agent_sock.c, '
      'agent_attest.c), *resolved*: 35-40 system calls per `/v1/x509` request, most of the '
      'agent\'s 67-87 µs per fetch. A connection is now attested fully once and re-checked in '
      'three system calls per request (the exec check stays in force), and each workload\'s '
      'answer is rendered once per snapshot (section 2).')
    P('4. **The Workload API stopped accepting after a burst of new connections**, *resolved* '
      'by the admission rework (agent/agent_admit.c): connections are counted from accept until '
      'their socket is closed, per uid and in all, below libmicrohttpd\'s own limit, so the '
      'count comes back down after a flood (tests/integration/attack_wl_flood.sh).')
    P('5. **Memory per cached SVID** (15.2 KiB), *reduced*: keys share locked slab pages (20 '
      'keys of 192 bytes per page, each slot wiped when freed), and a snapshot holds references '
      'to them and to the cached chains instead of copies (PEM and protobuf are rendered once '
      'per snapshot, on demand); a certificate keeps its SPIFFE ID as a heap string sized to '
      'fit; a cached entry keeps a SHA-256 of its canonical JSON instead of the text; and the '
      'worker returns the free pages of malloc\'s arenas to the kernel (`malloc_trim`) before '
      'it waits after each exchange with the CA. A public key keeps its point once (inside '
      'its SPKI) and a certificate its key identifiers as slices of its DER, so a parsed '
      'leaf takes 448 bytes instead of 672; a snapshot keeps each SVID\'s ID, hint, selectors '
      'and chain array in one block; the cache is sized to the CA\'s entry list instead of '
      'doubling. What is left per SVID is mostly the parsed leaf and its DER, the entry\'s '
      'strings and selectors (in the cache and again in the snapshot\'s block), the key\'s '
      'slot and the allocator\'s overhead. The idle agent no longer loads GnuTLS: it links a '
      'static libmicrohttpd built without HTTPS (`scripts/build-mhd-lite.sh`), and the static '
      'archive of the SP build of wolfSSL with `--gc-sections`, carrying only the wolfSSL code '
      'it calls (0.9 MiB less resident than the shared library); that build leaves out P-521 '
      'and keeps two point-cache entries per curve, 30 KiB of thread-local storage per thread '
      'instead of 358 KiB. Most of what remains of an idle agent is the resident pages of its '
      'own code, wolfSSL\'s and glibc\'s (VmRSS minus RssAnon, section 3).')
    P('')

    # ------------------------------------------------------------------ not measured
    P('## Not measured here')
    P('')
    P('- Several agents against one CA (a herd after a partition); the storm above is one agent.')
    P('- Latency under a CA outage, and anything across real network hops: all traffic is '
      'loopback.')
    P('- SPIRE itself: it is not packaged for Debian; its figures above are the ones its users '
      'report.')
    if notes.get('cfssl') == 'not_installed':
        P('- cfssl: golang-cfssl could not be installed on this machine.')
    P('')
    P('## Reproducing')
    P('')
    P('```sh')
    P('make bench                                   # = make all && scripts/bench.sh')
    P('BENCH_QUICK=1 scripts/bench.sh               # 2-3 minute smoke version, same failure rule')
    P('WOLFSSL_SP=1 scripts/bench.sh                # builds the SP wolfSSL first if it is missing')
    P('```')
    P('')
    P('Each program in `bench/` runs on its own too; its usage is in the comment at its top '
      '(for example `build/rel/bench/bench_floor --threads 2 --seconds 5`). The raw lines of the '
      'last run are kept in `build/bench/benchmarks-raw.txt`. A measurement that fails, times '
      'out (`BENCH_TIMEOUT`, 300 s), prints nothing or measures zero, or a headline figure or '
      'baseline that is missing, makes the run exit 1 after the others have run, naming each '
      'on stderr and in a "Failed measurements" section at the top of the report.')
    P('')
    with open(a.out, 'w', encoding='utf-8') as f:
        f.write('\n'.join(L))
    if problems:
        print(f'bench: FAILED: {len(problems)} measurement(s) missing or wrong '
              f'(report: {a.out}):', file=sys.stderr)
        for p in problems:
            print(f'bench:   {p}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
