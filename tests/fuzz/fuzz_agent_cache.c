/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the agent's on-disk cache formats (agent_cache.h):
 * the per-entry svids/<h>.svid files and agent.svid (a JSON header line,
 * a PKCS#8 key and a certificate chain) and bundle.json (SPIFFE JWKS). The
 * agent wrote them itself, but they outlive crashes, disk faults and
 * restarts of other versions, so their reader must refuse anything else
 * cleanly. The first byte picks the file; the rest is its content. The
 * data dir is a private temp dir; the real load functions run on it.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "agent/agent_cache.h"
#include "api/core/mf_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[40];

static void teardown(void)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/svids/00.svid", g_dir);
    (void)unlink(p);
    snprintf(p, sizeof(p), "%s/svids", g_dir);
    (void)rmdir(p);
    snprintf(p, sizeof(p), "%s/agent.svid", g_dir);
    (void)unlink(p);
    snprintf(p, sizeof(p), "%s/bundle.json", g_dir);
    (void)unlink(p);
    (void)rmdir(g_dir);
}

static void put(const char *name, const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        abort();
    }
    if (n > 0 && write(fd, p, n) != (ssize_t)n) {
        abort();
    }
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_dir[0] == '\0') {
        snprintf(g_dir, sizeof(g_dir), "%s", "/tmp/fuzz_agent_cache.XXXXXX");
        if (mkdtemp(g_dir) == NULL) {
            abort();
        }
        atexit(teardown);
        mf_log_setup(MF_LOG_ERR, MF_LOG_TEXT);
    }
    if (size < 1 || size > AGENT_SVID_FILE_MAX + 1) {
        return 0;
    }
    struct agent_cache c;
    if (!mf_ok(agent_cache_open(g_dir, &c))) {
        abort();
    }
    unsigned which = data[0] % 3;
    const char *name = which == 0 ? "svids/00.svid" : which == 1 ? "agent.svid" : "bundle.json";
    put(name, data + 1, size - 1);
    if (which == 1) {
        struct mf_key *key = NULL;
        struct mf_certs chain;
        mf_certs_init(&chain);
        int64_t renew = 0;
        if (mf_ok(agent_cache_load_agent(&c, &key, &chain, &renew))) {
            if (key == NULL || chain.n == 0 || !mf_cert_matches_key(chain.v[0], key)) {
                __builtin_trap();
            }
        } else if (key != NULL) {
            __builtin_trap();
        }
        mf_key_free(key);
        mf_certs_cleanup(&chain);
    } else if (mf_ok(agent_cache_load(&c, "example.org"))) {
        for (size_t i = 0; i < c.n; i++) {
            const struct agent_rec *r = &c.v[i];
            if (r->key == NULL || r->chain.n == 0 || r->entry.id == NULL || r->entry.n_sels == 0) {
                __builtin_trap(); /* a loaded record is complete */
            }
        }
    }
    agent_cache_close(&c);
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    (void)unlink(path);
    return 0;
}
