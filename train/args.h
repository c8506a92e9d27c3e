/* Command-line flags: `--name value`, `--name=value`, boolean `--name`, short
 * aliases (`-b 32`, `-b32`), `--` ends the flags. Each command asks for the flags
 * it knows, declaring each once (name, alias, type, default, range, one-line
 * help); args_finish() then rejects anything left over, naming the flag (exit
 * code 2 by convention).
 *
 * The declarations are the one source of truth: with `--help` or `--list-flags`
 * on the command line, args_init switches to a describe pass (every getter
 * returns its default), and args_end() prints the help or a JSON line per flag
 * from what was declared instead of running the command. */
#pragma once
#include <stdio.h>

/* ARG_LIST: numbers, ARG_INTS: integers (comma separated, or several arguments for
 * args_list); ARG_STR may carry "a|b" examples in choices (not enforced). */
typedef enum ArgType { ARG_STR, ARG_INT, ARG_FLOAT, ARG_BOOL, ARG_LIST, ARG_CHOICE, ARG_INTS } ArgType;

/* ARGS_CHECK (`--dry-run`): values are parsed and checked as usual, args_end then
 * reports them valid and the command exits 0 without running. */
enum { ARGS_RUN = 0, ARGS_HELP = 1, ARGS_LIST = 2, ARGS_CHECK = 3 };

/* One declared flag and its resolved value (args.yaml, --help, --list-flags). */
typedef struct ArgRec {
    char key[48];          /* name without the leading dashes */
    char val[2048];        /* resolved value as written to args.yaml; "null" = none */
    char alias[8];
    char def[80];          /* default shown by --help; "" = none */
    ArgType type;
    int ranged;            /* lo/hi valid (int, float, list elements) */
    double lo, hi;
    const char *choices;   /* "a|b|c" for ARG_CHOICE; examples for ARG_STR */
    const char *scope;     /* models the flag applies to, NULL = all */
    const char *help;      /* one line; NULL = undocumented (a test fails on it) */
    const char *group;
    int norecord;          /* not written to args.yaml (--config, --dry-run) */
} ArgRec;

#define ARGS_MAX_REC 200

typedef struct Args {
    int argc;
    char **argv;
    unsigned char *used;   /* argv[i] consumed */
    int dashdash;          /* index of "--" (flags end there), or -1 */
    int failed;
    int describe;          /* ARGS_RUN / ARGS_HELP / ARGS_LIST (no values read) / ARGS_CHECK */
    char err[1024];
    const char *cmd;
    const char *group;     /* heading for the flags declared next */
    ArgRec rec[ARGS_MAX_REC];
    int nrec;
    char **extra;         /* `--key=value` strings loaded from a config file, owned */
    int *extra_line;      /* their line numbers in cfg_path */
    int nextra;
    char cfg_path[512];
    char **argv_owned;    /* argv rebuilt by args_load_yaml, owned */
} Args;

void args_init(Args *a, const char *cmd, int argc, char **argv);
void args_free(Args *a);

/* Declaring getters. Absent flags give the default; a malformed or out-of-range
 * value sets a.err ("mixtape train: --threads -1: out of range [0, 1024]") and
 * returns the default. Ranges are inclusive. */
long args_int_range(Args *a, const char *name, const char *alias, long def, long lo, long hi, const char *help);
/* def NAN: no default (absent -> NAN, recorded as null). */
double args_float_range(Args *a, const char *name, const char *alias, double def, double lo, double hi,
                        const char *help);
/* Free-form string (paths, patterns); def may be NULL. */
const char *args_string(Args *a, const char *name, const char *alias, const char *def, const char *help);
/* One of choices ("adamw|adam|sgd"). */
const char *args_choice(Args *a, const char *name, const char *alias, const char *def, const char *choices,
                        const char *help);
/* Present as a bare flag -> 1 (or --name=0/1/true/false/yes/no), else def. */
int args_bool(Args *a, const char *name, int def, const char *help);
/* A list of numbers, each in [lo, hi]: `--mean 0.5 0.5 0.5` (the numbers that follow) or
 * `--mean=0.5,0.5,0.5`; def shown by --help. Returns the value with ',' separators in buf,
 * or NULL when absent. The caller may replace the recorded value with args_record. */
const char *args_list(Args *a, const char *name, const char *def, double lo, double hi, const char *help,
                      char *buf, size_t n);
/* Declare a flag whose value is read another way (e.g. model overrides passed on as
 * strings): checks type and range like the getters; returns the raw value or NULL. */
const char *args_value(Args *a, const char *name, const char *alias, ArgType t, const char *def, double lo,
                       double hi, const char *choices, const char *help);
/* Replace the recorded (args.yaml) value of a declared flag; val NULL = null. */
void args_record(Args *a, const char *name, const char *val);
/* Do not write this declared flag to args.yaml (--config, --dry-run, --output of a dry run). */
void args_norecord(Args *a, const char *name);
/* Which models a declared flag applies to ("hierarchical", "isotropic"), for --list-flags. */
void args_scope(Args *a, const char *name, const char *scope);
/* Heading for the flags declared next (--help sections). */
void args_group(Args *a, const char *title);

/* Older undocumented getters (no range, no help); prefer the declaring ones. */
const char *args_str(Args *a, const char *name, const char *alias, const char *def);
long args_int(Args *a, const char *name, const char *alias, long def);
double args_float(Args *a, const char *name, const char *alias, double def);
int args_flag(Args *a, const char *name, int def);

/* A --help / --list-flags pass: flags are declared, no value is read. */
int args_describing(const Args *a);
/* Was --name given at all? (always 0 in a describe pass) */
int args_has(Args *a, const char *name, const char *alias);
/* First unconsumed positional argument (not starting with '-', or anything after `--`), or NULL. */
const char *args_positional(Args *a);
/* Prepend `--key=value` arguments read from a flat YAML file (timm's args.yaml
 * style: `key: value`, lists inline `[a, b]` or as `- item` lines; underscores in
 * keys become dashes). Command-line flags given later win. Keys only timm's
 * train.py knows (amp, pin_mem, ...) are skipped with one warning on stderr;
 * other unknown keys fail in args_finish naming the file and line.
 * -1 with a.err naming the file/line. */
#define ARGS_YAML_MAX_BYTES ((long long)4 << 20) /* a config file (args.yaml) may hold at most this much */
int args_load_yaml(Args *a, const char *path);
/* Write every recorded flag as `key: value` (args.yaml); list flags as `- item` lines. */
void args_dump_yaml(const Args *a, FILE *f);
/* args_dump_yaml to path atomically (temp name + rename). 0 / -1 with err. */
int args_save_yaml(const Args *a, const char *path, char *err, size_t errn);
/* 0 when every argument was consumed and no value was malformed; otherwise -1
 * with a.err set ("mixtape train: unknown flag '--lrr'"). */
int args_finish(Args *a);
/* End of the declarations. Describe pass: prints usage (may be NULL) and the flags
 * (--help), or one JSON object per flag (--list-flags), to stdout and returns 1 (exit 0).
 * Otherwise args_finish: 0, or 2 after printing a.err to stderr; with --dry-run a valid
 * command line prints so and returns 1. */
int args_end(Args *a, void (*usage)(FILE *));
/* The generated flag list (--help) / JSON lines (--list-flags). */
void args_print_help(const Args *a, FILE *f);
void args_print_list(const Args *a, FILE *f);
