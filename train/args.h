/* Command-line flags: `--name value`, `--name=value`, boolean `--name`, short
 * aliases (`-b 32`). Each command asks for the flags it knows; args_finish()
 * then rejects anything left over, naming the flag (exit code 2 by convention). */
#pragma once
#include <stdio.h>

typedef struct Args {
    int argc;
    char **argv;
    unsigned char *used;   /* argv[i] consumed */
    int failed;
    char err[512];
    const char *cmd;
    /* every flag asked for and its resolved value, for args.yaml */
    struct { char key[48]; char val[464]; } rec[160];
    int nrec;
    char **extra;         /* `--key=value` strings loaded from a config file, owned */
    int nextra;
    char **argv_owned;    /* argv rebuilt by args_load_yaml, owned */
} Args;

void args_init(Args *a, const char *cmd, int argc, char **argv);
void args_free(Args *a);
/* Value of --name (or alias, may be NULL) or def when absent. */
const char *args_str(Args *a, const char *name, const char *alias, const char *def);
long args_int(Args *a, const char *name, const char *alias, long def);
double args_float(Args *a, const char *name, const char *alias, double def);
/* Present as a bare flag -> 1 (or --name=0/1/true/false), else def. */
int args_flag(Args *a, const char *name, int def);
/* Was --name given at all? */
int args_has(Args *a, const char *name, const char *alias);
/* First unconsumed positional argument (not starting with '-'), or NULL. */
const char *args_positional(Args *a);
/* Prepend `--key=value` arguments read from a flat YAML file (timm's args.yaml
 * style: `key: value`, lists inline `[a, b]` or as `- item` lines; underscores in
 * keys become dashes). Command-line flags given later win. The returned argv
 * (and its strings) live until args_free. -1 with a.err naming the file/line. */
int args_load_yaml(Args *a, const char *path);
/* Write every resolved flag as `key: value` (args.yaml). */
void args_dump_yaml(const Args *a, FILE *f);
/* 0 when every argument was consumed and no value was malformed; otherwise -1
 * with a.err set ("mixtape train: unknown flag '--lrr'"). */
int args_finish(Args *a);
