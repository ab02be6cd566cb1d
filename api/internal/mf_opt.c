/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_opt: one table-driven parser for flags and config files (mf_opt.h).
 */
#include "api/internal/mf_opt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/mf_time.h"

#define CONFIG_FILE_MAX (64u * 1024u)
#define KEY_MAX         64

static size_t find_opt(const struct mf_cmd *c, const char *name, size_t len, bool key)
{
    for (size_t i = 0; i < c->n_opts; i++) {
        const char *n = c->opts[i].name;
        if (strlen(n) != len) {
            continue;
        }
        size_t j = 0;
        /* a config key is the name with '_' for '-'; a flag is the name itself */
        for (; j < len; j++) {
            char want = key && n[j] == '-' ? '_' : n[j];
            if (name[j] != want) {
                break;
            }
        }
        if (j == len) {
            return i;
        }
    }
    return SIZE_MAX;
}

/* Checks v against the option's kind. */
static mf_res check_kind(const struct mf_opt *o, const char *v)
{
    switch (o->kind) {
    case MF_OPT_STR:
    case MF_OPT_LIST:
        MF_ENSURE_MSG(v[0] != '\0', MF_ERR_USAGE_ARG, "--%s: empty value", o->name);
        return MF_RES_OK;
    case MF_OPT_DUR: {
        int64_t d = 0;
        MF_ENSURE_MSG(mf_ok(mf_duration_parse(v, &d)), MF_ERR_USAGE_ARG,
                      "--%s: '%s' is not a duration such as 90s, 10m, 1h", o->name, v);
        return MF_RES_OK;
    }
    case MF_OPT_NUM: {
        bool digits = v[0] != '\0' && strlen(v) <= 20;
        for (const char *p = v; digits && *p != '\0'; p++) {
            digits = *p >= '0' && *p <= '9';
        }
        MF_ENSURE_MSG(digits, MF_ERR_USAGE_ARG, "--%s: '%s' is not a whole number", o->name, v);
        return MF_RES_OK;
    }
    case MF_OPT_BOOL:
        MF_ENSURE_MSG(strcmp(v, "true") == 0 || strcmp(v, "false") == 0, MF_ERR_USAGE_ARG,
                      "--%s: '%s' is not true or false", o->name, v);
        return MF_RES_OK;
    default:
        MF_BAIL(MF_ERR_INTERNAL);
    }
}

static mf_res set_val(const struct mf_opt *o, struct mf_opt_val *val, enum mf_opt_src src,
                      const char *v)
{
    MF_TRY(check_kind(o, v));
    if (o->kind == MF_OPT_LIST) {
        /* flags replace the file's list, which replaces the default */
        if (val->src != src) {
            val->n = 0;
        }
        MF_ENSURE_MSG(val->n < MF_OPT_LIST_MAX, MF_ERR_USAGE_ARG, "--%s: at most %d values",
                      o->name, MF_OPT_LIST_MAX);
        val->list[val->n++] = v;
    }
    val->s = v;
    val->src = src;
    return MF_RES_OK;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
    return s;
}

static mf_res read_file(const char *path, char **out)
{
    mf_res rc;
    size_t len = 0, cap = 4096;
    char *text = malloc(cap);
    FILE *f = fopen(path, "re");
    MF_ENSURE_OUT_MSG(text != NULL, MF_ERR_NOMEM, "out of memory");
    MF_ENSURE_OUT_MSG(f != NULL, MF_ERR_IO_NOT_FOUND, "cannot open config file %s: %s", path,
                      strerror(errno));
    for (;;) {
        if (len + 1 == cap) {
            MF_ENSURE_OUT_MSG(cap < CONFIG_FILE_MAX, MF_ERR_USAGE_ARG,
                              "config file %s is over %u bytes", path, CONFIG_FILE_MAX);
            char *bigger = realloc(text, cap * 2);
            MF_ENSURE_OUT_MSG(bigger != NULL, MF_ERR_NOMEM, "out of memory");
            text = bigger;
            cap *= 2;
        }
        size_t got = fread(text + len, 1, cap - 1 - len, f);
        if (got == 0) {
            break;
        }
        len += got;
    }
    MF_ENSURE_OUT_MSG(!ferror(f), MF_ERR_IO, "cannot read config file %s", path);
    text[len] = '\0';
    MF_ENSURE_OUT_MSG(strlen(text) == len, MF_ERR_USAGE_ARG, "config file %s contains a NUL byte",
                      path);
    *out = text;
    text = NULL;
    rc = MF_RES_OK;
out:
    if (f != NULL) {
        fclose(f);
    }
    free(text);
    return rc;
}

/* Applies a config file; vals->file keeps its text (values point into it). */
static mf_res load_file(const struct mf_cmd *c, const char *path, struct mf_opt_vals *vals)
{
    MF_TRY(read_file(path, &vals->file));
    char *p = vals->file;
    int lineno = 0;
    while (p != NULL && *p != '\0') {
        lineno++;
        char *nl = strchr(p, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        char *line = trim(p);
        p = nl != NULL ? nl + 1 : NULL;
        if (*line == '\0' || *line == '#') {
            continue;
        }
        char *eq = strchr(line, '=');
        MF_ENSURE_MSG(eq != NULL, MF_ERR_USAGE_ARG, "%s:%d: expected 'key = value'", path, lineno);
        *eq = '\0';
        char *key = trim(line);
        char *v = trim(eq + 1);
        size_t vl = strlen(v);
        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
            v[vl - 1] = '\0';
            v++;
        }
        size_t i = find_opt(c, key, strlen(key), true);
        bool ok = i != SIZE_MAX && (c->opts[i].flags & MF_OPT_CONFIG) != 0;
        MF_ENSURE_MSG(ok, MF_ERR_USAGE_ARG, "%s:%d: unknown key '%s'", path, lineno, key);
        mf_res r = set_val(&c->opts[i], &vals->v[i], MF_SRC_FILE, v);
        if (!mf_ok(r)) {
            char msg[512];
            snprintf(msg, sizeof(msg), "%s", mf_err_detail());
            MF_BAIL_MSG(MF_ERR_USAGE_ARG, "%s:%d: %s", path, lineno, msg);
        }
    }
    return MF_RES_OK;
}

mf_res mf_opt_find_cmd(const struct mf_prog *p, int argc, char **argv, const struct mf_cmd **cmd,
                       int *used)
{
    *cmd = NULL;
    *used = 0;
    MF_ENSURE_MSG(argc >= 1, MF_ERR_USAGE_ARG, "no command given");
    bool group = false;
    for (size_t i = 0; i < p->n_cmds; i++) {
        const char *n = p->cmds[i].name;
        const char *sp = strchr(n, ' ');
        size_t first = sp != NULL ? (size_t)(sp - n) : strlen(n);
        if (strlen(argv[0]) != first || strncmp(argv[0], n, first) != 0) {
            continue;
        }
        if (sp == NULL) {
            *cmd = &p->cmds[i];
            *used = 1;
            return MF_RES_OK;
        }
        group = true;
        if (argc >= 2 && strcmp(argv[1], sp + 1) == 0) {
            *cmd = &p->cmds[i];
            *used = 2;
            return MF_RES_OK;
        }
    }
    if (!group) {
        MF_BAIL_MSG(MF_ERR_USAGE_ARG, "unknown command '%s'", argv[0]);
    }
    /* "entry" alone or "entry bogus": name the subcommands */
    char choices[256];
    size_t used_c = 0;
    choices[0] = '\0';
    for (size_t i = 0; i < p->n_cmds; i++) {
        const char *n = p->cmds[i].name;
        size_t l = strlen(argv[0]);
        if (strncmp(n, argv[0], l) == 0 && n[l] == ' ') {
            int k = snprintf(choices + used_c, sizeof(choices) - used_c, "%s%s", used_c ? ", " : "",
                             n + l + 1);
            if (k > 0 && (size_t)k < sizeof(choices) - used_c) {
                used_c += (size_t)k;
            }
        }
    }
    if (argc < 2 || strncmp(argv[1], "--", 2) == 0) {
        MF_BAIL_MSG(MF_ERR_USAGE_ARG, "'%s' needs a subcommand: %s", argv[0], choices);
    }
    MF_BAIL_MSG(MF_ERR_USAGE_ARG, "unknown %s subcommand '%s' (one of: %s)", argv[0], argv[1],
                choices);
}

mf_res mf_opt_parse(const struct mf_prog *p, const struct mf_cmd *c, int argc, char **argv,
                    struct mf_opt_vals *vals)
{
    memset(vals, 0, sizeof(*vals));
    vals->cmd = c;
    MF_ENSURE_MSG(c->n_opts <= MF_OPT_MAX, MF_ERR_INTERNAL, "too many options");
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            mf_opt_usage_cmd(p, c, stdout);
            vals->help = true;
            return MF_RES_OK;
        }
    }
    for (size_t i = 0; i < c->n_opts; i++) {
        const struct mf_opt *o = &c->opts[i];
        const char *e = o->env != NULL ? getenv(o->env) : NULL;
        if (e != NULL && e[0] != '\0') {
            MF_TRY(set_val(o, &vals->v[i], MF_SRC_ENV, e));
        } else if (o->def != NULL) {
            MF_TRY(set_val(o, &vals->v[i], MF_SRC_DEFAULT, o->def));
        }
    }
    /* the file first, so that flags override it */
    size_t ci = find_opt(c, "config", 6, false);
    for (int i = 0; ci != SIZE_MAX && i < argc; i++) {
        const char *path = NULL;
        if (strcmp(argv[i], "--config") == 0) {
            MF_ENSURE_MSG(i + 1 < argc, MF_ERR_USAGE_ARG, "--config needs a value");
            path = argv[i + 1];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        }
        if (path != NULL) {
            MF_ENSURE_MSG(vals->file == NULL, MF_ERR_USAGE_ARG, "--config given twice");
            MF_TRY(load_file(c, path, vals));
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            MF_ENSURE_MSG(vals->n_pos < c->pos_max && vals->n_pos < MF_OPT_POS_MAX,
                          MF_ERR_USAGE_ARG, "unexpected argument '%s'", a);
            vals->pos[vals->n_pos++] = a;
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        size_t k = find_opt(c, name, len, false);
        MF_ENSURE_MSG(k != SIZE_MAX, MF_ERR_USAGE_ARG, "unknown option '--%.*s'", (int)len, name);
        const struct mf_opt *o = &c->opts[k];
        const char *v = eq != NULL ? eq + 1 : NULL;
        if (v == NULL && o->kind == MF_OPT_BOOL) {
            v = "true";
        } else if (v == NULL) {
            MF_ENSURE_MSG(i + 1 < argc, MF_ERR_USAGE_ARG, "--%s needs a value", o->name);
            v = argv[++i];
        }
        MF_TRY(set_val(o, &vals->v[k], MF_SRC_FLAG, v));
    }
    for (size_t i = 0; i < c->n_opts; i++) {
        MF_ENSURE_MSG(!(c->opts[i].flags & MF_OPT_REQUIRED) || vals->v[i].s != NULL,
                      MF_ERR_USAGE_ARG, "--%s is required", c->opts[i].name);
    }
    MF_ENSURE_MSG(vals->n_pos >= c->pos_min, MF_ERR_USAGE_ARG, "missing %s",
                  c->pos != NULL ? c->pos : "argument");
    return MF_RES_OK;
}

void mf_opt_vals_cleanup(struct mf_opt_vals *vals)
{
    if (vals == NULL) {
        return;
    }
    free(vals->file);
    vals->file = NULL;
}

const struct mf_opt_val *mf_opt_val(const struct mf_opt_vals *vals, const char *name)
{
    size_t i = find_opt(vals->cmd, name, strlen(name), false);
    return i == SIZE_MAX ? NULL : &vals->v[i];
}

const char *mf_opt_get(const struct mf_opt_vals *vals, const char *name)
{
    const struct mf_opt_val *v = mf_opt_val(vals, name);
    return v != NULL ? v->s : NULL;
}

bool mf_opt_bool(const struct mf_opt_vals *vals, const char *name)
{
    const char *s = mf_opt_get(vals, name);
    return s != NULL && strcmp(s, "true") == 0;
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool mf_opt_changed(const struct mf_opt_vals *a, const struct mf_opt_vals *b, size_t i)
{
    const struct mf_opt_val *x = &a->v[i], *y = &b->v[i];
    if (!str_eq(x->s, y->s) || x->n != y->n) {
        return true;
    }
    for (size_t k = 0; k < x->n; k++) {
        if (!str_eq(x->list[k], y->list[k])) {
            return true;
        }
    }
    return false;
}

static void print_opt(const struct mf_opt *o, FILE *out)
{
    char left[96];
    if (o->kind == MF_OPT_BOOL) {
        snprintf(left, sizeof(left), "--%s", o->name);
    } else {
        snprintf(left, sizeof(left), "--%s %s", o->name, o->arg != NULL ? o->arg : "VALUE");
    }
    fprintf(out, "    %-30s %s", left, o->help);
    if (o->flags & MF_OPT_REQUIRED) {
        fputs(" (required)", out);
    }
    if (o->kind == MF_OPT_LIST) {
        fputs(" (repeatable)", out);
    }
    if (o->def != NULL) {
        fprintf(out, " (default: %s)", o->def);
    }
    if (o->env != NULL) {
        fprintf(out, " (env: %s)", o->env);
    }
    if (o->flags & MF_OPT_CONFIG) {
        char key[KEY_MAX];
        size_t n = strlen(o->name);
        n = n < sizeof(key) - 1 ? n : sizeof(key) - 1;
        for (size_t i = 0; i < n; i++) {
            key[i] = o->name[i] == '-' ? '_' : o->name[i];
        }
        key[n] = '\0';
        fprintf(out, " [config: %s]", key);
    }
    if (o->flags & MF_OPT_RELOAD) {
        fputs(" [reloaded on SIGHUP]", out);
    }
    fputc('\n', out);
}

void mf_opt_usage_cmd(const struct mf_prog *p, const struct mf_cmd *c, FILE *out)
{
    fprintf(out, "usage: %s %s%s%s%s\n", p->name, c->name, c->pos != NULL ? " " : "",
            c->pos != NULL ? c->pos : "", c->n_opts > 0 ? " [options]" : "");
    fprintf(out, "    %s\n", c->help);
    for (size_t i = 0; i < c->n_opts; i++) {
        print_opt(&c->opts[i], out);
    }
    fputs("    --help                         print this help and exit\n", out);
}

void mf_opt_usage(const struct mf_prog *p, FILE *out)
{
    fprintf(out, "%s %s\n\n", p->name, p->version);
    for (size_t i = 0; i < p->n_cmds; i++) {
        mf_opt_usage_cmd(p, &p->cmds[i], out);
        fputc('\n', out);
    }
    fprintf(out,
            "usage: %s --help | --version\n\n%s\nExit status: 0 success, 1 refused or failed, 2 "
            "bad usage.\n",
            p->name, p->help);
}

int mf_opt_usage_error(const struct mf_prog *p, const struct mf_cmd *c, mf_res r)
{
    char msg[768];
    mf_err_format(r, msg, sizeof(msg));
    /* mf_err_format says "<error>: <detail>"; the detail alone is the message */
    const char *d = mf_err_detail();
    if (d != NULL && d[0] != '\0') {
        snprintf(msg, sizeof(msg), "%s", d);
    }
    if (c != NULL) {
        fprintf(stderr, "%s %s: %s (see %s %s --help)\n", p->name, c->name, msg, p->name, c->name);
    } else {
        fprintf(stderr, "%s: %s (see %s --help)\n", p->name, msg, p->name);
    }
    return 2;
}

int mf_opt_main(const struct mf_prog *p, int argc, char **argv, const struct mf_cmd **cmd,
                int *used)
{
    *cmd = NULL;
    *used = 0;
    if (argc < 2) {
        mf_opt_usage(p, stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        mf_opt_usage(p, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("%s %s\n", p->name, p->version);
        return 0;
    }
    mf_res r = mf_opt_find_cmd(p, argc - 1, argv + 1, cmd, used);
    if (!mf_ok(r)) {
        /* "entry --help": the help of every entry subcommand */
        if (argc >= 3 && strcmp(argv[2], "--help") == 0) {
            bool any = false;
            size_t l = strlen(argv[1]);
            for (size_t i = 0; i < p->n_cmds; i++) {
                if (strncmp(p->cmds[i].name, argv[1], l) == 0 && p->cmds[i].name[l] == ' ') {
                    mf_opt_usage_cmd(p, &p->cmds[i], stdout);
                    any = true;
                }
            }
            if (any) {
                return 0;
            }
        }
        return mf_opt_usage_error(p, NULL, r);
    }
    return -1;
}

int mf_opt_dispatch(const struct mf_prog *p, int argc, char **argv, mf_opt_run_fn run,
                    mf_opt_cli_fn cli)
{
    const struct mf_cmd *cmd = NULL;
    int used = 0;
    int rc = mf_opt_main(p, argc, argv, &cmd, &used);
    if (rc >= 0) {
        return rc;
    }
    int n = argc - 1 - used;
    char **rest = argv + 1 + used;
    if (strcmp(cmd->name, "run") == 0) {
        return run(p, cmd, n, rest);
    }
    struct mf_opt_vals vals;
    mf_res r = mf_opt_parse(p, cmd, n, rest, &vals);
    if (!mf_ok(r)) {
        rc = mf_opt_usage_error(p, cmd, r);
    } else {
        rc = vals.help ? 0 : cli(cmd, &vals);
    }
    mf_opt_vals_cleanup(&vals);
    return rc;
}

const struct mf_prog *mf_opt_prog_init(struct mf_prog *prog, const char *name, const char *help,
                                       struct mf_cmd *all, const struct mf_cmd *cmds, size_t n_cmds,
                                       const struct mf_opt *run_opts, size_t n_run_opts)
{
    if (prog->name == NULL) {
        memcpy(all, cmds, n_cmds * sizeof(all[0]));
        all[0].opts = run_opts;
        all[0].n_opts = n_run_opts;
        *prog = (struct mf_prog){
            .name = name,
            .version = MAYFLY_VERSION,
            .help = help,
            .cmds = all,
            .n_cmds = n_cmds,
        };
    }
    return prog;
}
