/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for what `mayfly-agent fetch x509 [--write DIR]` does
 * with the agent's answer: the document is parsed and, with --write, its
 * PEM members are written into DIR (svid.N.pem, svid.N.key, bundle.0.pem).
 * The input is the body of a 200 answer served on a real Unix socket by a
 * helper thread, and the command runs unchanged (parsed by the CLI's own
 * option table, run by agent_cli_main), so the harness covers
 * exactly the command's path. The first byte says whether to --write; the
 * directory is a private temp dir, emptied between runs. Anything printed
 * goes to /dev/null.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "agent/agent_cli.h"
#include "api/core/mf_log.h"
#include "api/internal/mf_opt.h"

#define INPUT_MAX (256u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int g_listen = -1;
static char g_dir[40], g_sock[120], g_out[120];

struct job {
    const uint8_t *body;
    size_t len;
};

static void rm_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            (void)unlinkat(dirfd(d), de->d_name, 0);
        }
    }
    closedir(d);
}

static void teardown(void)
{
    rm_files(g_out);
    (void)rmdir(g_out);
    (void)unlink(g_sock);
    (void)rmdir(g_dir);
}

static void setup(void)
{
    snprintf(g_dir, sizeof(g_dir), "%s", "/tmp/fuzz_agent_fetch.XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        abort();
    }
    snprintf(g_sock, sizeof(g_sock), "%s/agent.sock", g_dir);
    snprintf(g_out, sizeof(g_out), "%s/out", g_dir);
    if (mkdir(g_out, 0700) != 0) {
        abort();
    }
    g_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, g_sock, strlen(g_sock) + 1);
    if (g_listen < 0 || bind(g_listen, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(g_listen, 8) != 0) {
        abort();
    }
    atexit(teardown);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        (void)dup2(null, STDOUT_FILENO);
        close(null);
    }
    mf_log_setup(MF_LOG_ERR, MF_LOG_TEXT);
}

static void write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w <= 0) {
            return;
        }
        b += w;
        n -= (size_t)w;
    }
}

/* One exchange: read the request head, answer 200 with the body, close. */
static void *serve(void *arg)
{
    const struct job *j = arg;
    int fd = accept4(g_listen, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        return NULL;
    }
    char req[4096];
    size_t got = 0;
    while (got < sizeof(req) - 1) {
        ssize_t n = read(fd, req + got, sizeof(req) - 1 - got);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL) {
            break;
        }
    }
    char head[128];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      j->len);
    write_all(fd, head, (size_t)hl);
    write_all(fd, j->body, j->len);
    close(fd);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_listen < 0) {
        setup();
    }
    if (size < 1 || size > INPUT_MAX) {
        return 0;
    }
    bool write_files = (data[0] & 1) != 0;
    struct job j = {.body = data + 1, .len = size - 1};
    pthread_t t;
    if (pthread_create(&t, NULL, serve, &j) != 0) {
        return 0;
    }
    char a0[] = "fetch", a1[] = "x509", a2[] = "--socket", a4[] = "--write";
    char *argv[] = {a0, a1, a2, g_sock, a4, g_out, NULL};
    int argc = write_files ? 6 : 4;
    const struct mf_prog *prog = agent_cli_prog();
    const struct mf_cmd *cmd = NULL;
    int used = 0;
    if (mf_ok(mf_opt_find_cmd(prog, argc, argv, &cmd, &used))) {
        struct mf_opt_vals vals;
        if (mf_ok(mf_opt_parse(prog, cmd, argc - used, argv + used, &vals))) {
            (void)agent_cli_main(cmd, &vals);
        }
        mf_opt_vals_cleanup(&vals);
    }
    pthread_join(t, NULL);
    if (write_files) {
        rm_files(g_out);
    }
    return 0;
}
