/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_opt: both flag forms, bools, repeatable options, kinds
 * checked (duration, number, bool), unknown and misplaced flags refused,
 * required options, positional arguments, the config file (comments,
 * quotes, repeated keys, unknown key and bad value reported with
 * FILE:LINE, flags winning over it), command lookup, and the usage text
 * naming every option with its default.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/core/mf_err.h"
#include "api/internal/mf_opt.h"
#include "mf_test.h"

static const struct mf_opt o_run[] = {
    {"data-dir", MF_OPT_STR, "DIR", NULL, "data", MF_OPT_CONFIG | MF_OPT_REQUIRED, NULL},
    {"ttl", MF_OPT_DUR, "DUR", "1h", "lifetime", MF_OPT_CONFIG, NULL},
    {"max", MF_OPT_NUM, "N", "8", "at most", MF_OPT_CONFIG, NULL},
    {"verbose", MF_OPT_BOOL, NULL, NULL, "talk", MF_OPT_CONFIG, NULL},
    {"peer", MF_OPT_LIST, "P", NULL, "peers", MF_OPT_CONFIG, NULL},
    {"secret", MF_OPT_STR, "S", NULL, "flag only", 0, NULL},
    {"config", MF_OPT_STR, "FILE", NULL, "file", 0, NULL},
};
static const struct mf_opt o_show[] = {
    {"format", MF_OPT_STR, "F", "pem", "format", 0, NULL},
};
static const struct mf_cmd cmds[] = {
    {"run", NULL, 0, 0, "run it", o_run, sizeof(o_run) / sizeof(o_run[0])},
    {"thing show", "ID", 1, 1, "show a thing", o_show, 1},
    {"thing list", NULL, 0, 0, "list things", o_show, 1},
};
static const struct mf_prog prog = {"prog", "9.9", "help", cmds, 3};

static mf_res parse(const struct mf_cmd *c, struct mf_opt_vals *v, int argc, ...)
{
    static char *argv[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc && i < 16; i++) {
        argv[i] = va_arg(ap, char *);
    }
    va_end(ap);
    return mf_opt_parse(&prog, c, argc, argv, v);
}

static void test_mf_opt_both_forms_ok(void **state)
{
    (void)state;
    struct mf_opt_vals v;
    ASSERT_OK(parse(&cmds[0], &v, 4, "--data-dir=/x", "--ttl", "5m", "--verbose"));
    assert_string_equal(mf_opt_get(&v, "data-dir"), "/x");
    assert_string_equal(mf_opt_get(&v, "ttl"), "5m");
    assert_string_equal(mf_opt_get(&v, "max"), "8"); /* default */
    assert_true(mf_opt_bool(&v, "verbose"));
    mf_opt_vals_cleanup(&v);
}

static void test_mf_opt_list_collects_ok(void **state)
{
    (void)state;
    struct mf_opt_vals v;
    ASSERT_OK(parse(&cmds[0], &v, 4, "--data-dir", "/x", "--peer=a", "--peer=b"));
    const struct mf_opt_val *p = mf_opt_val(&v, "peer");
    assert_int_equal(p->n, 2);
    assert_string_equal(p->list[0], "a");
    assert_string_equal(p->list[1], "b");
    mf_opt_vals_cleanup(&v);
}

static void test_mf_opt_bad_kinds_refused(void **state)
{
    (void)state;
    struct mf_opt_vals v;
    assert_false(mf_ok(parse(&cmds[0], &v, 3, "--data-dir=/x", "--ttl", "soon")));
    mf_opt_vals_cleanup(&v);
    assert_false(mf_ok(parse(&cmds[0], &v, 2, "--data-dir=/x", "--max=-1")));
    mf_opt_vals_cleanup(&v);
    assert_false(mf_ok(parse(&cmds[0], &v, 2, "--data-dir=/x", "--verbose=maybe")));
    mf_opt_vals_cleanup(&v);
    assert_false(mf_ok(parse(&cmds[0], &v, 2, "--data-dir=/x", "--ttl")));
    assert_non_null(strstr(mf_err_detail(), "--ttl needs a value"));
    mf_opt_vals_cleanup(&v);
}

static void test_mf_opt_unknown_and_misplaced_refused(void **state)
{
    (void)state;
    struct mf_opt_vals v;
    assert_false(mf_ok(parse(&cmds[0], &v, 2, "--data-dir=/x", "--bogus=1")));
    assert_non_null(strstr(mf_err_detail(), "unknown option '--bogus'"));
    mf_opt_vals_cleanup(&v);
    /* an option of another command */
    assert_false(mf_ok(parse(&cmds[2], &v, 2, "--ttl", "5")));
    mf_opt_vals_cleanup(&v);
    /* no underscore alias */
    assert_false(mf_ok(parse(&cmds[0], &v, 2, "--data_dir", "/x")));
    mf_opt_vals_cleanup(&v);
}

static void test_mf_opt_required_and_positional(void **state)
{
    (void)state;
    struct mf_opt_vals v;
    assert_false(mf_ok(parse(&cmds[0], &v, 0)));
    assert_non_null(strstr(mf_err_detail(), "--data-dir is required"));
    mf_opt_vals_cleanup(&v);
    assert_false(mf_ok(parse(&cmds[1], &v, 0)));
    mf_opt_vals_cleanup(&v);
    ASSERT_OK(parse(&cmds[1], &v, 1, "abc"));
    assert_string_equal(v.pos[0], "abc");
    mf_opt_vals_cleanup(&v);
    assert_false(mf_ok(parse(&cmds[1], &v, 2, "abc", "def")));
    mf_opt_vals_cleanup(&v);
}

static void test_mf_opt_help_ok(void **state)
{
    (void)state;
    struct mf_opt_vals v;
    ASSERT_OK(parse(&cmds[0], &v, 1, "--help"));
    assert_true(v.help);
    mf_opt_vals_cleanup(&v);
}

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/test_opt.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_mf_opt_file_ok_and_flags_win(void **state)
{
    (void)state;
    struct mf_opt_vals v;
    char *p = write_tmp("# comment\n\ndata_dir = \"/from file\"\nttl = 2h\nmax = 3\n"
                        "verbose = true\npeer = a\npeer = b\n");
    ASSERT_OK(parse(&cmds[0], &v, 6, "--config", p, "--max=4", "--peer", "c", "--ttl=1m"));
    assert_string_equal(mf_opt_get(&v, "data-dir"), "/from file");
    assert_string_equal(mf_opt_get(&v, "max"), "4");
    assert_string_equal(mf_opt_get(&v, "ttl"), "1m");
    assert_true(mf_opt_bool(&v, "verbose"));
    const struct mf_opt_val *peer = mf_opt_val(&v, "peer");
    assert_int_equal(peer->n, 1); /* the flag replaced the file's list */
    assert_string_equal(peer->list[0], "c");
    mf_opt_vals_cleanup(&v);
    unlink(p);
}

static void test_mf_opt_file_errors_name_line(void **state)
{
    (void)state;
    struct mf_opt_vals v;
    char *p = write_tmp("data_dir = /x\n# ok\nzz_bogus = 1\n");
    assert_false(mf_ok(parse(&cmds[0], &v, 2, "--config", p)));
    assert_non_null(strstr(mf_err_detail(), ":3: unknown key 'zz_bogus'"));
    mf_opt_vals_cleanup(&v);
    unlink(p);
    p = write_tmp("data_dir = /x\nmax = many\n");
    assert_false(mf_ok(parse(&cmds[0], &v, 2, "--config", p)));
    assert_non_null(strstr(mf_err_detail(), ":2: --max"));
    mf_opt_vals_cleanup(&v);
    unlink(p);
    /* a flag-only option is no config key, nor is a flag spelling */
    p = write_tmp("secret = s\n");
    assert_false(mf_ok(parse(&cmds[0], &v, 2, "--config", p)));
    mf_opt_vals_cleanup(&v);
    unlink(p);
    p = write_tmp("data-dir = /x\n");
    assert_false(mf_ok(parse(&cmds[0], &v, 2, "--config", p)));
    mf_opt_vals_cleanup(&v);
    unlink(p);
    p = write_tmp("no equals sign\n");
    assert_false(mf_ok(parse(&cmds[0], &v, 2, "--config", p)));
    mf_opt_vals_cleanup(&v);
    unlink(p);
}

static void test_mf_opt_find_cmd(void **state)
{
    (void)state;
    const struct mf_cmd *c = NULL;
    int used = 0;
    char t[] = "thing", sh[] = "show", x[] = "x", nope[] = "nope";
    char *a1[] = {t, sh, x};
    ASSERT_OK(mf_opt_find_cmd(&prog, 3, a1, &c, &used));
    assert_ptr_equal(c, &cmds[1]);
    assert_int_equal(used, 2);
    char *a2[] = {t};
    assert_false(mf_ok(mf_opt_find_cmd(&prog, 1, a2, &c, &used)));
    assert_non_null(strstr(mf_err_detail(), "show, list"));
    char *a3[] = {nope};
    assert_false(mf_ok(mf_opt_find_cmd(&prog, 1, a3, &c, &used)));
}

static void test_mf_opt_usage_lists_every_option(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    mf_opt_usage(&prog, f);
    fclose(f);
    const char *want[] = {
        "--data-dir DIR",     "(required)",     "--ttl DUR",    "(default: 1h)",
        "[config: data_dir]", "--peer P",       "(repeatable)", "prog thing show ID",
        "--format F",         "(default: pem)", "prog 9.9"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (strstr(buf, want[i]) == NULL) {
            fail_msg("usage lacks '%s':\n%s", want[i], buf);
        }
    }
    free(buf);
}

static void test_mf_opt_changed(void **state)
{
    (void)state;
    struct mf_opt_vals a, b;
    ASSERT_OK(parse(&cmds[0], &a, 2, "--data-dir=/x", "--max=1"));
    ASSERT_OK(parse(&cmds[0], &b, 2, "--data-dir=/x", "--max=2"));
    assert_false(mf_opt_changed(&a, &b, 0));
    assert_true(mf_opt_changed(&a, &b, 2));
    mf_opt_vals_cleanup(&a);
    mf_opt_vals_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_opt_both_forms_ok),
        cmocka_unit_test(test_mf_opt_list_collects_ok),
        cmocka_unit_test(test_mf_opt_bad_kinds_refused),
        cmocka_unit_test(test_mf_opt_unknown_and_misplaced_refused),
        cmocka_unit_test(test_mf_opt_required_and_positional),
        cmocka_unit_test(test_mf_opt_help_ok),
        cmocka_unit_test(test_mf_opt_file_ok_and_flags_win),
        cmocka_unit_test(test_mf_opt_file_errors_name_line),
        cmocka_unit_test(test_mf_opt_find_cmd),
        cmocka_unit_test(test_mf_opt_usage_lists_every_option),
        cmocka_unit_test(test_mf_opt_changed),
    };
    return cmocka_run_group_tests_name("mf_opt", tests, NULL, NULL);
}
