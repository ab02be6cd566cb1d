/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bare_httpd: the Workload API's floor. A libmicrohttpd server on a Unix
 * socket, started with the same threading flags and limits as the agent's
 * (agent/agent_sock.c: a thread per connection, poll(), inter-thread
 * channel), answering every GET with a fixed body of --size bytes, on the
 * handler's second call so that keep-alive is kept (STYLE.md). No
 * attestation, no state, no rendering: what is left of the agent's cost
 * when mayfly's own work is taken away.
 *
 *   bare_httpd --socket PATH --size BYTES
 *
 * Prints "bare_httpd ready" on stderr once it accepts; stops on SIGTERM or
 * SIGINT.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api/internal/mf_httpd.h"
#include "bench/bench_util.h"

static char *g_body;
static size_t g_size;
static int g_marker;

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) {
        *con_cls = &g_marker;
        return MHD_YES;
    }
    *upload_size = 0;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(g_size, g_body, MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        return MHD_NO;
    }
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long size = 4096;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--socket") == 0) {
            path = argv[i + 1];
        } else if (strcmp(argv[i], "--size") == 0) {
            size = bench_long("--size", argv[i + 1], 1, 64L * 1024 * 1024);
        }
    }
    if (path == NULL) {
        fprintf(stderr, "usage: bare_httpd --socket PATH --size BYTES\n");
        return 2;
    }
    g_size = (size_t)size;
    g_body = malloc(g_size);
    if (g_body == NULL) {
        return 2;
    }
    /* JSON-looking filler: {"x":"aaaa...."} */
    memset(g_body, 'a', g_size);
    if (g_size > 8) {
        memcpy(g_body, "{\"x\":\"", 6);
        memcpy(g_body + g_size - 2, "\"}", 2);
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    int fd = -1;
    mf_res r = mf_httpd_listen_unix(path, 0666, 128, &fd);
    if (!mf_ok(r)) {
        free(g_body);
        return bench_fail("listen", r);
    }
    /* the agent's flags and limits (agent_sock.c, agent_config.c defaults) */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ITC,
        0, NULL, NULL, handle, NULL, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)128, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64u * 1024u), MHD_OPTION_END);
    if (d == NULL) {
        close(fd);
        free(g_body);
        fprintf(stderr, "bare_httpd: cannot start\n");
        return 2;
    }
    fprintf(stderr, "bare_httpd ready\n");
    int sig = 0;
    (void)sigwait(&set, &sig);
    MHD_stop_daemon(d);
    (void)unlink(path);
    free(g_body);
    return 0;
}
