/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_floor: the in-process ceiling of CA signing. The work the CA must do
 * per CSR, with the CA's own code and the same wolfSSL, and nothing else:
 * parse the CSR and check its self-signature (mf_csr_verify), then build
 * and sign the leaf (mf_x509_issue). No HTTP, TLS, JSON, registry or
 * logging. CSRs are generated before the clock starts. Each thread works
 * as one of the CA's signer threads does (ca/ca_signer.c): with its own
 * mf_signctx bound, so one seeded DRBG for all its signatures and wolfSSL's
 * point tables kept between certificates.
 *
 *   bench_floor [--threads N] [--seconds S] [--csrs K]
 *
 * prints: floor threads=N per_s=X cpu_us_per_cert=Y
 * (cpu_us_per_cert is this process's CPU time per certificate, so it stays
 * meaningful when the threads share fewer cores than there are threads).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "api/core/mf_time.h"
#include "api/pki/mf_signctx.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"
#include "bench/bench_util.h"

struct shared {
    struct mf_buf *csrs;
    size_t n_csrs;
    const struct mf_cert *ca_cert;
    const struct mf_key *ca_key;
    int64_t deadline_ns;
};

struct job {
    const struct shared *sh;
    size_t first;
    uint64_t done;
    mf_res err;
    pthread_t th;
};

static mf_res one(const struct shared *sh, size_t i)
{
    mf_res rc;
    struct mf_csr *csr = NULL;
    struct mf_cert *leaf = NULL;
    const struct mf_buf *der = &sh->csrs[i % sh->n_csrs];
    MF_TRY_OUT(mf_csr_verify(der->data, der->len, &csr));
    struct mf_issue_req req = {
        .id = mf_csr_spiffe_id(csr),
        .subject_key = mf_csr_pubkey(csr),
        .now = mf_now(),
        .ttl = 3600,
    };
    MF_ENSURE_OUT(req.id != NULL, MF_ERR_STATE);
    MF_TRY_OUT(mf_x509_issue(&req, sh->ca_cert, sh->ca_key, &leaf));
    rc = MF_RES_OK;
out:
    mf_cert_free(leaf);
    mf_csr_free(csr);
    return rc;
}

static void *run(void *arg)
{
    struct job *j = arg;
    mf_x509_global_init();
    struct mf_signctx *ctx = NULL;
    j->err = mf_signctx_new(&ctx);
    if (!mf_ok(j->err)) {
        return NULL;
    }
    mf_signctx_bind(ctx);
    size_t i = j->first;
    while (mf_ok(j->err) && bench_ns() < j->sh->deadline_ns) {
        for (int k = 0; k < 4; k++) {
            j->err = one(j->sh, i++);
            if (!mf_ok(j->err)) {
                break;
            }
            j->done++;
        }
    }
    mf_signctx_bind(NULL);
    mf_signctx_free(ctx);
    return NULL;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    long threads = 1, seconds = 2, n_csrs = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0) {
            threads = bench_long("--threads", argv[i + 1], 1, 64);
        } else if (strcmp(argv[i], "--seconds") == 0) {
            seconds = bench_long("--seconds", argv[i + 1], 1, 600);
        } else if (strcmp(argv[i], "--csrs") == 0) {
            n_csrs = bench_long("--csrs", argv[i + 1], 1, 100000);
        } else {
            fprintf(stderr, "usage: bench_floor [--threads N] [--seconds S] [--csrs K]\n");
            return 2;
        }
    }
    mf_x509_global_init();
    int rc = 2;
    struct mf_key *ca_key = NULL;
    struct mf_cert *ca_cert = NULL;
    struct shared sh;
    memset(&sh, 0, sizeof(sh));
    struct job jobs[64];
    struct mf_spiffe_id td;
    mf_res r = mf_spiffeid_parse_cstr("spiffe://example.org", &td);
    if (mf_ok(r)) {
        r = mf_key_generate(MF_KEY_EC_P256, &ca_key);
    }
    if (mf_ok(r)) {
        r = mf_x509_self_signed(&td, ca_key, mf_now(), 86400, &ca_cert);
    }
    if (!mf_ok(r)) {
        rc = bench_fail("CA set-up", r);
        goto out;
    }
    sh.csrs = calloc((size_t)n_csrs, sizeof(*sh.csrs));
    if (sh.csrs == NULL) {
        goto out;
    }
    for (long i = 0; i < n_csrs; i++) {
        struct mf_key *k = NULL;
        mf_buf_init(&sh.csrs[i], MF_MAX_CSR, 0);
        sh.n_csrs++;
        r = mf_key_generate(MF_KEY_EC_P256, &k);
        if (mf_ok(r)) {
            r = mf_csr_create(k, "spiffe://example.org/bench/floor", &sh.csrs[i]);
        }
        mf_key_free(k);
        if (!mf_ok(r)) {
            rc = bench_fail("CSR", r);
            goto out;
        }
    }
    sh.ca_cert = ca_cert;
    sh.ca_key = ca_key;
    double c0 = self_cpu();
    int64_t t0 = bench_ns();
    sh.deadline_ns = t0 + (int64_t)seconds * 1000000000LL;
    for (long t = 0; t < threads; t++) {
        memset(&jobs[t], 0, sizeof(jobs[t]));
        jobs[t].sh = &sh;
        jobs[t].first = (size_t)t * 7;
        if (pthread_create(&jobs[t].th, NULL, run, &jobs[t]) != 0) {
            fprintf(stderr, "bench_floor: pthread_create failed\n");
            threads = t;
            goto out;
        }
    }
    long nthreads = threads;
    uint64_t done = 0;
    mf_res err = MF_RES_OK;
    for (long t = 0; t < threads; t++) {
        pthread_join(jobs[t].th, NULL);
        done += jobs[t].done;
        if (!mf_ok(jobs[t].err)) {
            err = jobs[t].err;
        }
    }
    threads = 0;
    double secs = (double)(bench_ns() - t0) / 1e9, cpu = self_cpu() - c0;
    if (!mf_ok(err)) {
        rc = bench_fail("sign", err);
        goto out;
    }
    if (done == 0) {
        fprintf(stderr, "bench_floor: no certificate issued in %.1f s\n", secs);
        rc = 1;
        goto out;
    }
    printf("floor threads=%ld per_s=%.0f cpu_us_per_cert=%.1f\n", nthreads, (double)done / secs,
           cpu * 1e6 / (double)done);
    rc = 0;
out:
    for (long t = 0; t < threads; t++) {
        pthread_join(jobs[t].th, NULL);
    }
    for (size_t i = 0; i < sh.n_csrs; i++) {
        mf_buf_cleanup(&sh.csrs[i]);
    }
    free(sh.csrs);
    mf_cert_free(ca_cert);
    mf_key_free(ca_key);
    return rc;
}
