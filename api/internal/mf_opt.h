/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_opt: the one command-line and config-file parser of mayfly-ca and
 * mayfly-agent.
 * Internal: linked by the daemons only (libmayfly-internal.a).
 *
 * A program is a table of commands ("run", "entry create", "fetch x509"),
 * and each command a table of options. An option has a name ("data-dir":
 * the flag --data-dir, the config key data_dir), a kind, a default, a help
 * line, and says whether it is also a config-file key. From those tables
 * come the parsing of every command, its --help and the program's --help
 * (which the man pages are made from), so none of them can drift.
 *
 * Flags: "--name value" or "--name=value"; a bool is "--name" alone (or
 * "--name=true|false"); a repeatable option collects every occurrence.
 * Anything else that starts with "--" and is not an option of this command
 * is refused, naming the command; words without dashes are positional
 * arguments. "--help" prints the command's usage on stdout.
 *
 * Config file (when the command has a "config" option): lines
 * "key = value", '#' starts a comment line, blank lines are ignored, a
 * value may be put in double quotes, a repeatable key may be repeated. Keys
 * are the option names with '_' for '-'. Values are checked by kind as a
 * flag's are: a number is digits, a duration 90s/10m/1h30m, a bool
 * true/false. An unknown key or a bad value is refused with FILE:LINE. The
 * file is read first and flags win (a repeatable flag replaces the file's
 * list rather than adding to it).
 *
 * Values are kept as text (already checked for their kind): each program
 * turns them into its settings, with its own range checks. Strings point
 * into argv or into the file text held by struct mf_opt_vals.
 */
#ifndef MF_OPT_H
#define MF_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "api/core/mf_err.h"

/* The version both daemons print; the Makefile's VERSION may pass it with
 * -DMAYFLY_VERSION, and install.sh checks the two agree. */
#ifndef MAYFLY_VERSION
#define MAYFLY_VERSION "0.2.0"
#endif

#define MF_OPT_MAX      40 /* options of one command */
#define MF_OPT_LIST_MAX 32 /* values of one repeatable option */
#define MF_OPT_POS_MAX  4  /* positional arguments */

enum mf_opt_kind {
    MF_OPT_STR = 0, /* any non-empty text */
    MF_OPT_DUR,     /* a duration: 90s, 10m, 1h30m, a bare number of seconds */
    MF_OPT_NUM,     /* a whole number, digits only */
    MF_OPT_BOOL,    /* a switch: --name, --name=true|false */
    MF_OPT_LIST,    /* repeatable text */
};

/* flags of an option */
#define MF_OPT_CONFIG   1u /* also a config-file key */
#define MF_OPT_REQUIRED 2u /* must be given (flag or file) */
#define MF_OPT_RELOAD   4u /* re-applied on SIGHUP (see mf_opt_changed) */

struct mf_opt {
    const char *name; /* "data-dir" */
    enum mf_opt_kind kind;
    const char *arg;  /* what the value is, in usage: "DIR" */
    const char *def;  /* default (text as on the command line), or NULL */
    const char *help; /* one line */
    unsigned flags;
    const char *env; /* environment variable read when not given, or NULL */
};

struct mf_cmd {
    const char *name; /* "run", "entry create" */
    const char *pos;  /* positional arguments in usage ("ID"), or NULL */
    size_t pos_min, pos_max;
    const char *help; /* one line */
    const struct mf_opt *opts;
    size_t n_opts;
};

struct mf_prog {
    const char *name;    /* "mayfly-ca" */
    const char *version; /* "0.2.0" */
    const char *help;    /* one paragraph under the command list */
    const struct mf_cmd *cmds;
    size_t n_cmds;
};

enum mf_opt_src { MF_SRC_NONE = 0, MF_SRC_DEFAULT, MF_SRC_ENV, MF_SRC_FILE, MF_SRC_FLAG };

struct mf_opt_val {
    enum mf_opt_src src;
    const char *s;                     /* the (last) value; "true"/"false" for a bool */
    const char *list[MF_OPT_LIST_MAX]; /* every value of a repeatable option */
    size_t n;
};

struct mf_opt_vals {
    const struct mf_cmd *cmd;
    struct mf_opt_val v[MF_OPT_MAX];
    const char *pos[MF_OPT_POS_MAX];
    size_t n_pos;
    bool help;  /* --help was given: usage printed, nothing else done */
    char *file; /* the config file's text, owned */
};

/* Finds the command named by argv[0] (and argv[1] for two-word commands).
 * *used is how many words the name took. MF_ERR_USAGE_ARG with a detail
 * naming the choices when there is none. */
MF_WUR mf_res mf_opt_find_cmd(const struct mf_prog *p, int argc, char **argv,
                              const struct mf_cmd **cmd, int *used);

/* Parses the arguments after the command name: defaults, environment, the
 * config file, then the flags. On --help, prints the usage on stdout and
 * sets vals->help. MF_ERR_USAGE_ARG with a detail on any misuse. Call
 * mf_opt_vals_cleanup() afterwards in every case. */
MF_WUR mf_res mf_opt_parse(const struct mf_prog *p, const struct mf_cmd *cmd, int argc, char **argv,
                           struct mf_opt_vals *vals);

void mf_opt_vals_cleanup(struct mf_opt_vals *vals);

/* The value of option name (NULL when unset and without default); the
 * option must exist in the command (else NULL). */
const char *mf_opt_get(const struct mf_opt_vals *vals, const char *name);
const struct mf_opt_val *mf_opt_val(const struct mf_opt_vals *vals, const char *name);
bool mf_opt_bool(const struct mf_opt_vals *vals, const char *name);

/* True when option i has a different value in a than in b. */
bool mf_opt_changed(const struct mf_opt_vals *a, const struct mf_opt_vals *b, size_t i);

/* Usage of one command, or of the whole program (every command with every
 * option, its default and its help). */
void mf_opt_usage_cmd(const struct mf_prog *p, const struct mf_cmd *cmd, FILE *out);
void mf_opt_usage(const struct mf_prog *p, FILE *out);

/* For a program whose first command is "run" with its options in a table
 * of another file (whose size is no constant here): the first time, copies
 * cmds into all (n_cmds of them), gives all[0] run_opts, and makes *prog
 * the program name (version MAYFLY_VERSION) with all as its commands.
 * Returns prog. */
const struct mf_prog *mf_opt_prog_init(struct mf_prog *prog, const char *name, const char *help,
                                       struct mf_cmd *all, const struct mf_cmd *cmds, size_t n_cmds,
                                       const struct mf_opt *run_opts, size_t n_run_opts);

/* The dispatcher's common part: handles no arguments (usage, 2), --help
 * (0), --version (0), an unknown command (2). Returns -1 when cmd was
 * found and argv + *used starts its arguments. */
int mf_opt_main(const struct mf_prog *p, int argc, char **argv, const struct mf_cmd **cmd,
                int *used);

/* Prints "PROG CMD: detail (see PROG CMD --help)" for a usage error on
 * stderr and returns 2. */
int mf_opt_usage_error(const struct mf_prog *p, const struct mf_cmd *cmd, mf_res r);

/* The command "run" gets its raw arguments: it parses them itself, to
 * re-read them on SIGHUP. Any other command gets them parsed. */
typedef int (*mf_opt_run_fn)(const struct mf_prog *p, const struct mf_cmd *cmd, int argc,
                             char **argv);
typedef int (*mf_opt_cli_fn)(const struct mf_cmd *cmd, const struct mf_opt_vals *v);

/* A daemon's whole main(): mf_opt_main, then run for the command "run",
 * else mf_opt_parse and cli (a usage error: 2; --help: 0). Returns the exit
 * status. */
int mf_opt_dispatch(const struct mf_prog *p, int argc, char **argv, mf_opt_run_fn run,
                    mf_opt_cli_fn cli);

#endif /* MF_OPT_H */
