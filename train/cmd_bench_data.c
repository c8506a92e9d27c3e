/* placeholder until the command is implemented */
#include "train/commands.h"
#include <stdio.h>
int cmd_bench_data(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mixtape: 'bench_data' is not implemented yet\n");
    return 1;
}
